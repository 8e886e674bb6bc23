//! `[realtime]` and `[[channels]]`: how much of the event log is kept for resuming, the limits
//! that keep one client from growing a server's memory, and the channels clients may join.
//! Validated here so a typo or a rule that does not parse stops `brigade serve` with the key.

use std::time::Duration;

use serde::Deserialize;

use super::parse_duration;

/// `[realtime]`.
#[derive(Debug, Clone)]
pub struct RealtimeSettings {
    /// Events kept in the log for clients that resume (`Last-Event-ID`, `since`); a client
    /// further behind gets a `resync`.
    pub replay: u64,
    /// Messages queued per connection; a client that lets more pile up is disconnected
    /// ("slow consumer") rather than allowed to grow the server's memory.
    pub queue: usize,
    /// Open connections per client address.
    pub max_connections_per_ip: usize,
    /// Open connections per account or API key.
    pub max_connections_per_account: usize,
    /// Subscriptions and joined channels per connection.
    pub max_subscriptions: usize,
    /// How often an idle connection is sent a heartbeat (SSE comment, WebSocket ping).
    pub heartbeat: Duration,
    pub channels: Vec<ChannelSettings>,
}

impl Default for RealtimeSettings {
    fn default() -> Self {
        RealtimeSettings {
            replay: 10_000,
            queue: 1024,
            max_connections_per_ip: 1000,
            max_connections_per_account: 100,
            max_subscriptions: 100,
            heartbeat: Duration::from_secs(15),
            channels: Vec::new(),
        }
    }
}

/// One `[[channels]]` entry.
#[derive(Debug, Clone)]
pub struct ChannelSettings {
    /// The channel names it covers: exact, or with `*` standing for any run of characters
    /// (`room-*`).
    pub name: String,
    /// Who may join.
    pub join: ChannelRule,
    /// Who may broadcast, likewise; only members broadcast.
    pub broadcast: ChannelRule,
    /// Whether broadcasts are stored for `GET /api/channels/{channel}/messages`.
    pub persist: bool,
    /// Stored messages kept per channel.
    pub history: u64,
}

/// A channel rule, parsed when the settings load.
#[derive(Debug, Clone, PartialEq)]
pub enum ChannelRule {
    /// Unset: superusers only.
    Superusers,
    /// `""`: anyone, signed in or not.
    Anyone,
    /// A rule in the filter language over `@request.auth.*` and `@channel.name`
    /// ([`crate::filter::context`]).
    Filter(crate::filter::Expr),
}

impl ChannelRule {
    fn parse(rule: Option<&str>) -> Result<Self, crate::filter::FilterError> {
        Ok(match rule {
            None => ChannelRule::Superusers,
            Some(r) if r.trim().is_empty() => ChannelRule::Anyone,
            Some(r) => ChannelRule::Filter(crate::filter::context::parse_context_rule(r)?),
        })
    }
}

impl ChannelSettings {
    /// Whether `channel` is one of this entry's channels.
    pub fn covers(&self, channel: &str) -> bool {
        glob_match(&self.name, channel)
    }
}

/// `*` matches any run of characters (none included); everything else matches itself.
fn glob_match(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawRealtime {
    replay: Option<i64>,
    queue: Option<i64>,
    max_connections_per_ip: Option<i64>,
    max_connections_per_account: Option<i64>,
    max_subscriptions: Option<i64>,
    heartbeat: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawChannel {
    name: String,
    join: Option<String>,
    broadcast: Option<String>,
    #[serde(default)]
    persist: bool,
    history: Option<i64>,
}

/// Checks `[realtime]` and `[[channels]]`; errors are `(key, message)`.
pub(super) fn realtime(
    raw: RawRealtime,
    channels: Vec<RawChannel>,
) -> Result<RealtimeSettings, (String, String)> {
    let defaults = RealtimeSettings::default();
    let count = |key: &str, value: Option<i64>, default: u64, min: i64| match value {
        None => Ok(default),
        Some(n) if n >= min => Ok(n as u64),
        Some(n) => Err((
            format!("realtime.{key}"),
            format!("{n} is too small; use at least {min}"),
        )),
    };
    let heartbeat = match raw.heartbeat.as_deref() {
        None => defaults.heartbeat,
        Some(text) => {
            let d = parse_duration(text).map_err(|m| ("realtime.heartbeat".to_string(), m))?;
            if d < Duration::from_secs(1) {
                return Err((
                    "realtime.heartbeat".into(),
                    "must be at least 1s".to_string(),
                ));
            }
            d
        }
    };
    let mut checked = Vec::with_capacity(channels.len());
    for (i, c) in channels.into_iter().enumerate() {
        let key = |k: &str| format!("channels[{i}].{k}");
        let name = c.name.trim().to_string();
        if name.is_empty()
            || !name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "-_.:*".contains(ch))
        {
            return Err((
                key("name"),
                format!(
                    "`{}` is not a channel name: use letters, digits, `-`, `_`, `.`, `:` and `*` \
                     as a wildcard (e.g. \"room-*\")",
                    c.name
                ),
            ));
        }
        let join =
            ChannelRule::parse(c.join.as_deref()).map_err(|e| (key("join"), e.to_string()))?;
        let broadcast = ChannelRule::parse(c.broadcast.as_deref())
            .map_err(|e| (key("broadcast"), e.to_string()))?;
        let history = match c.history {
            None => 100,
            Some(n) if n >= 1 => n as u64,
            Some(n) => return Err((key("history"), format!("{n} is too small; use at least 1"))),
        };
        checked.push(ChannelSettings {
            name,
            join,
            broadcast,
            persist: c.persist,
            history,
        });
    }
    Ok(RealtimeSettings {
        replay: count("replay", raw.replay, defaults.replay, 100)?,
        queue: count("queue", raw.queue, defaults.queue as u64, 16)? as usize,
        max_connections_per_ip: count(
            "max_connections_per_ip",
            raw.max_connections_per_ip,
            defaults.max_connections_per_ip as u64,
            1,
        )? as usize,
        max_connections_per_account: count(
            "max_connections_per_account",
            raw.max_connections_per_account,
            defaults.max_connections_per_account as u64,
            1,
        )? as usize,
        max_subscriptions: count(
            "max_subscriptions",
            raw.max_subscriptions,
            defaults.max_subscriptions as u64,
            1,
        )? as usize,
        heartbeat,
        channels: checked,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_patterns_match_as_globs() {
        assert!(glob_match("room-*", "room-1"));
        assert!(glob_match("room-*", "room-"));
        assert!(!glob_match("room-*", "lobby"));
        assert!(glob_match("lobby", "lobby"));
        assert!(!glob_match("lobby", "lobby-2"));
        assert!(glob_match("a*b*c", "a-x-b-y-c"));
        assert!(!glob_match("a*b*c", "a-x-c"));
        assert!(glob_match("*", "anything"));
    }

    #[test]
    fn rules_are_parsed_once_when_the_settings_load() {
        let raw = RawChannel {
            name: "room-*".into(),
            join: Some(" ".into()),
            broadcast: None,
            persist: false,
            history: None,
        };
        let entry = RawChannel {
            name: "dm-*".into(),
            join: Some("@channel.name ~ @request.auth.id".into()),
            broadcast: Some("@request.auth.id != null".into()),
            persist: true,
            history: Some(5),
        };
        let settings = realtime(RawRealtime::default(), vec![raw, entry]).unwrap();
        assert_eq!(settings.channels[0].join, ChannelRule::Anyone);
        assert_eq!(settings.channels[0].broadcast, ChannelRule::Superusers);
        assert!(matches!(settings.channels[1].join, ChannelRule::Filter(_)));
        assert_eq!(settings.channels[1].history, 5);
    }

    #[test]
    fn a_rule_that_does_not_parse_names_its_key() {
        let bad = RawChannel {
            name: "room-*".into(),
            join: Some("@request.auth.id = ".into()),
            broadcast: None,
            persist: false,
            history: None,
        };
        let (key, message) = realtime(RawRealtime::default(), vec![bad]).unwrap_err();
        assert_eq!(key, "channels[0].join");
        assert!(!message.is_empty());
    }
}

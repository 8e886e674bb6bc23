//! Channels: join, leave, broadcast and presence, for the channels `[[channels]]` declares.
//!
//! A channel name is checked against the entries in order; the first whose pattern covers it
//! decides who may join and broadcast (rules over `@request.auth.*` and `@channel.name`),
//! whether broadcasts are stored and how many. Presence lives in the database (see
//! [`brigade_store::channel_state`]), so a member on one server is listed on every other, and
//! each join and leave is an event of the log like a broadcast: members of a channel get the
//! same presence changes and broadcasts, in the same order, whichever server they are on.
//!
//! The presence list sent with `joined` and the id it is current at are read in one snapshot;
//! the member then gets only the broadcasts and presence changes after that id, so the list
//! plus the changes that follow is exactly the channel's membership.

use std::sync::Arc;
use std::time::Duration;

use brigade_core::filter::context::holds;
use brigade_core::settings::{ChannelRule, ChannelSettings};
use brigade_store::{Access, LoggedEvent};
use serde_json::{Value, json};

use super::connection::{Connection, JoinedChannel};
use super::message::Outgoing;
use super::{Hub, lock};
use crate::error::ApiError;

/// Longest channel name.
const MAX_NAME: usize = 128;
/// Largest `meta` and broadcast `payload`, as JSON.
const MAX_PAYLOAD: usize = 16 * 1024;
/// How often this process marks its members as present, and how long a member of a process
/// that stopped refreshing stays listed.
const PRESENCE_REFRESH: Duration = Duration::from_secs(10);
const PRESENCE_STALE: Duration = Duration::from_secs(35);

/// The channels of `[[channels]]`.
pub(crate) struct Channels {
    entries: Vec<ChannelSettings>,
}

impl Channels {
    pub(crate) fn new(entries: Vec<ChannelSettings>) -> Self {
        Channels { entries }
    }

    /// The entry covering `channel`.
    fn entry(&self, channel: &str) -> Result<&ChannelSettings, ApiError> {
        if channel.is_empty()
            || channel.len() > MAX_NAME
            || !channel
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
        {
            return Err(ApiError::field(
                "channel",
                format!("use 1 to {MAX_NAME} letters, digits, `-`, `_`, `.` or `:`"),
            ));
        }
        self.entries
            .iter()
            .find(|e| e.covers(channel))
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "No [[channels]] entry in brigade.toml covers `{channel}`."
                ))
            })
    }

    /// Whether `access` passes `rule` on `channel`.
    fn allows(
        rule: &ChannelRule,
        access: &Access,
        channel: &str,
        what: &str,
    ) -> Result<(), ApiError> {
        let allowed = match (access, rule) {
            (Access::Superuser, _) | (_, ChannelRule::Anyone) => true,
            (Access::Caller(_), ChannelRule::Superusers) => false,
            (Access::Caller(ctx), ChannelRule::Filter(rule)) => {
                holds(rule, &ctx.auth, channel, &brigade_core::time::now())
            }
        };
        match (allowed, access) {
            (true, _) => Ok(()),
            (false, Access::Caller(ctx)) if ctx.auth.is_empty() => Err(ApiError::unauthorized(
                format!("Log in to {what} `{channel}`."),
            )),
            (false, _) => Err(ApiError::forbidden(format!(
                "The {what} rule of `{channel}` refuses this account."
            ))),
        }
    }

    /// Who may read a channel's history: those who may join it.
    ///
    /// # Errors
    /// 400/404 for a channel no entry covers, 401/403 when the join rule refuses.
    pub(crate) fn readable(&self, access: &Access, channel: &str) -> Result<u64, ApiError> {
        let entry = self.entry(channel)?;
        Self::allows(&entry.join, access, channel, "join")?;
        if !entry.persist {
            return Err(ApiError::not_found(format!(
                "`{channel}` keeps no history; set `persist = true` on its [[channels]] entry."
            )));
        }
        Ok(entry.history)
    }

    /// Joins `channel`: the client gets `joined` with the presence list, and every member
    /// (this one included) a `presence` event.
    ///
    /// # Errors
    /// As [`Channels::readable`], and 400 for a second join or a `meta` that is too large.
    pub(crate) async fn join(
        &self,
        hub: &Hub,
        connection: &Connection,
        channel: &str,
        meta: Value,
    ) -> Result<(), ApiError> {
        let entry = self.entry(channel)?;
        Self::allows(&entry.join, connection.session.access(), channel, "join")?;
        if lock(&connection.channels)
            .iter()
            .any(|c| &*c.name == channel)
        {
            return Err(ApiError::field("channel", "already joined"));
        }
        if connection.subscription_count() >= hub.settings.max_subscriptions {
            return Err(ApiError::field(
                "channel",
                format!(
                    "at most {} subscriptions and channels per connection (realtime.max_subscriptions)",
                    hub.settings.max_subscriptions
                ),
            ));
        }
        if !(meta.is_object() || meta.is_null()) || meta.to_string().len() > MAX_PAYLOAD {
            return Err(ApiError::field(
                "meta",
                format!("must be a JSON object of at most {MAX_PAYLOAD} bytes"),
            ));
        }
        let member = json!({
            "key": member_key(hub, connection),
            "id": connection.session.principal().map(|p| p.id.clone()),
            "meta": if meta.is_null() { json!({}) } else { meta },
        });
        // Holding the position, so `joined` is queued before any event the pump delivers
        // after it; the list and `after` come from one snapshot, so each presence change is
        // either in the list or delivered after it, never both, never neither.
        let _position = hub.position.lock().await;
        let store = hub.store.channels();
        store
            .join(
                channel,
                &member_key(hub, connection),
                process(hub),
                &member.to_string(),
            )
            .await?;
        let (members, after) = store.members(channel).await?;
        let channel: Arc<str> = channel.into();
        lock(&connection.channels).push(JoinedChannel {
            name: channel.clone(),
            after,
        });
        metrics::gauge!("realtime_subscriptions").increment(1.0);
        connection.send(Outgoing::Joined {
            channel,
            members: format!("[{}]", members.join(",")),
            position: after,
        });
        Ok(())
    }

    /// Leaves `channel`.
    ///
    /// # Errors
    /// 400 when not joined.
    pub(crate) async fn leave(
        &self,
        hub: &Hub,
        connection: &Connection,
        channel: &str,
    ) -> Result<(), ApiError> {
        let removed = {
            let mut joined = lock(&connection.channels);
            let before = joined.len();
            joined.retain(|c| &*c.name != channel);
            before != joined.len()
        };
        if !removed {
            return Err(ApiError::field("channel", "not joined"));
        }
        metrics::gauge!("realtime_subscriptions").decrement(1.0);
        hub.store
            .channels()
            .leave(channel, &member_key(hub, connection))
            .await?;
        connection.send(Outgoing::Left {
            channel: channel.into(),
        });
        Ok(())
    }

    /// Broadcasts `payload` to the members of `channel` (stored first when the channel
    /// persists).
    ///
    /// # Errors
    /// 400 when not joined or too large, 401/403 when the broadcast rule refuses.
    pub(crate) async fn broadcast(
        &self,
        hub: &Hub,
        connection: &Connection,
        channel: &str,
        payload: Value,
    ) -> Result<(), ApiError> {
        let entry = self.entry(channel)?;
        if !lock(&connection.channels)
            .iter()
            .any(|c| &*c.name == channel)
        {
            return Err(ApiError::field(
                "channel",
                "join the channel before broadcasting",
            ));
        }
        Self::allows(
            &entry.broadcast,
            connection.session.access(),
            channel,
            "broadcast",
        )?;
        let payload = payload.to_string();
        if payload.len() > MAX_PAYLOAD {
            return Err(ApiError::field(
                "payload",
                format!("at most {MAX_PAYLOAD} bytes of JSON"),
            ));
        }
        let from = json!({
            "key": member_key(hub, connection),
            "id": connection.session.principal().map(|p| p.id.clone()),
        });
        hub.store
            .channels()
            .broadcast(
                channel,
                &from.to_string(),
                &payload,
                entry.persist.then_some(entry.history),
            )
            .await?;
        Ok(())
    }

    /// Hands a broadcast or presence event to the members of its channel on this process.
    pub(crate) fn dispatch(&self, connections: &[Arc<Connection>], event: &LoggedEvent) {
        let members: Vec<&Arc<Connection>> = connections
            .iter()
            .filter(|c| {
                lock(&c.channels)
                    .iter()
                    .any(|ch| ch.takes(&event.topic, event.id))
            })
            .collect();
        if members.is_empty() {
            return;
        }
        let Ok(body) = serde_json::from_str::<Value>(&event.body) else {
            tracing::error!(
                event = event.id,
                "A logged channel event is not JSON; it was not delivered."
            );
            return;
        };
        let channel: Arc<str> = event.topic.as_str().into();
        let part =
            |key: &str| -> Arc<str> { body.get(key).unwrap_or(&Value::Null).to_string().into() };
        let message = match event.kind {
            brigade_store::EventKind::Broadcast => Outgoing::Broadcast {
                id: event.id,
                channel,
                from: part("from"),
                payload: part("payload"),
                at_ms: event.at_ms,
            },
            _ => Outgoing::Presence {
                id: event.id,
                channel,
                joins: part("joins"),
                leaves: part("leaves"),
                at_ms: event.at_ms,
            },
        };
        for connection in members {
            if connection.send(message.clone()) {
                metrics::counter!("realtime_events_total").increment(1);
            }
        }
    }

    /// A closed connection leaves its channels (in the background: the hub drops it now).
    pub(crate) fn left_everything(&self, hub: &Hub, connection: &Connection) {
        let joined: Vec<Arc<str>> = std::mem::take(&mut *lock(&connection.channels))
            .into_iter()
            .map(|c| c.name)
            .collect();
        if joined.is_empty() {
            return;
        }
        let store = hub.store.clone();
        let key = member_key(hub, connection);
        tokio::spawn(async move {
            for channel in joined {
                if let Err(e) = store.channels().leave(&channel, &key).await {
                    tracing::warn!(channel = %channel, error = %e, "Could not record a member leaving; it is swept when its presence goes stale.");
                }
            }
        });
    }
}

/// This process's id in the presence table.
fn process(hub: &Hub) -> &str {
    hub.store.change_feed().origin()
}

/// A member's key: unique per connection across processes.
fn member_key(hub: &Hub, connection: &Connection) -> String {
    format!("{}-{}", process(hub), connection.id)
}

/// Keeps this process's members listed, sweeps members of processes that stopped without
/// leaving, and runs until stopped.
pub(crate) async fn maintain(hub: Arc<Hub>) {
    let mut tick = tokio::time::interval(PRESENCE_REFRESH);
    loop {
        tick.tick().await;
        let channels = hub.store.channels();
        if let Err(e) = channels.heartbeat(process(&hub)).await {
            tracing::warn!(error = %e, "Could not refresh channel presence.");
            continue;
        }
        match channels
            .sweep(PRESENCE_STALE.as_millis() as i64, None)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                members = n,
                "Removed channel members of a server that stopped."
            ),
            Err(e) => tracing::warn!(error = %e, "Could not sweep stale channel presence."),
        }
    }
}

/// On shutdown: this process's members leave every channel.
pub(crate) async fn leave_all(hub: &Hub) {
    if let Err(e) = hub.store.channels().sweep(0, Some(process(hub))).await {
        tracing::warn!(error = %e, "Could not remove this server's channel members; they are swept when stale.");
    }
}

//! Which process runs a pipeline, and whether it is still alive. Every run records its
//! holder (role, pid, host and the process's start time); a run whose heartbeat is older
//! than `[pipelines] stale_after` counts as dead unless its holder is a process on this
//! host that is still running. That keeps a run alive while one long SQLite statement of
//! its own blocks its heartbeat, and still frees a pipeline whose process was killed.

use std::fmt;

/// The process holding (or running) a pipeline run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// `brigade serve` or `brigade pipeline run`.
    pub role: String,
    pub pid: u32,
    pub host: String,
    /// The process's start time in clock ticks since boot (Linux), so a new process that
    /// reuses the pid (a restarted container) is not mistaken for the old one.
    pub start: Option<u64>,
}

/// Whether a recorded holder still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alive {
    /// It is a process on this host that is running.
    Yes,
    /// It was a process on this host that is gone.
    No,
    /// It runs on another host (or this system cannot tell): only its heartbeat tells.
    Unknown,
}

impl Holder {
    /// This process, in `role`.
    pub fn this_process(role: &str) -> Holder {
        let pid = std::process::id();
        Holder {
            role: role.to_string(),
            pid,
            host: hostname(),
            start: start_time(pid),
        }
    }

    /// The form stored in `holder` columns: `ROLE; pid=N; host=H; start=T`.
    pub fn stored(&self) -> String {
        let mut out = format!("{}; pid={}; host={}", self.role, self.pid, self.host);
        if let Some(start) = self.start {
            out.push_str(&format!("; start={start}"));
        }
        out
    }

    /// Reads [`Holder::stored`] back; `None` for anything else.
    pub fn parse(stored: &str) -> Option<Holder> {
        let mut parts = stored.split("; ");
        let role = parts.next()?.to_string();
        let (mut pid, mut host, mut start) = (None, None, None);
        for part in parts {
            match part.split_once('=')? {
                ("pid", v) => pid = v.parse().ok(),
                ("host", v) => host = Some(v.to_string()),
                ("start", v) => start = v.parse().ok(),
                _ => {}
            }
        }
        Some(Holder {
            role,
            pid: pid?,
            host: host?,
            start,
        })
    }

    /// Whether this holder still runs, as far as this process can see.
    pub fn alive(&self) -> Alive {
        if self.host != hostname() || !cfg!(target_os = "linux") {
            return Alive::Unknown;
        }
        match (self.start, start_time(self.pid)) {
            (_, None) => Alive::No,
            (Some(recorded), Some(now)) if recorded != now => Alive::No,
            _ => Alive::Yes,
        }
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (pid {} on {})", self.role, self.pid, self.host)
    }
}

/// A stored holder for people: parsed when possible, as stored otherwise.
pub fn describe(stored: &str) -> String {
    Holder::parse(stored).map_or_else(|| stored.to_string(), |h| h.to_string())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Field 22 of `/proc/PID/stat`; `None` when the process does not exist or is a zombie.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from its end.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_form_round_trips() {
        let me = Holder::this_process("brigade pipeline run");
        assert_eq!(Holder::parse(&me.stored()), Some(me.clone()));
        assert!(me.to_string().starts_with("brigade pipeline run (pid "));
        assert_eq!(Holder::parse("garbage"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_is_alive_and_a_finished_one_is_not() {
        let me = Holder::this_process("test");
        assert_eq!(me.alive(), Alive::Yes);
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let gone = Holder { pid, ..me.clone() };
        assert_eq!(gone.alive(), Alive::No);
        let elsewhere = Holder {
            host: "elsewhere.invalid".into(),
            ..me.clone()
        };
        assert_eq!(elsewhere.alive(), Alive::Unknown);
        let reused = Holder {
            start: me.start.map(|s| s + 1),
            ..me
        };
        assert_eq!(reused.alive(), Alive::No);
    }
}

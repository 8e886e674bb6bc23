//! The realtime event log: every committed record change (and every channel broadcast and
//! presence change) as a row of `_events`, numbered in commit order, kept for a bounded
//! window.
//!
//! It exists so that realtime delivery is one ordered stream for every process on a database:
//! each process reads the log after the position it has delivered and hands each event to its
//! own subscribers, so a write taken by any process reaches every subscriber once, in commit
//! order, and a client that reconnects (to any process) resumes from the id of the last event
//! it saw. Nothing large travels through PostgreSQL's `NOTIFY` (8,000-byte limit): it only
//! wakes the readers, which fetch rows.
//!
//! Ids are taken from the single row of `_event_head` inside the writing transaction
//! (`UPDATE … SET position = position + n RETURNING position`). That row lock is held until
//! commit, so a transaction that takes ids after another can only commit after it: ids are in
//! commit order and without holes (a rolled-back transaction rolls its ids back too). A reader
//! that has seen id `n` has therefore seen everything before `n`, which a sequence cannot
//! promise. The cost is that record writes commit one after another on PostgreSQL — one short
//! lock per transaction (SQLite writers are serialised anyway, and group commit takes one
//! range per group).

use std::sync::Arc;

use brigade_core::value::Value;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::conn::{ColType, Conn};
use crate::error::StoreError;
use crate::handle::Store;
use crate::sql::{Dialect, Sql};

/// The `NOTIFY` channel that wakes readers on PostgreSQL.
pub const CHANNEL: &str = "brigade_events";

/// Rows per `INSERT` statement.
const INSERT_CHUNK: usize = 200;

/// What an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// A record of collection `topic` was created, updated or deleted.
    Record,
    /// A message broadcast on channel `topic`.
    Broadcast,
    /// Members joined or left channel `topic`.
    Presence,
}

impl EventKind {
    fn as_str(self) -> &'static str {
        match self {
            EventKind::Record => "record",
            EventKind::Broadcast => "broadcast",
            EventKind::Presence => "presence",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "record" => Some(EventKind::Record),
            "broadcast" => Some(EventKind::Broadcast),
            "presence" => Some(EventKind::Presence),
            _ => None,
        }
    }
}

/// An event to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub kind: EventKind,
    /// The collection (records) or the channel (broadcasts, presence).
    pub topic: String,
    /// The record's id, for record events.
    pub record_id: Option<String>,
    /// `create`, `update`, `delete` for records; free text otherwise.
    pub action: String,
    /// The JSON text of the payload: the record (as it was, for a delete), the broadcast.
    pub body: String,
}

/// An event as logged.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedEvent {
    /// Position in the log: increasing by one per event, in commit order.
    pub id: i64,
    pub kind: EventKind,
    pub topic: String,
    pub record_id: Option<String>,
    pub action: String,
    pub body: String,
    /// When it was appended, in Unix milliseconds (for write-to-delivery latency).
    pub at_ms: i64,
}

/// The wake-up signal of this process's readers: fired after each local commit that logged
/// events.
#[derive(Debug, Default)]
pub struct LocalWake(Notify);

impl LocalWake {
    pub(crate) fn fire(&self) {
        // One reader per process waits; a permit is kept when it is busy.
        self.0.notify_one();
    }

    /// Resolves at the next local commit that logged events (or at once if one happened
    /// since the last call).
    pub async fn wait(&self) {
        self.0.notified().await;
    }
}

/// Appends `events` inside the caller's transaction and returns their ids. On PostgreSQL
/// the transaction also notifies [`CHANNEL`] (delivered at commit).
pub(crate) async fn append(
    conn: &mut dyn Conn,
    events: &[NewEvent],
) -> Result<Vec<i64>, StoreError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let dialect = conn.dialect();
    let n = events.len() as i64;
    let mut sql = Sql::new(dialect);
    sql.push("UPDATE _event_head SET position = position + ")
        .bind(Value::Int(n))
        .push(" RETURNING position");
    let last = match conn
        .query(&sql, &[ColType::Int])
        .await?
        .first()
        .map(|r| &r[..])
    {
        Some([Value::Int(last)]) => *last,
        _ => return Err(StoreError::internal("the event log has no head row")),
    };
    let first = last - n + 1;
    let at_ms = chrono::Utc::now().timestamp_millis();
    for (chunk_index, chunk) in events.chunks(INSERT_CHUNK).enumerate() {
        let mut sql = Sql::new(dialect);
        sql.push("INSERT INTO _events (id, kind, topic, record_id, action, body, at_ms) VALUES ");
        for (i, e) in chunk.iter().enumerate() {
            let id = first + (chunk_index * INSERT_CHUNK + i) as i64;
            if i > 0 {
                sql.push(", ");
            }
            sql.push("(")
                .bind(Value::Int(id))
                .push(", ")
                .bind(Value::Text(e.kind.as_str().into()))
                .push(", ")
                .bind(Value::Text(e.topic.clone()))
                .push(", ")
                .bind(e.record_id.clone().map_or(Value::Null, Value::Text))
                .push(", ")
                .bind(Value::Text(e.action.clone()))
                .push(", ")
                .bind(Value::Text(e.body.clone()))
                .push(", ")
                .bind(Value::Int(at_ms))
                .push(")");
        }
        conn.execute(&sql).await?;
    }
    if dialect == Dialect::Postgres {
        conn.execute_script(&format!("NOTIFY {CHANNEL}")).await?;
    }
    Ok((first..=last).collect())
}

/// The event log of one store: reads for the readers, wake-ups, pruning. (Appends happen in
/// the transactions of record writes and of [`crate::channel_state`].)
pub struct EventLog<'a> {
    store: &'a Store,
}

impl Store {
    /// The realtime event log; see [`crate::event_log`].
    pub fn event_log(&self) -> EventLog<'_> {
        EventLog { store: self }
    }
}

impl EventLog<'_> {
    /// The id of the last committed event (0 when none ever was).
    ///
    /// # Errors
    /// Database errors.
    pub async fn head(&self) -> Result<i64, StoreError> {
        let mut conn = self.store.db.read().await?;
        let mut sql = Sql::new(conn.dialect());
        sql.push("SELECT position FROM _event_head");
        match conn
            .query(&sql, &[ColType::Int])
            .await?
            .first()
            .map(|r| &r[..])
        {
            Some([Value::Int(p)]) => Ok(*p),
            _ => Err(StoreError::internal("the event log has no head row")),
        }
    }

    /// The id of the oldest event still kept, or `None` when the log is empty.
    ///
    /// # Errors
    /// Database errors.
    pub async fn oldest(&self) -> Result<Option<i64>, StoreError> {
        let mut conn = self.store.db.read().await?;
        let mut sql = Sql::new(conn.dialect());
        sql.push("SELECT MIN(id) FROM _events");
        Ok(
            match conn
                .query(&sql, &[ColType::Int])
                .await?
                .first()
                .map(|r| &r[..])
            {
                Some([Value::Int(p)]) => Some(*p),
                _ => None,
            },
        )
    }

    /// Up to `limit` events after id `after` (exclusive) and up to `until` (inclusive), in
    /// order.
    ///
    /// # Errors
    /// Database errors.
    pub async fn read(
        &self,
        after: i64,
        until: Option<i64>,
        limit: usize,
    ) -> Result<Vec<LoggedEvent>, StoreError> {
        let mut conn = self.store.db.read().await?;
        let mut sql = Sql::new(conn.dialect());
        sql.push("SELECT id, kind, topic, record_id, action, body, at_ms FROM _events WHERE id > ")
            .bind(Value::Int(after));
        if let Some(until) = until {
            sql.push(" AND id <= ").bind(Value::Int(until));
        }
        sql.push(" ORDER BY id LIMIT ")
            .bind(Value::Int(limit.min(i64::MAX as usize) as i64));
        use ColType::{Int, Text};
        let rows = conn
            .query(&sql, &[Int, Text, Text, Text, Text, Text, Int])
            .await?;
        rows.into_iter().map(decode).collect()
    }

    /// Deletes all but the last `keep` events; returns how many went.
    ///
    /// # Errors
    /// Database errors.
    pub async fn prune(&self, keep: u64) -> Result<u64, StoreError> {
        let head = self.head().await?;
        let below = head.saturating_sub(i64::try_from(keep).unwrap_or(i64::MAX));
        if below <= 0 {
            return Ok(0);
        }
        let mut tx = self.store.db.begin().await?;
        let mut sql = Sql::new(tx.dialect());
        sql.push("DELETE FROM _events WHERE id <= ")
            .bind(Value::Int(below));
        let n = tx.execute(&sql).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Fires after each commit of this process that logged events.
    pub fn local_wake(&self) -> Arc<LocalWake> {
        self.store.event_wake.clone()
    }

    /// Wake-ups for commits of other processes: on PostgreSQL a `LISTEN` connection of its
    /// own (reconnecting by itself; each reconnect wakes too, so nothing committed while it
    /// was down is missed). `None` on SQLite, where readers poll.
    pub fn remote_wake(&self) -> Option<tokio::sync::mpsc::Receiver<()>> {
        self.store.db.listen(CHANNEL)
    }
}

fn decode(row: Vec<Value>) -> Result<LoggedEvent, StoreError> {
    let mut it = row.into_iter();
    let mut next = || it.next().unwrap_or(Value::Null);
    let bad = || StoreError::internal("a malformed row in _events");
    let Value::Int(id) = next() else {
        return Err(bad());
    };
    let kind = match next() {
        Value::Text(t) => EventKind::parse(&t).ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    let text = |v: Value| match v {
        Value::Text(t) => Some(t),
        _ => None,
    };
    let topic = text(next()).ok_or_else(bad)?;
    let record_id = text(next());
    let action = text(next()).ok_or_else(bad)?;
    let body = text(next()).ok_or_else(bad)?;
    let at_ms = match next() {
        Value::Int(i) => i,
        _ => 0,
    };
    Ok(LoggedEvent {
        id,
        kind,
        topic,
        record_id,
        action,
        body,
        at_ms,
    })
}

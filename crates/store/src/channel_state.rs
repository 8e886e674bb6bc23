//! Channel state shared by every process: who is present in which channel (`_presence`) and
//! the stored messages of persistent channels (`_channel_messages`). Each change also appends
//! its event to the realtime log in the same transaction, so presence lists and the events
//! that update them cannot disagree, and a persisted message has the id of its event.
//!
//! A process refreshes `seen_ms` of its own members every few seconds; members of a process
//! that stopped without saying goodbye (killed, cut off) are swept by whichever process
//! notices, which publishes their leaves.

use brigade_core::value::Value;

use crate::conn::ColType;
use crate::error::StoreError;
use crate::event_log::{self, EventKind, NewEvent};
use crate::handle::Store;
use crate::sql::Sql;

/// A stored channel message.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelMessage {
    /// The id of its event.
    pub id: i64,
    /// Who sent it, as JSON.
    pub sender: String,
    /// What was sent, as JSON.
    pub payload: String,
    pub created: String,
}

/// Channel presence and history.
pub struct Channels<'a> {
    store: &'a Store,
}

impl Store {
    /// Channel presence and stored messages; see [`crate::channel_state`].
    pub fn channels(&self) -> Channels<'_> {
        Channels { store: self }
    }
}

fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

impl Channels<'_> {
    /// Broadcasts `payload` from `sender` (both JSON) on `channel`; with `keep`, the message is
    /// also stored and the channel trimmed to its last `keep` messages. Returns the event id.
    ///
    /// # Errors
    /// Database errors.
    pub async fn broadcast(
        &self,
        channel: &str,
        sender: &str,
        payload: &str,
        keep: Option<u64>,
    ) -> Result<i64, StoreError> {
        let mut tx = self.store.db.begin().await?;
        let body = format!(r#"{{"from":{sender},"payload":{payload}}}"#);
        let ids = event_log::append(
            tx.as_mut(),
            &[NewEvent {
                kind: EventKind::Broadcast,
                topic: channel.into(),
                record_id: None,
                action: "broadcast".into(),
                body,
            }],
        )
        .await?;
        let id = ids.first().copied().unwrap_or_default();
        if let Some(keep) = keep {
            let mut sql = Sql::new(tx.dialect());
            sql.push(
                "INSERT INTO _channel_messages (id, channel, sender, payload, created) VALUES (",
            )
            .bind(Value::Int(id))
            .push(", ")
            .bind(text(channel))
            .push(", ")
            .bind(text(sender))
            .push(", ")
            .bind(text(payload))
            .push(", ")
            .bind(Value::Text(brigade_core::time::now()))
            .push(")");
            tx.execute(&sql).await?;
            let mut sql = Sql::new(tx.dialect());
            sql.push("DELETE FROM _channel_messages WHERE channel = ")
                .bind(text(channel))
                .push(" AND id <= (SELECT id FROM _channel_messages WHERE channel = ")
                .bind(text(channel))
                .push(" ORDER BY id DESC LIMIT 1 OFFSET ")
                .bind(Value::Int(i64::try_from(keep).unwrap_or(i64::MAX)))
                .push(")");
            tx.execute(&sql).await?;
        }
        tx.commit().await?;
        self.store.event_wake.fire();
        Ok(id)
    }

    /// Stored messages of `channel` before id `before` (newest first), at most `limit`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn history(
        &self,
        channel: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<ChannelMessage>, StoreError> {
        let mut conn = self.store.db.read().await?;
        let mut sql = Sql::new(conn.dialect());
        sql.push("SELECT id, sender, payload, created FROM _channel_messages WHERE channel = ")
            .bind(text(channel));
        if let Some(before) = before {
            sql.push(" AND id < ").bind(Value::Int(before));
        }
        sql.push(" ORDER BY id DESC LIMIT ")
            .bind(Value::Int(i64::from(limit)));
        let rows = conn
            .query(
                &sql,
                &[ColType::Int, ColType::Text, ColType::Text, ColType::Text],
            )
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|row| match <[Value; 4]>::try_from(row).ok()? {
                [
                    Value::Int(id),
                    Value::Text(sender),
                    Value::Text(payload),
                    Value::Text(created),
                ] => Some(ChannelMessage {
                    id,
                    sender,
                    payload,
                    created,
                }),
                _ => None,
            })
            .collect())
    }

    /// Records that `member` (its key and JSON) of `process` joined `channel`, with its
    /// presence event; returns the event id.
    ///
    /// # Errors
    /// Database errors.
    pub async fn join(
        &self,
        channel: &str,
        key: &str,
        process: &str,
        member: &str,
    ) -> Result<i64, StoreError> {
        let mut tx = self.store.db.begin().await?;
        let mut sql = Sql::new(tx.dialect());
        sql.push("INSERT INTO _presence (channel, member, process, body, seen_ms) VALUES (")
            .bind(text(channel))
            .push(", ")
            .bind(text(key))
            .push(", ")
            .bind(text(process))
            .push(", ")
            .bind(text(member))
            .push(", ")
            .bind(Value::Int(chrono::Utc::now().timestamp_millis()))
            .push(") ON CONFLICT (channel, member) DO UPDATE SET body = excluded.body, seen_ms = excluded.seen_ms");
        tx.execute(&sql).await?;
        let ids = event_log::append(
            tx.as_mut(),
            &[presence(channel, &format!("[{member}]"), "[]")],
        )
        .await?;
        tx.commit().await?;
        self.store.event_wake.fire();
        Ok(ids.first().copied().unwrap_or_default())
    }

    /// Records that member `key` left `channel`, with its presence event (none when it was
    /// not there).
    ///
    /// # Errors
    /// Database errors.
    pub async fn leave(&self, channel: &str, key: &str) -> Result<(), StoreError> {
        let mut tx = self.store.db.begin().await?;
        let mut sql = Sql::new(tx.dialect());
        sql.push("DELETE FROM _presence WHERE channel = ")
            .bind(text(channel))
            .push(" AND member = ")
            .bind(text(key))
            .push(" RETURNING body");
        let gone = tx.query(&sql, &[ColType::Text]).await?;
        let leaves = bodies(gone);
        if !leaves.is_empty() {
            event_log::append(
                tx.as_mut(),
                &[presence(channel, "[]", &format!("[{}]", leaves.join(",")))],
            )
            .await?;
        }
        tx.commit().await?;
        self.store.event_wake.fire();
        Ok(())
    }

    /// The members of `channel` (as JSON) and the id of the last event whose effect the list
    /// includes, read in one statement (one snapshot): presence events after that id change
    /// the list, those up to it are already in it.
    ///
    /// # Errors
    /// Database errors.
    pub async fn members(&self, channel: &str) -> Result<(Vec<String>, i64), StoreError> {
        let mut conn = self.store.db.read().await?;
        let mut sql = Sql::new(conn.dialect());
        sql.push(
            "SELECT h.position, p.body FROM _event_head h LEFT JOIN _presence p ON p.channel = ",
        )
        .bind(text(channel))
        .push(" ORDER BY p.seen_ms, p.member");
        let rows = conn.query(&sql, &[ColType::Int, ColType::Text]).await?;
        let mut head = 0;
        let mut members = Vec::with_capacity(rows.len());
        for row in rows {
            if let [Value::Int(position), body] = &row[..] {
                head = *position;
                if let Value::Text(body) = body {
                    members.push(body.clone());
                }
            }
        }
        Ok((members, head))
    }

    /// Marks the members of `process` as still there.
    ///
    /// # Errors
    /// Database errors.
    pub async fn heartbeat(&self, process: &str) -> Result<(), StoreError> {
        let mut tx = self.store.db.begin().await?;
        let mut sql = Sql::new(tx.dialect());
        sql.push("UPDATE _presence SET seen_ms = ")
            .bind(Value::Int(chrono::Utc::now().timestamp_millis()))
            .push(" WHERE process = ")
            .bind(text(process));
        tx.execute(&sql).await?;
        tx.commit().await
    }

    /// Removes members not seen for `stale_ms` (their process is gone) — or, with
    /// `process`, every member of that process (it is stopping) — and publishes their
    /// leaves. Returns how many left.
    ///
    /// # Errors
    /// Database errors.
    pub async fn sweep(&self, stale_ms: i64, process: Option<&str>) -> Result<usize, StoreError> {
        let mut tx = self.store.db.begin().await?;
        let mut sql = Sql::new(tx.dialect());
        sql.push("DELETE FROM _presence WHERE ");
        match process {
            Some(p) => sql.push("process = ").bind(text(p)),
            None => sql
                .push("seen_ms < ")
                .bind(Value::Int(chrono::Utc::now().timestamp_millis() - stale_ms)),
        };
        sql.push(" RETURNING channel, body");
        let gone = tx.query(&sql, &[ColType::Text, ColType::Text]).await?;
        let mut by_channel: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for row in gone {
            if let [Value::Text(channel), Value::Text(body)] = &row[..] {
                by_channel
                    .entry(channel.clone())
                    .or_default()
                    .push(body.clone());
            }
        }
        let count = by_channel.values().map(Vec::len).sum();
        let events: Vec<NewEvent> = by_channel
            .iter()
            .map(|(channel, leaves)| presence(channel, "[]", &format!("[{}]", leaves.join(","))))
            .collect();
        event_log::append(tx.as_mut(), &events).await?;
        tx.commit().await?;
        if count > 0 {
            self.store.event_wake.fire();
        }
        Ok(count)
    }
}

fn presence(channel: &str, joins: &str, leaves: &str) -> NewEvent {
    NewEvent {
        kind: EventKind::Presence,
        topic: channel.into(),
        record_id: None,
        action: "presence".into(),
        body: format!(r#"{{"joins":{joins},"leaves":{leaves}}}"#),
    }
}

fn bodies(rows: Vec<Vec<Value>>) -> Vec<String> {
    rows.into_iter()
        .filter_map(|mut r| match r.pop() {
            Some(Value::Text(t)) => Some(t),
            _ => None,
        })
        .collect()
}

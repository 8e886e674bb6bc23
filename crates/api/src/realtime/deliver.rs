//! Handing logged record events to subscriptions: live, from the pump, and as a replay when a
//! client resumes. Both go through [`admit_for`], so a replayed event is checked exactly as a
//! live one.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use brigade_core::schema::Collection;
use brigade_store::query::filter::Related;
use brigade_store::{EventKind, LoggedEvent, Record, Store, StoreError};

use super::connection::{Connection, Subscription};
use super::message::Outgoing;
use super::{Hub, lock};

/// Related records loaded once per event, whatever the number of subscribers whose rules
/// walk to them.
pub(super) struct Memo {
    store: Arc<Store>,
    seen: std::sync::Mutex<HashMap<(String, String), Option<Record>>>,
}

impl Memo {
    pub(super) fn new(store: Arc<Store>) -> Self {
        Memo {
            store,
            seen: std::sync::Mutex::new(HashMap::new()),
        }
    }
}

#[async_trait]
impl Related for Memo {
    async fn related(
        &self,
        collection: &Collection,
        id: &str,
    ) -> Result<Option<Record>, StoreError> {
        let key = (collection.name.clone(), id.to_string());
        if let Some(hit) = lock(&self.seen).get(&key) {
            return Ok(hit.clone());
        }
        let found = self.store.related(collection, id).await?;
        lock(&self.seen).insert(key, found.clone());
        Ok(found)
    }
}

/// One record event, decoded once for every subscriber that needs it.
pub(super) struct RecordEvent<'a> {
    pub(super) event: &'a LoggedEvent,
    record: Option<Record>,
    body: Arc<str>,
    action: Arc<str>,
}

impl<'a> RecordEvent<'a> {
    pub(super) fn new(event: &'a LoggedEvent) -> Self {
        RecordEvent {
            event,
            record: None,
            body: Arc::from(event.body.as_str()),
            action: Arc::from(event.action.as_str()),
        }
    }

    fn record(&mut self) -> Option<&Record> {
        if self.record.is_none() {
            match serde_json::from_str(&self.event.body) {
                Ok(r) => self.record = Some(r),
                Err(e) => {
                    tracing::error!(event = self.event.id, error = %e, "A logged record is not a JSON object; it was not delivered.");
                    return None;
                }
            }
        }
        self.record.as_ref()
    }

    fn message(&self, topic: Arc<str>) -> Outgoing {
        Outgoing::Event {
            id: self.event.id,
            topic,
            action: self.action.clone(),
            record: self.body.clone(),
            at_ms: self.event.at_ms,
        }
    }
}

/// Hands a logged event to every connection it may reach.
pub(super) async fn dispatch(hub: &Hub, connections: &[Arc<Connection>], event: &LoggedEvent) {
    match event.kind {
        EventKind::Record => {
            let mut decoded = RecordEvent::new(event);
            let related = Memo::new(hub.store.clone());
            let generation = hub.generation();
            for connection in connections {
                let candidates = connection.candidates(
                    &hub.store,
                    generation,
                    &event.topic,
                    event.record_id.as_deref(),
                    event.id,
                );
                for (label, plans) in candidates {
                    let Some(record) = decoded.record() else {
                        return;
                    };
                    if plans.admit(record, &related).await
                        && connection.send(decoded.message(label))
                    {
                        metrics::counter!("realtime_events_total").increment(1);
                    }
                }
            }
        }
        EventKind::Broadcast | EventKind::Presence => hub.channels.dispatch(connections, event),
    }
}

/// Sends `connection` the logged events after `since` up to `until` that `subs` admit (a
/// client resuming); the caller holds the hub's position, so live events wait.
///
/// # Errors
/// Reading the log.
pub(super) async fn replay(
    hub: &Hub,
    connection: &Connection,
    subs: &[Subscription],
    since: i64,
    until: i64,
) -> Result<(), StoreError> {
    const CHUNK: usize = 500;
    let related = Memo::new(hub.store.clone());
    let log = hub.store.event_log();
    let mut after = since;
    while after < until {
        let events = log.read(after, Some(until), CHUNK).await?;
        let Some(last) = events.last() else {
            break;
        };
        after = last.id;
        for event in &events {
            if event.kind != EventKind::Record {
                continue;
            }
            let mut decoded = RecordEvent::new(event);
            for sub in subs {
                if !sub.reaches(&event.topic, event.record_id.as_deref()) {
                    continue;
                }
                let Some(record) = decoded.record() else {
                    break;
                };
                if sub.plans().admit(record, &related).await
                    && !connection.send(decoded.message(sub.label.clone()))
                {
                    return Ok(()); // the queue filled up: the connection is ending
                }
            }
        }
    }
    Ok(())
}

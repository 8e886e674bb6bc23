//! One open realtime connection: its session, its bounded queue, its subscriptions with their
//! checked plans, and the channels it joined.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use brigade_store::query::filter::{Plan, Related};
use brigade_store::{Access, RuleOp, Store, StoreError};
use tokio::sync::{mpsc, watch};

use super::lock;
use super::message::Outgoing;
use super::session::Session;
use super::topic::Topic;

/// A connection of the hub.
pub(crate) struct Connection {
    pub(crate) id: u64,
    pub(crate) session: Session,
    pub(crate) ip: IpAddr,
    queue: mpsc::Sender<Outgoing>,
    subscriptions: Mutex<Vec<Subscription>>,
    /// Channels joined.
    pub(crate) channels: Mutex<Vec<JoinedChannel>>,
    /// Set once the hub ends the connection, with the reason.
    killed: watch::Sender<Option<String>>,
}

/// A channel a connection joined.
pub(crate) struct JoinedChannel {
    pub(crate) name: Arc<str>,
    /// The presence list sent with `joined` includes every event up to this id: only later
    /// broadcasts and presence changes are delivered.
    pub(crate) after: i64,
}

impl JoinedChannel {
    /// Whether event `id` on `channel` is for this member.
    pub(crate) fn takes(&self, channel: &str, id: i64) -> bool {
        *self.name == *channel && id > self.after
    }
}

/// One subscription to a collection or a record.
pub(crate) struct Subscription {
    /// The topic as the client wrote it (the SSE event name, the WebSocket `topic`).
    pub(crate) label: Arc<str>,
    pub(crate) topic: Topic,
    pub(crate) filter: Option<String>,
    /// Events up to this id were already delivered to the client (it resumed from a later
    /// id than this process had reached).
    pub(crate) skip_until: i64,
    /// The plans and the schema generation they were built for.
    plans: (u64, Arc<Plans>),
}

/// What an event must satisfy to reach a subscription.
#[derive(Debug)]
pub(crate) enum Plans {
    /// Nothing reaches it: the collection is gone, its view rule is superusers-only, or the
    /// filter no longer checks against the schema.
    Hidden,
    Visible {
        rule: Option<Plan>,
        filter: Option<Plan>,
    },
}

impl Plans {
    /// The plans of `topic` with `filter` for `access`.
    ///
    /// # Errors
    /// What checking the rule or filter fails with (not found, forbidden, invalid filter).
    pub(crate) fn build(
        store: &Store,
        access: &Access,
        topic: &Topic,
        filter: Option<&str>,
    ) -> Result<Plans, StoreError> {
        let rule = store.rule_plan(&topic.collection, RuleOp::View, access, None)?;
        let filter = match filter.map(str::trim).filter(|f| !f.is_empty()) {
            Some(f) => Some(store.filter_plan(&topic.collection, f, access)?),
            None => None,
        };
        Ok(Plans::Visible { rule, filter })
    }

    /// Whether `record` passes the rule and the filter.
    pub(crate) async fn admit(
        &self,
        record: &brigade_store::Record,
        related: &dyn Related,
    ) -> bool {
        let Plans::Visible { rule, filter } = self else {
            return false;
        };
        for plan in [rule, filter].into_iter().flatten() {
            match plan.matches(record, related).await {
                Ok(true) => {}
                Ok(false) => return false,
                Err(e) => {
                    tracing::warn!(error = %e, "A realtime rule check failed; the event was not sent to that subscriber.");
                    return false;
                }
            }
        }
        true
    }
}

impl Subscription {
    pub(crate) fn new(
        label: Arc<str>,
        topic: Topic,
        filter: Option<String>,
        plans: Plans,
        generation: u64,
    ) -> Self {
        Subscription {
            label,
            topic,
            filter,
            skip_until: 0,
            plans: (generation, Arc::new(plans)),
        }
    }

    /// Whether an event of record `id` in `collection` is on this topic.
    pub(crate) fn reaches(&self, collection: &str, id: Option<&str>) -> bool {
        self.topic.collection == collection
            && self.topic.record.as_deref().is_none_or(|r| Some(r) == id)
    }

    pub(crate) fn plans(&self) -> &Plans {
        &self.plans.1
    }
}

impl Connection {
    pub(crate) fn new(
        id: u64,
        session: Session,
        ip: IpAddr,
        queue: usize,
    ) -> (Connection, mpsc::Receiver<Outgoing>) {
        let (tx, rx) = mpsc::channel(queue);
        (
            Connection {
                id,
                session,
                ip,
                queue: tx,
                subscriptions: Mutex::new(Vec::new()),
                channels: Mutex::new(Vec::new()),
                killed: watch::channel(None).0,
            },
            rx,
        )
    }

    /// Queues a message; a full queue ends the connection (the client is not reading).
    pub(crate) fn send(&self, message: Outgoing) -> bool {
        match self.queue.try_send(message) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::counter!("realtime_dropped_total").increment(1);
                self.kill(format!(
                    "slow consumer: {} messages were waiting unread (realtime.queue)",
                    self.queue.max_capacity()
                ));
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Ends the connection with `reason` (sent to the client when the transport can).
    pub(crate) fn kill(&self, reason: String) {
        self.killed.send_if_modified(|r| {
            if r.is_none() {
                *r = Some(reason);
                true
            } else {
                false
            }
        });
    }

    /// Resolves with the reason once the hub ended the connection.
    pub(crate) fn killed(&self) -> watch::Receiver<Option<String>> {
        self.killed.subscribe()
    }

    /// The topics subscribed to, as the client wrote them.
    pub(crate) fn labels(&self) -> Vec<Arc<str>> {
        lock(&self.subscriptions)
            .iter()
            .map(|s| s.label.clone())
            .collect()
    }

    pub(crate) fn subscription_count(&self) -> usize {
        lock(&self.subscriptions).len() + lock(&self.channels).len()
    }

    /// Adds subscriptions (the hub holds the dispatch position meanwhile).
    pub(crate) fn add(&self, subs: Vec<Subscription>) {
        metrics::gauge!("realtime_subscriptions").increment(subs.len() as f64);
        lock(&self.subscriptions).extend(subs);
    }

    /// Removes the subscriptions to `label`; returns how many there were.
    pub(crate) fn remove(&self, label: &str) -> usize {
        let mut subs = lock(&self.subscriptions);
        let before = subs.len();
        subs.retain(|s| &*s.label != label);
        let gone = before - subs.len();
        metrics::gauge!("realtime_subscriptions").decrement(gone as f64);
        gone
    }

    /// The subscriptions an event of record `id` in `collection` may reach, with fresh plans:
    /// `(label, plans)`.
    pub(crate) fn candidates(
        &self,
        store: &Store,
        generation: u64,
        collection: &str,
        id: Option<&str>,
        event_id: i64,
    ) -> Vec<(Arc<str>, Arc<Plans>)> {
        let mut subs = lock(&self.subscriptions);
        let mut out = Vec::new();
        for sub in subs.iter_mut() {
            if event_id <= sub.skip_until || !sub.reaches(collection, id) {
                continue;
            }
            if sub.plans.0 != generation {
                let plans = Plans::build(
                    store,
                    self.session.access(),
                    &sub.topic,
                    sub.filter.as_deref(),
                )
                .unwrap_or(Plans::Hidden);
                sub.plans = (generation, Arc::new(plans));
            }
            out.push((sub.label.clone(), sub.plans.1.clone()));
        }
        out
    }
}

//! Realtime: record changes and channel messages pushed to clients over SSE
//! (`GET /api/realtime`) and WebSocket (`GET /api/ws`).
//!
//! Every event comes from one place, the database's event log ([`brigade_store::event_log`]),
//! which numbers record changes, broadcasts and presence changes in commit order whichever
//! process committed them. Each process runs one [`pump`] that reads the log after the last id
//! it delivered and hands each event to its own [`Hub`]; so with several servers on one
//! PostgreSQL every subscriber gets every event once, in commit order, and a client that
//! reconnects anywhere resumes from the id it last saw.
//!
//! The hub is the one enforcement point: each event is checked against each subscriber's view
//! rule and filter with the in-memory evaluator ([`brigade_store::query::Plan::matches`]), with
//! one load per related record per event, not a query per subscriber. Plans are rebuilt when
//! the store's schema generation moves, so a tightened rule applies to open subscriptions from
//! the next event on.
//!
//! A connection's queue is bounded: a client that does not read is disconnected ("slow
//! consumer"), and writers never wait for readers (the log is written in the write's own
//! transaction; delivery happens afterwards, in the pump).

mod channels;
mod connection;
mod deliver;
mod message;
mod pump;
pub(crate) mod routes;
mod session;
mod sse;
mod topic;
mod ws;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use brigade_core::settings::RealtimeSettings;
use brigade_store::Store;
use tokio::sync::watch;

pub(crate) use channels::{leave_all, maintain};
pub(crate) use connection::Connection;
pub(crate) use message::Outgoing;
pub(crate) use pump::{prune, run as pump};

use crate::error::ApiError;

/// Every open realtime connection of this process, and the position in the event log up to
/// which they have been served.
pub(crate) struct Hub {
    store: Arc<Store>,
    settings: RealtimeSettings,
    connections: RwLock<HashMap<u64, Arc<Connection>>>,
    /// The id of the last event handed to the connections. Held while a batch is
    /// dispatched and while a subscription is added (with its replay), so a new subscription
    /// sees each event exactly once: from the replay or live.
    position: tokio::sync::Mutex<i64>,
    next_id: AtomicU64,
    /// Open connections per client address and per account.
    open: Mutex<Open>,
    /// `true` once the server is shutting down: connections close with a reconnect hint.
    stopping: watch::Sender<bool>,
    channels: channels::Channels,
}

#[derive(Default)]
struct Open {
    by_ip: HashMap<IpAddr, usize>,
    by_account: HashMap<String, usize>,
}

/// A connection's place in the hub; unregisters it when dropped.
pub(crate) struct Registration {
    hub: Arc<Hub>,
    pub(crate) connection: Arc<Connection>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.hub.unregister(&self.connection);
    }
}

impl Hub {
    /// A hub for `store`; the caller starts [`pump::run`] with it.
    pub(crate) fn new(store: Arc<Store>, settings: RealtimeSettings) -> Arc<Hub> {
        let channels = channels::Channels::new(settings.channels.clone());
        Arc::new(Hub {
            store,
            settings,
            connections: RwLock::new(HashMap::new()),
            position: tokio::sync::Mutex::new(0),
            next_id: AtomicU64::new(1),
            open: Mutex::new(Open::default()),
            stopping: watch::channel(false).0,
            channels,
        })
    }

    pub(crate) fn settings(&self) -> &RealtimeSettings {
        &self.settings
    }

    pub(crate) fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Registers a connection, within the caps per address and per account.
    ///
    /// # Errors
    /// 429 when a cap is reached; 503 while the server is stopping.
    pub(crate) fn register(
        self: &Arc<Self>,
        session: session::Session,
        ip: IpAddr,
    ) -> Result<(Registration, tokio::sync::mpsc::Receiver<Outgoing>), ApiError> {
        if *self.stopping.borrow() {
            return Err(ApiError::new(
                http::StatusCode::SERVICE_UNAVAILABLE,
                "The server is restarting; reconnect in a moment.",
            ));
        }
        {
            let mut open = lock(&self.open);
            let per_ip = open.by_ip.get(&ip).copied().unwrap_or(0);
            if per_ip >= self.settings.max_connections_per_ip {
                return Err(too_many(format!(
                    "This address already has {per_ip} realtime connections \
                     (realtime.max_connections_per_ip); close one first."
                )));
            }
            if let Some(account) = session.account() {
                let per_account = open.by_account.get(account).copied().unwrap_or(0);
                if per_account >= self.settings.max_connections_per_account {
                    return Err(too_many(format!(
                        "This account already has {per_account} realtime connections \
                         (realtime.max_connections_per_account); close one first."
                    )));
                }
                *open.by_account.entry(account.to_string()).or_default() += 1;
            }
            *open.by_ip.entry(ip).or_default() += 1;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (connection, rx) = Connection::new(id, session, ip, self.settings.queue);
        let connection = Arc::new(connection);
        write(&self.connections).insert(id, connection.clone());
        metrics::gauge!("realtime_connections").increment(1.0);
        Ok((
            Registration {
                hub: self.clone(),
                connection,
            },
            rx,
        ))
    }

    fn unregister(&self, connection: &Connection) {
        if write(&self.connections).remove(&connection.id).is_none() {
            return;
        }
        metrics::gauge!("realtime_connections").decrement(1.0);
        metrics::gauge!("realtime_subscriptions").decrement(connection.subscription_count() as f64);
        self.channels.left_everything(self, connection);
        let mut open = lock(&self.open);
        if let Some(n) = open.by_ip.get_mut(&connection.ip) {
            *n -= 1;
            if *n == 0 {
                open.by_ip.remove(&connection.ip);
            }
        }
        if let Some(account) = connection.session.account()
            && let Some(n) = open.by_account.get_mut(account)
        {
            *n -= 1;
            if *n == 0 {
                open.by_account.remove(account);
            }
        }
    }

    /// A snapshot of the open connections.
    fn connections(&self) -> Vec<Arc<Connection>> {
        read(&self.connections).values().cloned().collect()
    }

    /// Whether no connection is open.
    fn is_idle(&self) -> bool {
        read(&self.connections).is_empty()
    }

    /// The store's schema generation: subscriptions rebuild their plans when it moved, so a
    /// rule changed here applies to the next event, and one changed elsewhere as soon as this
    /// process has the new schema.
    fn generation(&self) -> u64 {
        self.store.schema_generation()
    }

    /// Adds `subs` to `connection`. With `since` (the id of the last event the client saw),
    /// the events it missed are replayed first from the log — or, when they are no longer
    /// kept, it is told to `resync`. Each subscription starts with a `subscribed` message
    /// carrying the position it is live after.
    ///
    /// # Errors
    /// Reading the log.
    pub(crate) async fn subscribe(
        &self,
        connection: &Connection,
        mut subs: Vec<connection::Subscription>,
        since: Option<i64>,
    ) -> Result<(), brigade_store::StoreError> {
        let position = self.position.lock().await;
        let now = *position;
        let (start, resync) = match since {
            None => (now, false),
            Some(since) if since >= now => {
                // The client saw events this process has not delivered yet (another process
                // served it): skip those.
                for sub in &mut subs {
                    sub.skip_until = since;
                }
                (since, false)
            }
            Some(since) => {
                let oldest = self.store.event_log().oldest().await?;
                let kept = oldest.is_some_and(|o| o <= since + 1);
                let within =
                    u64::try_from(now - since).is_ok_and(|gap| gap <= self.settings.replay);
                if kept && within {
                    (since, false)
                } else {
                    (now, true)
                }
            }
        };
        for sub in &subs {
            if resync {
                connection.send(Outgoing::Resync {
                    topic: sub.label.clone(),
                });
            }
            connection.send(Outgoing::Subscribed {
                topic: sub.label.clone(),
                position: start,
            });
        }
        if start < now {
            deliver::replay(self, connection, &subs, start, now).await?;
        }
        connection.add(subs);
        drop(position);
        Ok(())
    }

    /// Tells every connection the server is going away (they close with a reconnect hint)
    /// and refuses new ones.
    pub(crate) fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// Resolves when the server starts shutting down.
    pub(crate) fn stopping(&self) -> watch::Receiver<bool> {
        self.stopping.subscribe()
    }
}

/// Records write-to-delivery latency as a message goes out.
pub(crate) fn observe_delivery(message: &Outgoing) {
    if let Some(at) = message.committed_at_ms() {
        let ms = chrono::Utc::now()
            .timestamp_millis()
            .saturating_sub(at)
            .max(0);
        metrics::histogram!("realtime_delivery_seconds").record(ms as f64 / 1000.0);
    }
}

fn too_many(message: String) -> ApiError {
    ApiError::new(http::StatusCode::TOO_MANY_REQUESTS, message)
}

/// Poisoning cannot leave these maps half-updated (each update is one statement), so a
/// poisoned lock is used as is.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

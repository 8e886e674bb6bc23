//! `LISTEN` on a connection of its own, outside the pool: pooled connections are handed from
//! request to request and would lose their registrations. Notifications only wake the reader
//! (the payload is not used), so the receiving side coalesces them into a channel of one.

use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};

use brigade_core::report::chain;

/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Listens on `channel` until the receiver is dropped; see [`crate::conn::Database::listen`].
pub(super) fn listen(config: tokio_postgres::Config, channel: &'static str) -> mpsc::Receiver<()> {
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(200);
        let mut failing = false;
        while !tx.is_closed() {
            match listen_once(&config, channel, &tx).await {
                Ok(()) => return,
                Err(message) => {
                    if !failing {
                        tracing::warn!(channel, error = %message, "Lost the PostgreSQL notification connection; reconnecting (changes made elsewhere are picked up when it returns).");
                        failing = true;
                    }
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            if failing && backoff == MAX_BACKOFF {
                tracing::debug!(channel, "Still reconnecting the notification connection.");
            }
        }
    });
    rx
}

/// One connection's life: `Ok` when the receiver went away, `Err` when the connection failed.
async fn listen_once(
    config: &tokio_postgres::Config,
    channel: &'static str,
    wake: &mpsc::Sender<()>,
) -> Result<(), String> {
    let (client, mut connection) = config.connect(NoTls).await.map_err(|e| chain(&e))?;
    let (note_tx, mut notes) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(_)) => {
                    if note_tx.send(()).is_err() {
                        return Ok(());
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(chain(&e)),
            }
        }
        Err("the server closed the connection".to_string())
    });
    let result = async {
        client
            .batch_execute(&format!("LISTEN {channel}"))
            .await
            .map_err(|e| chain(&e))?;
        tracing::debug!(channel, "Listening for notifications.");
        // Whatever was committed while not listening is read now.
        let _ = wake.try_send(());
        loop {
            tokio::select! {
                note = notes.recv() => match note {
                    Some(()) => { let _ = wake.try_send(()); }
                    None => return Err("the notification connection ended".to_string()),
                },
                () = wake.closed() => return Ok(()),
            }
        }
    }
    .await;
    drop(client);
    match (result, driver.await) {
        (Ok(()), _) => Ok(()),
        (Err(_), Ok(Err(cause))) => Err(cause),
        (Err(message), _) => Err(message),
    }
}

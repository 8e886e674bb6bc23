//! Ctrl-C (SIGINT) and SIGTERM during `brigade pipeline run | retry`: like `brigade serve`,
//! the run is cancelled rather than killed, so it is recorded `cancelled` with the signal's
//! name, publishes nothing half-written and frees its pipeline's lease; the process then
//! exits 130 or 143. A second signal exits at once.

use std::sync::{Arc, OnceLock};

use brigade_pipelines::Runner;

/// A signal that stops the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    Interrupt,
    Terminate,
}

impl Signal {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        }
    }

    /// 128 + the signal's number, as shells report a process killed by it.
    pub(crate) fn exit_code(self) -> u8 {
        match self {
            Signal::Interrupt => 130,
            Signal::Terminate => 143,
        }
    }
}

/// Watches for SIGINT and SIGTERM while it lives.
pub(crate) struct Stop {
    received: Arc<OnceLock<Signal>>,
    task: tokio::task::JoinHandle<()>,
}

impl Stop {
    /// Starts watching: the first signal cancels the runs of `runner`.
    pub(crate) fn watch(runner: Arc<Runner>) -> Stop {
        let received: Arc<OnceLock<Signal>> = Arc::default();
        let first = received.clone();
        let task = tokio::spawn(async move {
            #[cfg(unix)]
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            loop {
                #[cfg(unix)]
                let terminate = async {
                    match term.as_mut() {
                        Some(s) => {
                            s.recv().await;
                        }
                        None => std::future::pending::<()>().await,
                    }
                };
                #[cfg(not(unix))]
                let terminate = std::future::pending::<()>();
                let signal = tokio::select! {
                    _ = tokio::signal::ctrl_c() => Signal::Interrupt,
                    () = terminate => Signal::Terminate,
                };
                if first.set(signal).is_err() {
                    eprintln!(
                        "{} again: exiting without waiting for the run",
                        signal.name()
                    );
                    std::process::exit(i32::from(signal.exit_code()));
                }
                eprintln!(
                    "{}: cancelling the run; its tables stay as they were (send it again to exit at once)",
                    signal.name()
                );
                runner.cancel_all_because(&format!(
                    "the run was cancelled: the process running it got {}",
                    signal.name()
                ));
            }
        });
        Stop { received, task }
    }

    /// The first signal received, if any.
    pub(crate) fn received(&self) -> Option<Signal> {
        self.received.get().copied()
    }
}

impl Drop for Stop {
    fn drop(&mut self) {
        self.task.abort();
    }
}

//! Every background task of `serve` in one registry, so none runs detached: on shutdown the
//! services (loops that run as long as the server: the scheduler, followers, pruners, event
//! streams) are stopped, and the jobs (work a request started and someone relies on: a reset
//! mail, an API key's last use) are given the grace period to finish; those still running
//! after it are named in the log and stopped. A task that panics is logged with its name.
//! Pipeline runs are the runner's own: it tracks them, and `App::run_until` cancels and drains
//! them after the tasks here.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::task::{Id, JoinError, JoinSet};

/// The registry; cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Tasks {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    services: Mutex<Running>,
    jobs: Mutex<Running>,
}

/// Tasks of one kind and their names.
#[derive(Default)]
struct Running {
    set: JoinSet<()>,
    names: HashMap<Id, &'static str>,
}

impl Running {
    fn spawn(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        // Finished tasks are reaped as new ones come, so the sets stay small.
        while let Some(done) = self.set.try_join_next_with_id() {
            self.reap(done);
        }
        let handle = self.set.spawn(task);
        self.names.insert(handle.id(), name);
    }

    fn reap(&mut self, done: Result<(Id, ()), JoinError>) {
        match done {
            Ok((id, ())) => {
                self.names.remove(&id);
            }
            Err(e) => {
                let name = self.names.remove(&e.id()).unwrap_or("unknown");
                if e.is_panic() {
                    tracing::error!(task = name, "A background task panicked.");
                }
            }
        }
    }
}

impl Tasks {
    /// Starts `task`, which runs until shutdown stops it.
    pub(crate) fn service(
        &self,
        name: &'static str,
        task: impl Future<Output = ()> + Send + 'static,
    ) {
        lock(&self.inner.services).spawn(name, task);
    }

    /// Starts `task`, which shutdown lets finish within the grace period.
    pub(crate) fn job(&self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        lock(&self.inner.jobs).spawn(name, task);
    }

    /// Stops the services, then waits up to `grace` for the jobs and stops those left,
    /// naming them.
    pub(crate) async fn shutdown(&self, grace: Duration) {
        let mut services = std::mem::take(&mut *lock(&self.inner.services));
        services.set.abort_all();
        while let Some(done) = services.set.join_next_with_id().await {
            services.reap(done);
        }
        let mut jobs = std::mem::take(&mut *lock(&self.inner.jobs));
        let drained = tokio::time::timeout(grace, async {
            while let Some(done) = jobs.set.join_next_with_id().await {
                jobs.reap(done);
            }
        })
        .await;
        if drained.is_err() {
            let mut left: Vec<&str> = jobs.names.values().copied().collect();
            left.sort_unstable();
            tracing::warn!(tasks = ?left, "Background jobs did not finish within the grace period; stopping them.");
            jobs.set.abort_all();
            while jobs.set.join_next().await.is_some() {}
        }
    }
}

fn lock(m: &Mutex<Running>) -> std::sync::MutexGuard<'_, Running> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[tokio::test]
    async fn shutdown_stops_services_and_lets_jobs_finish() {
        let tasks = Tasks::default();
        let finished = Arc::new(AtomicBool::new(false));
        tasks.service("forever", std::future::pending());
        let done = finished.clone();
        tasks.job("mail", async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            done.store(true, Ordering::SeqCst);
        });
        tokio::time::timeout(
            Duration::from_secs(5),
            tasks.shutdown(Duration::from_secs(2)),
        )
        .await
        .expect("shutdown does not wait for services");
        assert!(finished.load(Ordering::SeqCst), "the job ran to its end");
    }

    #[tokio::test]
    async fn a_job_past_the_grace_period_is_stopped() {
        let tasks = Tasks::default();
        tasks.job("stuck", std::future::pending());
        tokio::time::timeout(
            Duration::from_secs(5),
            tasks.shutdown(Duration::from_millis(50)),
        )
        .await
        .expect("shutdown ends after the grace period");
    }
}

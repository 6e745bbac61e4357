//! What the cluster's parts share: a task told to stop through a flag, the
//! helper that opens a key-value bucket within a bound, and how many copies
//! NATS keeps of the stream and the buckets (`cluster.replicas`).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long stopping waits for the task before aborting it.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// A background task that stops when asked (or is aborted after
/// [`STOP_TIMEOUT`]).
pub(super) struct StoppableTask {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl StoppableTask {
    /// Spawns `work(stopped)`: `stopped` turns true when [`Self::stop`] runs.
    pub(super) fn spawn<F, Fut>(work: F) -> StoppableTask
    where
        F: FnOnce(watch::Receiver<bool>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (stop, stopped) = watch::channel(false);
        StoppableTask {
            stop,
            task: tokio::spawn(work(stopped)),
        }
    }

    /// Asks the task to stop and waits for it, at most [`STOP_TIMEOUT`].
    pub(super) async fn stop(self) {
        let _ = self.stop.send(true);
        let abort = self.task.abort_handle();
        if tokio::time::timeout(STOP_TIMEOUT, self.task).await.is_err() {
            abort.abort();
        }
    }
}

/// Creates the bucket `config` describes (or updates it), waiting at most
/// `wait`; the error says which bucket.
pub(super) async fn open_bucket(
    jetstream: &jetstream::Context,
    config: kv::Config,
    wait: Duration,
) -> Result<kv::Store, String> {
    let name = config.bucket.clone();
    match tokio::time::timeout(wait, jetstream.create_or_update_key_value(config)).await {
        Ok(Ok(bucket)) => Ok(bucket),
        Ok(Err(e)) => Err(format!("creating the {name} bucket: {e}")),
        Err(_) => Err(format!("creating the {name} bucket: timed out")),
    }
}

/// Copies NATS keeps of every stream and bucket this node creates: set once
/// from `cluster.replicas` when the node joins (every node of a cluster
/// reads the same file, so they agree).
static REPLICAS: AtomicUsize = AtomicUsize::new(1);

/// Sets [`replicas`] (at join).
pub(super) fn set_replicas(count: usize) {
    REPLICAS.store(count.max(1), Ordering::Relaxed);
}

/// Copies of each stream and bucket: 1 on one NATS server, 3 on a NATS
/// cluster of three (so losing one server loses nothing).
pub(super) fn replicas() -> usize {
    REPLICAS.load(Ordering::Relaxed)
}

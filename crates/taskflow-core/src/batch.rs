//! Group commit for writes: concurrent callers of [`Batcher::call`] are served by one batch.
//!
//! A burst of writes that would each cost a statement and a commit (64 `POST /tasks` at once, a
//! worker's 64 prefetched deliveries starting together) is gathered while the previous batch is
//! at the database, and written by one statement or one transaction. A lone caller is not kept
//! waiting for company: an idle runner takes its request at once, as a batch of one.
//!
//! Runners are supervised: a batch that panics fails its own requests and the runner goes on
//! with the next, and [`Batcher::is_running`] tells health checks whether every runner is
//! still there, so a process never keeps accepting writes that nobody commits.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use futures_util::FutureExt as _;

use tokio::sync::{Mutex, mpsc, oneshot};

type Request<Req, Resp> = (Req, oneshot::Sender<anyhow::Result<Resp>>);

/// Hands requests to a few runners that each take what is queued and run it as one batch.
/// Runners stop when the last clone of the batcher is dropped.
///
/// A batch holds what is queued when a runner is free, up to `max_batch`; the rest go to the
/// next batch.
pub struct Batcher<Req, Resp> {
    requests: mpsc::UnboundedSender<Request<Req, Resp>>,
    health: Arc<Health>,
}

/// What the runners report about themselves.
#[derive(Default)]
struct Health {
    runners: usize,
    /// Runners whose loop is alive.
    running: AtomicUsize,
    /// Batches that panicked (each failed its requests; the runner went on).
    panicked: AtomicU64,
}

/// Counts a runner out when its loop ends, however it ends.
struct Alive(Arc<Health>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

impl<Req, Resp> Clone for Batcher<Req, Resp> {
    fn clone(&self) -> Self {
        Self {
            requests: self.requests.clone(),
            health: self.health.clone(),
        }
    }
}

impl<Req: Send + 'static, Resp: Send + 'static> Batcher<Req, Resp> {
    /// Starts `runners` runners; each calls `run` with up to `max_batch` requests, which must
    /// answer with one result per request, in order.
    pub fn spawn<F, Fut>(runners: usize, max_batch: usize, run: F) -> Self
    where
        F: Fn(Vec<Req>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<anyhow::Result<Resp>>> + Send,
    {
        let max_batch = max_batch.max(1);
        let (requests, queue) = mpsc::unbounded_channel::<Request<Req, Resp>>();
        let queue = Arc::new(Mutex::new(queue));
        let run = Arc::new(run);
        let runners = runners.max(1);
        let health = Arc::new(Health {
            runners,
            running: AtomicUsize::new(runners),
            panicked: AtomicU64::new(0),
        });
        for _ in 0..runners {
            let queue = queue.clone();
            let run = run.clone();
            let alive = Alive(health.clone());
            tokio::spawn(async move {
                let alive = alive;
                let mut taken = Vec::with_capacity(max_batch);
                loop {
                    // The lock is held only while taking: the next runner gathers the next
                    // batch while this one is at the database.
                    {
                        let mut queue = queue.lock().await;
                        if queue.recv_many(&mut taken, 1).await == 0 {
                            return;
                        }
                        let size = (queue.len() + 1).min(max_batch);
                        // Counted as queued, so these arrive at once (a sender may still be
                        // writing one); only a closed channel ends the batch short.
                        while taken.len() < size {
                            let missing = size - taken.len();
                            if queue.recv_many(&mut taken, missing).await == 0 {
                                break;
                            }
                        }
                    }
                    let (batch, replies): (Vec<Req>, Vec<_>) = taken.drain(..).unzip();
                    let count = batch.len();
                    // A panic fails this batch's requests, not the runner: the next batch is
                    // served as if the runner had been restarted.
                    let results = match AssertUnwindSafe(run(batch)).catch_unwind().await {
                        Ok(results) => results,
                        Err(_) => {
                            alive.0.panicked.fetch_add(1, Ordering::SeqCst);
                            tracing::error!(
                                requests = count,
                                "a batch write panicked; failing its requests and carrying on"
                            );
                            fail_all(
                                anyhow::anyhow!(
                                    "the batch write panicked; it may or may not have been applied"
                                ),
                                count,
                            )
                        }
                    };
                    debug_assert_eq!(results.len(), replies.len());
                    for (reply, result) in replies.into_iter().zip(results) {
                        // A caller that went away (a client hung up) does not need its answer;
                        // what was written stays written, as if it had waited.
                        let _ = reply.send(result);
                    }
                }
            });
        }
        Self { requests, health }
    }

    /// Whether every runner is still taking requests. False means writes would queue with no
    /// one to commit them: the process must report itself unhealthy.
    pub fn is_running(&self) -> bool {
        self.health.running.load(Ordering::SeqCst) == self.health.runners
    }

    /// Batches that panicked since the batcher started.
    pub fn panicked(&self) -> u64 {
        self.health.panicked.load(Ordering::SeqCst)
    }

    /// Queues `request` for the next batch and waits for its result.
    pub async fn call(&self, request: Req) -> anyhow::Result<Resp> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send((request, reply))
            .map_err(|_| anyhow::anyhow!("the batch writer has stopped"))?;
        answer
            .await
            .map_err(|_| anyhow::anyhow!("the batch writer dropped the request"))?
    }
}

/// One batch-wide failure as the result of each of `count` requests. Each result keeps the
/// whole cause chain, so callers still recognise, say, an unreachable database.
pub fn fail_all<T>(err: anyhow::Error, count: usize) -> Vec<anyhow::Result<T>> {
    let shared = Arc::new(err);
    (0..count)
        .map(|_| Err(anyhow::Error::new(Shared(shared.clone()))))
        .collect()
}

/// An error shared by every request of a failed batch.
#[derive(Debug)]
struct Shared(Arc<anyhow::Error>);

impl std::fmt::Display for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "batch write failed")
    }
}

impl std::error::Error for Shared {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.0.as_ref().as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn concurrent_calls_share_batches_and_get_their_own_answers() {
        let batches = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = batches.clone();
        let batcher = Batcher::spawn(1, 100, move |batch: Vec<u32>| {
            seen.lock().unwrap().push(batch.len());
            let results = batch.into_iter().map(|n| Ok(n * 2)).collect();
            async move {
                tokio::task::yield_now().await;
                results
            }
        });
        let calls = (0..50).map(|n| {
            let batcher = batcher.clone();
            async move { batcher.call(n).await.unwrap() }
        });
        let answers = futures_util::future::join_all(calls).await;
        assert_eq!(answers, (0..50).map(|n| n * 2).collect::<Vec<_>>());
        let batches = batches.lock().unwrap();
        assert_eq!(batches.iter().sum::<usize>(), 50);
        assert!(batches.len() < 50, "no batching happened: {batches:?}");
    }

    #[tokio::test]
    async fn a_panicking_batch_fails_its_callers_and_the_next_batch_is_still_written() {
        let batcher = Batcher::spawn(1, 10, |batch: Vec<u32>| async move {
            assert!(!batch.contains(&0), "a request the writer cannot take");
            batch.into_iter().map(|n| Ok(n * 2)).collect()
        });

        let failed = tokio::time::timeout(std::time::Duration::from_secs(5), batcher.call(0))
            .await
            .expect("the failed call is answered");
        let next = tokio::time::timeout(std::time::Duration::from_secs(5), batcher.call(21))
            .await
            .expect("the next call is answered");

        let err = failed.unwrap_err();
        assert!(format!("{err:#}").contains("panicked"), "{err:#}");
        assert_eq!(next.unwrap(), 42);
        assert!(batcher.is_running());
        assert_eq!(batcher.panicked(), 1);
    }

    #[tokio::test]
    async fn a_failed_batch_fails_every_call_with_the_whole_cause_chain() {
        let batcher = Batcher::spawn(2, 10, |batch: Vec<u32>| async move {
            let cause = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
            fail_all::<u32>(anyhow::Error::new(cause).context("writing"), batch.len())
        });
        let err = batcher.call(1).await.unwrap_err();
        assert!(
            err.chain()
                .any(|cause| cause.downcast_ref::<std::io::Error>().is_some()),
            "{err:#}"
        );
        assert!(format!("{err:#}").contains("refused"), "{err:#}");
    }
}

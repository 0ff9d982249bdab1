//! Connections a batch writer keeps from one batch to the next.
//!
//! sqlx pings a pooled connection when it is taken from the pool and again when it goes back:
//! two round trips beside a batch's one statement or one transaction. MariaDB spends much of
//! its CPU waking up for round trips (a thread per connection, a context switch per packet), so
//! a batch writer that keeps its connection while it works saves a large share of the
//! database's work and of its own. What the pings were for stays covered: a connection whose
//! work failed goes back to the pool (whose ping closes it if it is broken), and one kept idle
//! for a while is pinged before it is used again. A writer keeps at most a quarter of the pool
//! (none from a pool of fewer than four), so the rest of the process always finds connections.
//! Closing the pool waits for every connection, kept ones too: drop the writers first.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{Connection as _, MySql, MySqlConnection, MySqlPool};

/// A kept connection idle for longer than this is pinged before use: the server, or something
/// between, may have closed it meanwhile.
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// The connections one batch writer keeps between batches, over its pool.
#[derive(Clone)]
pub struct KeptConnections {
    pool: MySqlPool,
    idle: Arc<Mutex<Vec<Idle>>>,
    keep_at_most: usize,
}

struct Idle {
    conn: PoolConnection<MySql>,
    since: Instant,
}

impl KeptConnections {
    pub fn new(pool: MySqlPool) -> Self {
        let keep_at_most = pool.options().get_max_connections() as usize / 4;
        Self {
            pool,
            idle: Arc::default(),
            keep_at_most,
        }
    }

    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    /// A kept connection if there is one (pinged if it has been idle a while, within the pool's
    /// acquire timeout, as the pool's own ping is), else one from the pool.
    async fn take(&self) -> anyhow::Result<PoolConnection<MySql>> {
        let kept = self.idle.lock().expect("kept connections").pop();
        if let Some(Idle { mut conn, since }) = kept {
            if since.elapsed() < PING_AFTER_IDLE {
                return Ok(conn);
            }
            let timeout = self.pool.options().get_acquire_timeout();
            if let Ok(Ok(())) = tokio::time::timeout(timeout, conn.ping()).await {
                return Ok(conn);
            }
            conn.close_on_drop();
        }
        super::acquire(&self.pool).await
    }

    /// Runs `work` on a kept connection, and keeps the connection for the next batch if the
    /// work succeeded (and there is room); otherwise returns it to the pool, which checks it.
    pub async fn run<T>(
        &self,
        work: impl AsyncFnOnce(&mut MySqlConnection) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let mut conn = self.take().await?;
        let outcome = work(&mut conn).await;
        if outcome.is_ok() {
            let mut idle = self.idle.lock().expect("kept connections");
            if idle.len() < self.keep_at_most {
                idle.push(Idle {
                    conn,
                    since: Instant::now(),
                });
            }
        }
        outcome
    }
}

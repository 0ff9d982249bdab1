//! The raw ceilings: what MySQL, the broker and Redis do alone on the same cores, for the
//! create and pipeline figures to be read against.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use lapin::BasicProperties;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use tokio::sync::Mutex;

use crate::stack::Env;

/// Single-row INSERT + COMMIT per second into a scratch table, at `concurrency`, each on a
/// connection of its own: a pool would ping a connection when it is taken and when it goes back,
/// two round trips that are not the INSERT's.
pub async fn insert_ceiling(
    env: &Env,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<f64> {
    let scratch = ScratchTable::create(env, concurrency).await?;
    let count = run_for(concurrency, duration, {
        let scratch = scratch.clone();
        move |i| {
            let scratch = scratch.clone();
            async move { scratch.insert(i).await }
        }
    })
    .await?;
    scratch.remove().await?;
    Ok(count as f64 / duration.as_secs_f64())
}

/// What a create owes at the least, without HTTP, JSON or Redis: a single-row INSERT + COMMIT,
/// then a persistent publish whose confirm is awaited in the background, at most 1,024 in
/// flight, as the API does. Rows confirmed per second, at `concurrency`. MySQL and the broker
/// share the machine's cores here as they do under `POST /tasks`.
pub async fn insert_then_publish_ceiling(
    env: &Env,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<f64> {
    let (connection, channel, queue) = scratch_queue(env, "insert-publish").await?;
    let writers = Arc::new(InsertThenPublish {
        scratch: ScratchTable::create(env, concurrency).await?,
        channel,
        queue,
        in_flight: Arc::new(tokio::sync::Semaphore::new(MAX_UNCONFIRMED)),
        confirms: Mutex::new(tokio::task::JoinSet::new()),
    });
    let started = Instant::now();
    run_for(concurrency, duration, {
        let writers = writers.clone();
        move |i| {
            let writers = writers.clone();
            async move { writers.run(i).await }
        }
    })
    .await?;
    let InsertThenPublish {
        scratch,
        channel,
        queue,
        confirms,
        ..
    } = Arc::try_unwrap(writers).map_err(|_| anyhow::anyhow!("the writers are still running"))?;
    let mut confirms = confirms.into_inner();
    let mut confirmed = 0u64;
    while let Some(confirm) = confirms.join_next().await {
        confirm??;
        confirmed += 1;
    }
    let rate = confirmed as f64 / started.elapsed().as_secs_f64();
    delete_scratch_queue(connection, channel, &queue).await?;
    scratch.remove().await?;
    Ok(rate)
}

/// What the writers of [`insert_then_publish_ceiling`] share.
struct InsertThenPublish {
    scratch: ScratchTable,
    channel: lapin::Channel,
    queue: String,
    /// Publishes not yet confirmed, at most [`MAX_UNCONFIRMED`].
    in_flight: Arc<tokio::sync::Semaphore>,
    confirms: Mutex<tokio::task::JoinSet<lapin::Result<lapin::Confirmation>>>,
}

impl InsertThenPublish {
    /// One row on writer `i`'s connection, then its publish; the confirm is awaited aside.
    async fn run(&self, i: usize) -> anyhow::Result<()> {
        self.scratch.insert(i).await?;
        let slot = self.in_flight.clone().acquire_owned().await?;
        let confirm = publish(&self.channel, &self.queue).await?;
        self.confirms.lock().await.spawn(async move {
            let confirmed = confirm.await;
            drop(slot);
            confirmed
        });
        Ok(())
    }
}

/// Publishes the API's confirms may wait for at once (its dispatch bound).
const MAX_UNCONFIRMED: usize = 1024;

/// A table of the run's own for the ceilings, with one connection per concurrent writer.
#[derive(Clone)]
struct ScratchTable {
    name: String,
    /// The INSERT each writer repeats, formatted once.
    insert: Arc<str>,
    connections: Arc<Vec<Mutex<sqlx::MySqlConnection>>>,
}

impl ScratchTable {
    async fn create(env: &Env, writers: usize) -> anyhow::Result<Self> {
        use sqlx::Connection as _;
        let name = format!("{}_scratch", env.prefix.replace('-', "_"));
        let mut connections = Vec::with_capacity(writers);
        for _ in 0..writers {
            let connection = sqlx::MySqlConnection::connect(&env.db_url)
                .await
                .context("connecting to MySQL")?;
            connections.push(Mutex::new(connection));
        }
        let mut first = connections[0].lock().await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE IF NOT EXISTS `{name}` \
             (id BIGINT AUTO_INCREMENT PRIMARY KEY, body VARCHAR(255) NOT NULL)"
        )))
        .execute(&mut *first)
        .await?;
        drop(first);
        Ok(Self {
            insert: format!("INSERT INTO `{name}` (body) VALUES ('ceiling')").into(),
            name,
            connections: Arc::new(connections),
        })
    }

    /// One row, committed, on writer `i`'s connection.
    async fn insert(&self, i: usize) -> anyhow::Result<()> {
        let mut connection = self.connections[i].lock().await;
        sqlx::query(sqlx::AssertSqlSafe(self.insert.clone()))
            .execute(&mut *connection)
            .await?;
        Ok(())
    }

    /// Drops the table and closes the connections (every clone must be gone by now).
    async fn remove(self) -> anyhow::Result<()> {
        use sqlx::Connection as _;
        let connections = Arc::try_unwrap(self.connections)
            .map_err(|_| anyhow::anyhow!("the scratch table is still in use"))?;
        for (i, connection) in connections.into_iter().enumerate() {
            let mut connection = connection.into_inner();
            if i == 0 {
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE `{}`", self.name)))
                    .execute(&mut connection)
                    .await?;
            }
            connection.close().await?;
        }
        Ok(())
    }
}

/// A durable queue of the run's own, on a confirm-mode channel.
async fn scratch_queue(
    env: &Env,
    name: &str,
) -> anyhow::Result<(lapin::Connection, lapin::Channel, String)> {
    let connection = lapin::Connection::connect(&env.rabbitmq, Default::default()).await?;
    let channel = connection.create_channel().await?;
    let queue = format!("{}.bench.{name}", env.prefix);
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions::durable(),
            FieldTable::default(),
        )
        .await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok((connection, channel, queue))
}

async fn delete_scratch_queue(
    connection: lapin::Connection,
    channel: lapin::Channel,
    queue: &str,
) -> anyhow::Result<()> {
    channel
        .queue_delete(queue.into(), QueueDeleteOptions::default())
        .await?;
    let _ = connection.close(200, "done".into()).await;
    Ok(())
}

/// A persistent message the size of a `task.created`, to `queue`; resolves when it is sent.
async fn publish(channel: &lapin::Channel, queue: &str) -> anyhow::Result<lapin::PublisherConfirm> {
    let body = br#"{"task_id":"00000000-0000-0000-0000-000000000000","payload":{"message":"x"},"requested_at":"2026-01-01T00:00:00Z"}"#;
    Ok(channel
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default().with_delivery_mode(2),
        )
        .await?)
}

/// Confirmed AMQP publishes per second on one channel, with up to 1,000 confirms in flight.
pub async fn publish_ceiling(env: &Env, messages: usize) -> anyhow::Result<f64> {
    let (connection, channel, queue) = scratch_queue(env, "ceiling").await?;
    let started = Instant::now();
    let mut in_flight = FuturesUnordered::new();
    for _ in 0..messages {
        if in_flight.len() >= 1000
            && let Some(confirm) = in_flight.next().await
        {
            confirm?;
        }
        in_flight.push(publish(&channel, &queue).await?);
    }
    while let Some(confirm) = in_flight.next().await {
        confirm?;
    }
    let rate = messages as f64 / started.elapsed().as_secs_f64();
    delete_scratch_queue(connection, channel, &queue).await?;
    Ok(rate)
}

/// Redis PUBLISH per second, at `concurrency` connections.
pub async fn redis_ceiling(
    env: &Env,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<f64> {
    let client = redis::Client::open(env.redis.as_str())?;
    let channel = format!("{}.bench.ceiling", env.prefix);
    let mut connections = Vec::new();
    for _ in 0..concurrency {
        connections.push(Arc::new(Mutex::new(
            client.get_multiplexed_async_connection().await?,
        )));
    }
    let connections = Arc::new(connections);
    let count = run_for(concurrency, duration, move |i| {
        let connection = connections[i].clone();
        let channel = channel.clone();
        async move {
            let mut connection = connection.lock().await;
            redis::cmd("PUBLISH")
                .arg(&channel)
                .arg("ceiling")
                .query_async::<i64>(&mut *connection)
                .await
                .map(|_| ())
                .map_err(anyhow::Error::from)
        }
    })
    .await?;
    Ok(count as f64 / duration.as_secs_f64())
}

/// Calls `op` in a loop on `concurrency` tasks for `duration`; returns how many succeeded.
async fn run_for<F, Fut>(concurrency: usize, duration: Duration, op: F) -> anyhow::Result<u64>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static + Clone,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for i in 0..concurrency {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0u64;
            while Instant::now() < deadline {
                op(i).await?;
                done += 1;
            }
            anyhow::Ok(done)
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await??;
    }
    Ok(total)
}

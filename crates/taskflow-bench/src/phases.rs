//! The measurements. Each phase drives the real services and returns figures; none judges them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::stream::FuturesUnordered;
use futures_util::{SinkExt as _, StreamExt as _};
use lapin::BasicProperties;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use serde::Serialize;
use sqlx::MySqlPool;
use tokio::sync::Mutex;

use crate::stack::Env;
use crate::stats::Latency;

/// The API under load, as the load generator's clients reach it.
#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    /// `POST` here creates a task.
    pub tasks_url: String,
    pub ws_url: String,
    /// Every task this run creates has this title, so the run can tell its own tasks apart in a
    /// database it shares.
    pub title: String,
}

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

#[derive(Debug, Clone, Copy, Serialize)]
pub struct CreateFigures {
    pub concurrency: usize,
    pub requests_per_second: f64,
    pub latency: Latency,
}

/// `POST /tasks` requests per second at `concurrency`, with latencies.
pub async fn create_throughput(
    api: &Api,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<CreateFigures> {
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let sent = Instant::now();
                post_task(&api).await?;
                latencies.push(sent.elapsed());
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok(CreateFigures {
        concurrency,
        requests_per_second: latencies.len() as f64 / elapsed,
        latency: Latency::of(latencies),
    })
}

async fn post_task(api: &Api) -> anyhow::Result<String> {
    let response = api
        .http
        .post(&api.tasks_url)
        .json(&serde_json::json!({"title": api.title, "payload": {"message": "bench"}}))
        .send()
        .await?;
    anyhow::ensure!(
        response.status() == reqwest::StatusCode::CREATED,
        "POST /tasks answered {}",
        response.status()
    );
    let body: serde_json::Value = response.json().await?;
    Ok(body["task_id"].as_str().context("a task_id")?.to_owned())
}

type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket client with a 4 KiB read buffer (the events are small). Tungstenite's default,
/// 128 KiB, is zero-filled before every read: with 10,000 clients that was 40% of the load
/// generator's CPU (`perf`), taken from the API it measures on the same cores.
///
/// A connection that does not complete in 10 s (the API's `WS_MAX_CLIENTS` or its descriptor
/// limit reached) is an error, not a wait without end.
async fn connect_ws(url: &str) -> anyhow::Result<WsStream> {
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(4 * 1024);
    // The query may carry the API token: not for error messages.
    let shown = url.split('?').next().unwrap_or(url);
    let connect = tokio_tungstenite::connect_async_with_config(url, Some(config), false);
    let (stream, _) = tokio::time::timeout(Duration::from_secs(10), connect)
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "connecting to {shown} took over 10 s (the API's WS_MAX_CLIENTS or its file \
                 descriptor limit?)"
            )
        })?
        .with_context(|| format!("connecting to {shown}"))?;
    Ok(stream)
}

/// Records when each task's PROCESSING and DONE events arrive on one WebSocket connection.
pub struct DoneWatcher {
    done: Arc<Mutex<HashMap<String, Instant>>>,
    processing: Arc<Mutex<HashMap<String, Instant>>>,
    reader: tokio::task::JoinHandle<()>,
}

impl DoneWatcher {
    pub async fn connect(ws_url: &str) -> anyhow::Result<Self> {
        let stream = connect_ws(ws_url).await?;
        let done = Arc::new(Mutex::new(HashMap::new()));
        let processing = Arc::new(Mutex::new(HashMap::new()));
        let (record_done, record_processing) = (done.clone(), processing.clone());
        let reader = tokio::spawn(async move {
            let (_, mut messages) = stream.split();
            while let Some(Ok(message)) = messages.next().await {
                let at = Instant::now();
                let Ok(text) = message.to_text() else {
                    continue;
                };
                let record = if text.contains("\"DONE\"") {
                    &record_done
                } else if text.contains("\"PROCESSING\"") {
                    &record_processing
                } else {
                    continue;
                };
                if let Ok(event) = serde_json::from_str::<serde_json::Value>(text)
                    && let Some(id) = event["task_id"].as_str()
                {
                    record.lock().await.insert(id.to_owned(), at);
                }
            }
        });
        Ok(Self {
            done,
            processing,
            reader,
        })
    }

    /// When each task's PROCESSING event arrived (so far).
    pub async fn processing(&self) -> HashMap<String, Instant> {
        self.processing.lock().await.clone()
    }

    /// Waits until every id has its DONE (or `timeout`); returns when each arrived.
    pub async fn wait_all(&self, ids: &[String], timeout: Duration) -> HashMap<String, Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let done = self.done.lock().await;
                if ids.iter().all(|id| done.contains_key(id)) || Instant::now() > deadline {
                    return ids
                        .iter()
                        .filter_map(|id| done.get(id).map(|at| (id.clone(), *at)))
                        .collect();
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for DoneWatcher {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct PipelineFigures {
    pub tasks: usize,
    pub finished: usize,
    pub seconds: f64,
    pub tasks_per_second: f64,
}

/// `tasks` submitted as fast as accepted (64 at a time); tasks per second until the last DONE
/// is seen on a WebSocket.
pub async fn pipeline_throughput(api: &Api, tasks: usize) -> anyhow::Result<PipelineFigures> {
    let watcher = DoneWatcher::connect(&api.ws_url).await?;
    let started = Instant::now();
    let ids = futures_util::stream::iter(0..tasks)
        .map(|_| post_task(api))
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<String>>>()?;
    let timeout = Duration::from_secs(60 + tasks as u64 / 20);
    let done = watcher.wait_all(&ids, timeout).await;
    let last = done.values().max().copied().unwrap_or_else(Instant::now);
    let seconds = (last - started).as_secs_f64();
    Ok(PipelineFigures {
        tasks,
        finished: done.len(),
        seconds,
        tasks_per_second: done.len() as f64 / seconds,
    })
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct LatencyFigures {
    pub offered_per_second: f64,
    pub latency: Latency,
    pub missing: usize,
    /// Where the time went, per task: POST sent → 201 received; 201 → PROCESSING seen on the
    /// WebSocket (the confirmed publish, the broker, the worker's start); PROCESSING seen → DONE
    /// seen (the job and its finish).
    pub stages: Stages,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Stages {
    pub created: Latency,
    pub created_to_processing: Latency,
    pub processing_to_done: Latency,
}

/// POST → DONE-on-the-WebSocket latency at a fixed offered rate.
pub async fn end_to_end_latency(
    api: &Api,
    rate: f64,
    duration: Duration,
) -> anyhow::Result<LatencyFigures> {
    let watcher = DoneWatcher::connect(&api.ws_url).await?;
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.1)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let deadline = Instant::now() + duration;
    let mut sends = Vec::new();
    while Instant::now() < deadline {
        ticks.tick().await;
        let api = api.clone();
        sends.push(tokio::spawn(async move {
            let sent = Instant::now();
            post_task(&api).await.map(|id| (id, sent, Instant::now()))
        }));
    }
    let mut sent_at = HashMap::new();
    for send in sends {
        let (id, sent, created) = send.await??;
        sent_at.insert(id, (sent, created));
    }
    let ids: Vec<String> = sent_at.keys().cloned().collect();
    let done = watcher.wait_all(&ids, Duration::from_secs(30)).await;
    let processing = watcher.processing().await;
    let latencies = done
        .iter()
        .map(|(id, at)| at.duration_since(sent_at[id].0))
        .collect();
    // A task's events can overtake its 201 (the worker is fast): those stages count as zero.
    let (mut created, mut to_processing, mut to_done) = (Vec::new(), Vec::new(), Vec::new());
    for (id, &finished) in &done {
        let (sent, answered) = sent_at[id];
        created.push(answered - sent);
        if let Some(&started) = processing.get(id) {
            to_processing.push(started.saturating_duration_since(answered));
            to_done.push(finished.saturating_duration_since(started));
        }
    }
    Ok(LatencyFigures {
        offered_per_second: rate,
        latency: Latency::of(latencies),
        missing: ids.len() - done.len(),
        stages: Stages {
            created: Latency::of(created),
            created_to_processing: Latency::of(to_processing),
            processing_to_done: Latency::of(to_done),
        },
    })
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct FanOutFigures {
    pub clients: usize,
    pub events: usize,
    pub expected_deliveries: usize,
    pub missing_deliveries: usize,
    pub delivery: Latency,
    /// `None` when no API process runs on this machine to measure.
    pub api_rss_mb: Option<f64>,
}

/// `clients` WebSocket clients all receiving `events` events published on the status channel
/// at `rate` per second; counts what each received and how late.
pub async fn websocket_fan_out(
    env: &Env,
    ws_url: &str,
    clients: usize,
    events: usize,
    rate: f64,
    api_rss: impl Fn() -> Option<f64>,
) -> anyhow::Result<FanOutFigures> {
    let started_at = chrono::Utc::now();
    let marker = format!("fanout-{}", started_at.timestamp_micros());
    let received = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let latencies = Arc::new(std::sync::Mutex::new(Vec::with_capacity(clients * events)));
    // Connect in batches, so the API's accept queue is not flooded.
    let mut readers = Vec::with_capacity(clients);
    for batch in (0..clients).collect::<Vec<_>>().chunks(200) {
        let connected =
            futures_util::future::join_all(batch.iter().map(|_| connect_ws(ws_url))).await;
        for result in connected {
            let mut stream = result.context("connecting a fan-out client")?;
            let received = received.clone();
            let latencies = latencies.clone();
            let marker = marker.clone();
            readers.push(tokio::spawn(async move {
                let mut mine = 0;
                while let Some(Ok(message)) = stream.next().await {
                    match message {
                        tokio_tungstenite::tungstenite::Message::Text(text)
                            if text.contains(marker.as_str()) =>
                        {
                            if let Some(sent) = sent_time(text.as_str()) {
                                let delay =
                                    (chrono::Utc::now() - sent).to_std().unwrap_or_default();
                                latencies.lock().expect("not poisoned").push(delay);
                            }
                            received.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            mine += 1;
                            if mine == events {
                                break;
                            }
                        }
                        tokio_tungstenite::tungstenite::Message::Ping(payload) => {
                            let _ = stream
                                .send(tokio_tungstenite::tungstenite::Message::Pong(payload))
                                .await;
                        }
                        _ => {}
                    }
                }
            }));
        }
    }
    let rss_connected = api_rss();

    let client = redis::Client::open(env.redis.as_str())?;
    let mut publisher = client.get_multiplexed_async_connection().await?;
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    for seq in 0..events {
        ticks.tick().await;
        let event = serde_json::json!({
            "task_id": uuid::Uuid::new_v4(),
            "status": "DONE",
            "updated_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "message": format!("{marker}-{seq}"),
        });
        redis::cmd("PUBLISH")
            .arg(&env.channel)
            .arg(event.to_string())
            .query_async::<i64>(&mut publisher)
            .await?;
    }
    let drain = tokio::time::timeout(Duration::from_secs(30), async {
        for reader in &mut readers {
            let _ = reader.await;
        }
    })
    .await;
    if drain.is_err() {
        for reader in &readers {
            reader.abort();
        }
    }
    let expected = clients * events;
    let got = received.load(std::sync::atomic::Ordering::Relaxed);
    let samples = std::mem::take(&mut *latencies.lock().expect("not poisoned"));
    Ok(FanOutFigures {
        clients,
        events,
        expected_deliveries: expected,
        missing_deliveries: expected.saturating_sub(got),
        delivery: Latency::of(samples),
        api_rss_mb: rss_connected.into_iter().chain(api_rss()).reduce(f64::max),
    })
}

fn sent_time(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let start = text.find("\"updated_at\":\"")? + "\"updated_at\":\"".len();
    let end = start + text[start..].find('"')?;
    chrono::DateTime::parse_from_rfc3339(&text[start..end])
        .ok()
        .map(|at| at.with_timezone(&chrono::Utc))
}

/// Consumers attached to the work queue (to know the workers are up before measuring).
pub async fn wait_for_consumers(env: &Env, count: u32) -> anyhow::Result<()> {
    let connection = lapin::Connection::connect(&env.rabbitmq, Default::default()).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // Passive: the queue is the stack's, declared with whatever arguments it chose. Until a
        // worker has declared it, the lookup fails and closes its channel: a new one each time.
        let channel = connection.create_channel().await?;
        let found = channel
            .queue_declare(
                env.queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await;
        match found {
            Ok(queue) if queue.consumer_count() >= count => break,
            Ok(queue) => anyhow::ensure!(
                Instant::now() < deadline,
                "{} of {count} workers attached to {} in time",
                queue.consumer_count(),
                env.queue
            ),
            Err(err) => anyhow::ensure!(
                Instant::now() < deadline,
                "the queue {} is not there: {err}",
                env.queue
            ),
        }
        let _ = channel.close(200, "looked".into()).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = connection.close(200, "done".into()).await;
    Ok(())
}

/// Removes what the run created for the stack it started: its database, queues and exchange.
/// (A running stack's names are its own; the ceilings remove their scratch names themselves.)
pub async fn clean_up(env: &Env, pool: &MySqlPool) -> anyhow::Result<()> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS `{}`",
        env.database
    )))
    .execute(pool)
    .await?;
    let connection = lapin::Connection::connect(&env.rabbitmq, Default::default()).await?;
    let p = &env.prefix;
    let mut queues = vec![env.queue.clone(), format!("{p}.task.dead-letter")];
    queues.extend((1..=5).map(|n| format!("{}.retry.{n}", env.queue)));
    for queue in queues {
        let channel = connection.create_channel().await?;
        let _ = channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    let channel = connection.create_channel().await?;
    let _ = channel
        .exchange_delete(
            format!("{p}.task.topic").as_str().into(),
            Default::default(),
        )
        .await;
    let _ = connection.close(200, "done".into()).await;
    Ok(())
}

//! The measurements. Each phase drives the real services and returns figures; none judges them.
//! One module per kind of phase; here, what they share and the stack's own queues.

mod ceilings;
mod delayed;
mod fan_out;
mod latency;
mod throughput;
mod ws;

use std::time::Duration;

use anyhow::Context as _;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use sqlx::MySqlPool;
use taskflow_core::backoff::poll_until;

pub use self::ceilings::{
    insert_ceiling, insert_then_publish_ceiling, publish_ceiling, redis_ceiling,
};
pub use self::delayed::{DelayedFigures, delayed_dispatch_lag};
pub use self::fan_out::{FanOutFigures, websocket_fan_out};
pub use self::latency::{LatencyFigures, end_to_end_latency};
pub use self::throughput::{
    CreateFigures, PipelineFigures, create_throughput, pipeline_throughput,
};
use crate::stack::Env;

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

pub(super) async fn post_task(api: &Api) -> anyhow::Result<String> {
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

/// Consumers attached to the work queue (to know the workers are up before measuring).
pub async fn wait_for_consumers(env: &Env, count: u32) -> anyhow::Result<()> {
    let connection = lapin::Connection::connect(&env.rabbitmq, Default::default()).await?;
    let mut seen = String::from("no answer yet");
    let attached = poll_until(
        Duration::from_secs(60),
        Duration::from_millis(100),
        async || {
            // Passive: the queue is the stack's, declared with whatever arguments it chose. Until a
            // worker has declared it, the lookup fails and closes its channel: a new one each time.
            let channel = match connection.create_channel().await {
                Ok(channel) => channel,
                Err(err) => {
                    seen = format!("no channel: {err}");
                    return false;
                }
            };
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
            let _ = channel.close(200, "looked".into()).await;
            match found {
                Ok(queue) => {
                    seen = format!("{} of {count} workers attached", queue.consumer_count());
                    queue.consumer_count() >= count
                }
                Err(err) => {
                    seen = format!("the queue is not there: {err}");
                    false
                }
            }
        },
    )
    .await;
    anyhow::ensure!(
        attached,
        "workers not attached to {} in time: {seen}",
        env.queue
    );
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
    // The exchange may never have been declared (a run that failed early).
    let _ =
        taskflow_core::amqp::delete_names(&connection, &queues, &format!("{p}.task.topic")).await;
    let _ = connection.close(200, "done".into()).await;
    Ok(())
}

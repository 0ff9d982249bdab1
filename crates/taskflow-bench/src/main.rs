//! `taskflow-bench`: measures the real, guarded pipeline on the services it is given and writes
//! `target/bench/report.json` and `report.md`. Run it with `cargo xtask bench` (`--quick` for
//! the short version CI runs). Figures are reported, never judged.

mod phases;
mod stack;
mod stats;

use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;

use crate::phases::{CreateFigures, FanOutFigures, LatencyFigures, PipelineFigures};
use crate::stack::{Env, Stack, Usage};
use crate::stats::median;

/// How big each phase is.
struct Plan {
    runs: usize,
    ceiling_seconds: u64,
    create_seconds: u64,
    pipeline_tasks: usize,
    latency_seconds: u64,
    fan_out_clients: Vec<usize>,
    fan_out_events: usize,
    scaling_tasks: usize,
    workers: Vec<usize>,
}

impl Plan {
    fn full() -> Self {
        Self {
            runs: 3,
            ceiling_seconds: 5,
            create_seconds: 5,
            pipeline_tasks: 20_000,
            latency_seconds: 10,
            fan_out_clients: vec![1_000, 10_000],
            fan_out_events: 50,
            scaling_tasks: 5_000,
            workers: vec![1, 2, 4],
        }
    }

    /// Under two minutes, so CI keeps the tool working.
    fn quick() -> Self {
        Self {
            runs: 1,
            ceiling_seconds: 2,
            create_seconds: 2,
            pipeline_tasks: 1_000,
            latency_seconds: 3,
            fan_out_clients: vec![200],
            fan_out_events: 20,
            scaling_tasks: 500,
            workers: vec![1, 2],
        }
    }
}

#[derive(Serialize)]
struct Report {
    machine: Machine,
    quick: bool,
    ceilings: Ceilings,
    create: Vec<CreateFigures>,
    create_vs_insert_ceiling_at_64: f64,
    pipeline: PipelineFigures,
    pipeline_vs_three_commit_ceiling: f64,
    latency: Vec<LatencyFigures>,
    fan_out: Vec<FanOutFigures>,
    worker_scaling: Vec<(usize, f64)>,
    usage: Vec<(String, Usage)>,
}

#[derive(Serialize)]
struct Machine {
    cores: usize,
    memory_gb: f64,
    mysql: String,
    rabbitmq: String,
    redis: String,
}

#[derive(Serialize)]
struct Ceilings {
    insert_commit_per_second_at_64: f64,
    confirmed_publish_per_second: f64,
    redis_publish_per_second: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|arg| arg == "--quick");
    let plan = if quick { Plan::quick() } else { Plan::full() };
    let fds = stack::raise_fd_limit();
    let env = environment()?;
    println!(
        "taskflow-bench ({}), file descriptors: {fds}",
        if quick { "quick" } else { "full" }
    );

    let admin = sqlx::MySqlPool::connect(&env.mysql)
        .await
        .context("connecting to MySQL (TEST_DB_URL)")?;
    let mut stack = Stack::start(&env, 1)?;
    phases::wait_for_consumers(&env, 1).await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let api = format!("http://{}", stack.api_address);
    let mut usage = Vec::new();
    let mut phase = |name: &str, before: Usage, stack: &Stack| {
        usage.push((name.to_owned(), before.until(&stack.usage())));
    };

    println!("1/6 raw ceilings");
    let before = stack.usage();
    let ceiling = Duration::from_secs(plan.ceiling_seconds);
    let mut inserts = Vec::new();
    let mut publishes = Vec::new();
    let mut redis = Vec::new();
    for _ in 0..plan.runs {
        inserts.push(phases::insert_ceiling(&env, 64, ceiling).await?);
        publishes.push(phases::publish_ceiling(&env, if quick { 5_000 } else { 50_000 }).await?);
        redis.push(phases::redis_ceiling(&env, 16, ceiling).await?);
    }
    let ceilings = Ceilings {
        insert_commit_per_second_at_64: median(inserts),
        confirmed_publish_per_second: median(publishes),
        redis_publish_per_second: median(redis),
    };
    phase("ceilings", before, &stack);

    // The create path alone: with the workers stopped, MySQL's time goes to the API's INSERTs,
    // as in the INSERT ceiling it is compared with. The tasks wait in the queue meanwhile.
    println!("2/6 create throughput (workers stopped)");
    stack.set_workers(0)?;
    let before = stack.usage();
    let mut create = Vec::new();
    for concurrency in [1, 16, 64] {
        let mut runs = Vec::new();
        for _ in 0..plan.runs {
            runs.push(
                phases::create_throughput(
                    &http,
                    &format!("{api}/tasks"),
                    concurrency,
                    Duration::from_secs(plan.create_seconds),
                )
                .await?,
            );
        }
        runs.sort_by(|a, b| a.requests_per_second.total_cmp(&b.requests_per_second));
        create.push(runs[runs.len() / 2]);
    }
    phase("create", before, &stack);
    // Let a worker finish the backlog the create phase left, so it does not skew the next.
    stack.set_workers(1)?;
    phases::wait_for_consumers(&env, 1).await?;
    drain(&env, &admin).await?;

    println!("3/6 pipeline throughput ({} tasks)", plan.pipeline_tasks);
    let before = stack.usage();
    let mut pipelines = Vec::new();
    for _ in 0..plan.runs {
        pipelines.push(
            phases::pipeline_throughput(&http, &api, &stack.ws_url(), plan.pipeline_tasks).await?,
        );
    }
    pipelines.sort_by(|a, b| a.tasks_per_second.total_cmp(&b.tasks_per_second));
    let pipeline = pipelines[pipelines.len() / 2];
    phase("pipeline", before, &stack);

    println!("4/6 end-to-end latency at 10%, 50%, 90% of the pipeline's throughput");
    let before = stack.usage();
    let mut latency = Vec::new();
    for share in [0.1, 0.5, 0.9] {
        latency.push(
            phases::end_to_end_latency(
                &http,
                &api,
                &stack.ws_url(),
                pipeline.tasks_per_second * share,
                Duration::from_secs(plan.latency_seconds),
            )
            .await?,
        );
    }
    phase("latency", before, &stack);

    println!("5/6 WebSocket fan-out");
    let before = stack.usage();
    let mut fan_out = Vec::new();
    for &clients in &plan.fan_out_clients {
        let api_rss = || stack.usage().api.rss_mb;
        fan_out.push(
            phases::websocket_fan_out(
                &env,
                &stack.ws_url(),
                clients,
                plan.fan_out_events,
                10.0,
                api_rss,
            )
            .await?,
        );
    }
    phase("fan_out", before, &stack);

    println!("6/6 worker scaling");
    let mut worker_scaling = Vec::new();
    for &workers in &plan.workers {
        stack.set_workers(workers)?;
        phases::wait_for_consumers(&env, workers as u32).await?;
        drain(&env, &admin).await?;
        let before = stack.usage();
        let figures =
            phases::pipeline_throughput(&http, &api, &stack.ws_url(), plan.scaling_tasks).await?;
        worker_scaling.push((workers, figures.tasks_per_second));
        phase(&format!("scaling_{workers}_workers"), before, &stack);
    }
    drop(stack);

    let report = Report {
        machine: machine(&admin, &env).await,
        quick,
        create_vs_insert_ceiling_at_64: create[2].requests_per_second
            / ceilings.insert_commit_per_second_at_64,
        pipeline_vs_three_commit_ceiling: pipeline.tasks_per_second
            / (ceilings.insert_commit_per_second_at_64 / 3.0),
        ceilings,
        create,
        pipeline,
        latency,
        fan_out,
        worker_scaling,
        usage,
    };
    phases::clean_up(&env, &admin).await?;
    write_report(&report)?;
    Ok(())
}

/// Waits until no task of this run is PENDING or PROCESSING.
async fn drain(env: &Env, admin: &sqlx::MySqlPool) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    loop {
        let open: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM `{}`.tasks WHERE status IN ('PENDING', 'PROCESSING')",
            env.database
        )))
        .fetch_one(admin)
        .await?;
        if open == 0 {
            return Ok(());
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "{open} tasks never finished"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn environment() -> anyhow::Result<Env> {
    let var = |names: &[&str], default: &str| {
        names
            .iter()
            .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
            .unwrap_or_else(|| default.to_owned())
    };
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    Ok(Env {
        bin_dir: stack::own_dir()?,
        mysql: var(&["TEST_DB_URL"], "mysql://taskflow:taskflow@127.0.0.1:3306")
            .trim_end_matches('/')
            .to_owned(),
        rabbitmq: var(
            &["TEST_RABBITMQ_URL", "RABBITMQ_URL"],
            "amqp://guest:guest@127.0.0.1:5672/%2f",
        ),
        redis: var(&["TEST_REDIS_URL", "REDIS_URL"], "redis://127.0.0.1:6379"),
        database: format!("taskflow_bench_{suffix}"),
        prefix: format!("bench-{suffix}"),
    })
}

async fn machine(admin: &sqlx::MySqlPool, env: &Env) -> Machine {
    let memory_kb: f64 = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("MemTotal:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kb| kb.parse().ok())
        })
        .unwrap_or(0.0);
    let mysql: String = sqlx::query_scalar("SELECT VERSION()")
        .fetch_one(admin)
        .await
        .unwrap_or_default();
    // The AMQP client does not expose the server's properties; ask the broker's own tool.
    let rabbitmq = std::process::Command::new("rabbitmqctl")
        .args(["-q", "version"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    let redis = async {
        let client = redis::Client::open(env.redis.as_str()).ok()?;
        let mut connection = client.get_multiplexed_async_connection().await.ok()?;
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut connection)
            .await
            .ok()?;
        info.lines()
            .find_map(|line| line.strip_prefix("redis_version:"))
            .map(str::to_owned)
    }
    .await
    .unwrap_or_default();
    Machine {
        cores: std::thread::available_parallelism().map_or(0, usize::from),
        memory_gb: memory_kb / 1024.0 / 1024.0,
        mysql,
        rabbitmq,
        redis,
    }
}

fn write_report(report: &Report) -> anyhow::Result<()> {
    let dir = std::env::var("BENCH_OUT").unwrap_or_else(|_| "target/bench".to_owned());
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        format!("{dir}/report.json"),
        serde_json::to_string_pretty(report)?,
    )?;
    let markdown = render(report);
    std::fs::write(format!("{dir}/report.md"), &markdown)?;
    println!("\n{markdown}");
    println!("written to {dir}/report.json and {dir}/report.md");
    Ok(())
}

fn render(r: &Report) -> String {
    let mut md = String::new();
    let m = &r.machine;
    md += &format!(
        "Machine: {} cores, {:.0} GiB; MySQL {}, RabbitMQ {}, Redis {}; all services on the same machine.{}\n\n",
        m.cores,
        m.memory_gb,
        m.mysql,
        m.rabbitmq.trim_matches('"'),
        m.redis,
        if r.quick {
            " (quick run: one sample each, small sizes)"
        } else {
            " (median of 3 runs)"
        }
    );
    md += "| Measure | Result |\n| --- | --- |\n";
    md += &format!(
        "| Raw ceiling: INSERT+COMMIT at concurrency 64 | {:.0}/s |\n",
        r.ceilings.insert_commit_per_second_at_64
    );
    md += &format!(
        "| Raw ceiling: confirmed AMQP publishes | {:.0}/s |\n",
        r.ceilings.confirmed_publish_per_second
    );
    md += &format!(
        "| Raw ceiling: Redis PUBLISH | {:.0}/s |\n",
        r.ceilings.redis_publish_per_second
    );
    for c in &r.create {
        md += &format!(
            "| `POST /tasks` at concurrency {} (workers stopped) | {:.0}/s, p50 {:.1} ms, p99 {:.1} ms |\n",
            c.concurrency, c.requests_per_second, c.latency.p50_ms, c.latency.p99_ms
        );
    }
    md += &format!(
        "| Create at 64 vs INSERT ceiling | {:.0}% |\n",
        r.create_vs_insert_ceiling_at_64 * 100.0
    );
    md += &format!(
        "| Pipeline: {} tasks to DONE on a WebSocket | {:.0} tasks/s ({} finished in {:.1} s) |\n",
        r.pipeline.tasks, r.pipeline.tasks_per_second, r.pipeline.finished, r.pipeline.seconds
    );
    md += &format!(
        "| Pipeline vs three-commit ceiling | {:.0}% |\n",
        r.pipeline_vs_three_commit_ceiling * 100.0
    );
    for l in &r.latency {
        md += &format!(
            "| End-to-end at {:.0} tasks/s | p50 {:.1} ms, p90 {:.1}, p99 {:.1}, max {:.1} ({} missing) |\n",
            l.offered_per_second,
            l.latency.p50_ms,
            l.latency.p90_ms,
            l.latency.p99_ms,
            l.latency.max_ms,
            l.missing
        );
        let s = &l.stages;
        md += &format!(
            "| … of which (p50 / p99) | POST → 201 {:.1} / {:.1} ms; 201 → PROCESSING seen {:.1} / {:.1}; → DONE seen {:.1} / {:.1} |\n",
            s.created.p50_ms,
            s.created.p99_ms,
            s.created_to_processing.p50_ms,
            s.created_to_processing.p99_ms,
            s.processing_to_done.p50_ms,
            s.processing_to_done.p99_ms,
        );
    }
    for f in &r.fan_out {
        md += &format!(
            "| Fan-out: {} clients × {} events | {} of {} deliveries missing; p50 {:.1} ms, p99 {:.1} ms; API RSS {:.0} MB |\n",
            f.clients,
            f.events,
            f.missing_deliveries,
            f.expected_deliveries,
            f.delivery.p50_ms,
            f.delivery.p99_ms,
            f.api_rss_mb
        );
    }
    for (workers, rate) in &r.worker_scaling {
        md += &format!("| Pipeline with {workers} worker(s) | {rate:.0} tasks/s |\n");
    }
    md += "\n| Phase | API CPU s | API RSS MB | Workers CPU s | Workers RSS MB |\n| --- | --- | --- | --- | --- |\n";
    for (name, u) in &r.usage {
        md += &format!(
            "| {name} | {:.1} | {:.0} | {:.1} | {:.0} |\n",
            u.api.cpu_seconds, u.api.rss_mb, u.workers.cpu_seconds, u.workers.rss_mb
        );
    }
    md
}

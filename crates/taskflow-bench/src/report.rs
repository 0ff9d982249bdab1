//! The report: `report.json`, `report.md` and the one-line summary of the headline figures.

use serde::Serialize;

use crate::cli::Phase;
use crate::phases::{
    CreateFigures, DelayedFigures, FanOutFigures, LatencyFigures, PipelineFigures,
};
use crate::stack::{CpuPerTask, Env, Usage};

#[derive(Serialize)]
pub struct Report {
    pub machine: Machine,
    pub quick: bool,
    /// Runs per figure (its median is reported).
    pub runs: usize,
    /// `null` for a stack the bench started; the URL of a running stack otherwise.
    pub url: Option<String>,
    /// The phases run (`--only` may leave some out).
    pub phases: Vec<Phase>,
    pub ceilings: Option<Ceilings>,
    /// Whether the create phase ran with the workers stopped (a running stack keeps its own).
    pub create_with_workers_stopped: bool,
    pub create: Vec<CreateFigures>,
    pub create_vs_insert_ceiling_at_64: Option<f64>,
    pub create_vs_insert_then_publish_ceiling_at_64: Option<f64>,
    pub pipeline: Option<PipelineFigures>,
    pub pipeline_vs_three_commit_ceiling: Option<f64>,
    pub latency: Vec<LatencyFigures>,
    pub fan_out: Vec<FanOutFigures>,
    pub worker_scaling: Vec<(usize, f64)>,
    pub usage: Vec<(String, Usage)>,
    /// CPU time (user + system) of the API and workers per task created, at each concurrency
    /// of the create phase (all its runs together).
    pub cpu_per_created_task: Vec<(usize, CpuPerTask)>,
    /// CPU time of the API and workers per task DONE in the pipeline phase (all its runs).
    pub cpu_per_done_task: Option<CpuPerTask>,
    /// Dispatch lag of delayed tasks all due in the same second.
    pub delayed: Option<DelayedFigures>,
    /// The headline figures in one line, as printed at the end.
    pub summary: String,
}

#[derive(Serialize)]
pub struct Machine {
    pub cores: usize,
    pub memory_gb: f64,
    pub mysql: String,
    pub rabbitmq: String,
    pub redis: String,
}

#[derive(Serialize)]
pub struct Ceilings {
    pub insert_commit_per_second_at_64: f64,
    /// An INSERT+COMMIT, then a confirmed publish per row, at concurrency 64: what a create
    /// owes at the least, on the same cores.
    pub insert_then_publish_per_second_at_64: f64,
    pub confirmed_publish_per_second: f64,
    pub redis_publish_per_second: f64,
}

pub async fn machine(admin: &sqlx::MySqlPool, env: &Env) -> Machine {
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

pub fn write_report(report: &Report) -> anyhow::Result<()> {
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
    println!("{}", report.summary);
    Ok(())
}

/// The headline figures, in one line: create at concurrency 64, the pipeline, the end-to-end
/// p99 at each offered rate, and CPU per task.
pub fn summary(r: &Report) -> String {
    let mut parts = Vec::new();
    if let Some(c) = r.create.iter().find(|c| c.concurrency == 64) {
        parts.push(format!("create c=64 {:.0}/s", c.requests_per_second));
    }
    if let Some((_, cpu)) = r.cpu_per_created_task.iter().find(|(c, _)| *c == 64) {
        parts.push(format!("API CPU {:.0} µs/created task", cpu.api_us));
    }
    if let Some(p) = &r.pipeline {
        parts.push(format!("pipeline {:.0} tasks/s", p.tasks_per_second));
    }
    if let Some(cpu) = &r.cpu_per_done_task {
        parts.push(format!(
            "API+worker CPU {:.0} µs/DONE task (API {:.0}, workers {:.0})",
            cpu.total_us, cpu.api_us, cpu.workers_us
        ));
    }
    for l in &r.latency {
        parts.push(format!(
            "e2e p99 {:.1} ms at {:.0}/s",
            l.latency.p99_ms, l.offered_per_second
        ));
    }
    if let Some(d) = &r.delayed {
        parts.push(format!(
            "{} delayed tasks due in one second: start lag p99 {:.0} ms{}",
            d.tasks,
            d.start_lag.p99_ms,
            d.publish_lag_p99_at_most_ms
                .map(|ms| format!(", publish lag p99 ≤ {ms:.0} ms"))
                .unwrap_or_default()
        ));
    }
    format!("summary: {}", parts.join("; "))
}

fn render(r: &Report) -> String {
    let mut md = String::new();
    let m = &r.machine;
    md += &format!(
        "Machine: {} cores, {:.0} GiB; MySQL {}, RabbitMQ {}, Redis {}; {}.{}\n\n",
        m.cores,
        m.memory_gb,
        m.mysql,
        m.rabbitmq.trim_matches('"'),
        m.redis,
        if r.url.is_some() {
            "cores and memory are the load generator's machine; RabbitMQ's version is the local \
             broker's, if any"
        } else {
            "all services on the same machine"
        },
        match (r.quick, r.runs) {
            (true, 1) => " (quick run: one sample each, small sizes)".to_owned(),
            (true, runs) => format!(" (quick run: small sizes, median of {runs} runs)"),
            (false, 1) => " (one run each)".to_owned(),
            (false, runs) => format!(" (median of {runs} runs)"),
        }
    );
    if let Some(url) = &r.url {
        md += &format!("Stack: the one running at {url} (its services, names and workers).\n\n");
    }
    md += "| Measure | Result |\n| --- | --- |\n";
    if let Some(d) = &r.delayed {
        md += &format!(
            "| Delayed tasks due in the same second ({}, {} created after it) | publish − run_at p99 ≤ {} ms; start − run_at p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms |\n",
            d.tasks,
            d.created_late,
            d.publish_lag_p99_at_most_ms
                .map_or("?".to_owned(), |ms| format!("{ms:.0}")),
            d.start_lag.p50_ms,
            d.start_lag.p99_ms,
            d.start_lag.max_ms
        );
    }
    if let Some(c) = &r.ceilings {
        for (measure, per_second) in [
            (
                "INSERT+COMMIT at concurrency 64",
                c.insert_commit_per_second_at_64,
            ),
            (
                "INSERT+COMMIT, then a confirmed publish, at concurrency 64",
                c.insert_then_publish_per_second_at_64,
            ),
            ("confirmed AMQP publishes", c.confirmed_publish_per_second),
            ("Redis PUBLISH", c.redis_publish_per_second),
        ] {
            md += &format!("| Raw ceiling: {measure} | {per_second:.0}/s |\n");
        }
    }
    let workers = if r.create_with_workers_stopped {
        "workers stopped"
    } else {
        "workers running"
    };
    for c in &r.create {
        md += &format!(
            "| `POST /tasks` at concurrency {} ({workers}) | {:.0}/s, p50 {:.1} ms, p99 {:.1} ms |\n",
            c.concurrency, c.requests_per_second, c.latency.p50_ms, c.latency.p99_ms
        );
    }
    for (concurrency, cpu) in &r.cpu_per_created_task {
        let workers_cpu = if r.create_with_workers_stopped {
            String::new()
        } else {
            format!(", workers {:.0} µs", cpu.workers_us)
        };
        md += &format!(
            "| CPU per task created at concurrency {concurrency} | API {:.0} µs{workers_cpu} ({} tasks) |\n",
            cpu.api_us, cpu.tasks
        );
    }
    if let Some(ratio) = r.create_vs_insert_ceiling_at_64 {
        md += &format!(
            "| Create at 64 vs INSERT ceiling | {:.0}% |\n",
            ratio * 100.0
        );
    }
    if let Some(ratio) = r.create_vs_insert_then_publish_ceiling_at_64 {
        md += &format!(
            "| Create at 64 vs INSERT-then-publish ceiling | {:.0}% |\n",
            ratio * 100.0
        );
    }
    if let Some(p) = &r.pipeline {
        md += &format!(
            "| Pipeline: {} tasks to DONE on a WebSocket | {:.0} tasks/s ({} finished in {:.1} s) |\n",
            p.tasks, p.tasks_per_second, p.finished, p.seconds
        );
    }
    if let Some(cpu) = &r.cpu_per_done_task {
        md += &format!(
            "| CPU per task DONE in the pipeline | API + workers {:.0} µs (API {:.0}, workers {:.0}; {} tasks) |\n",
            cpu.total_us, cpu.api_us, cpu.workers_us, cpu.tasks
        );
    }
    if let Some(ratio) = r.pipeline_vs_three_commit_ceiling {
        md += &format!(
            "| Pipeline vs three-commit ceiling | {:.0}% |\n",
            ratio * 100.0
        );
    }
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
            "| Fan-out: {} clients × {} events | {} of {} deliveries missing; p50 {:.1} ms, p99 {:.1} ms; API RSS {} |\n",
            f.clients,
            f.events,
            f.missing_deliveries,
            f.expected_deliveries,
            f.delivery.p50_ms,
            f.delivery.p99_ms,
            f.api_rss_mb.map_or(
                "not measured (no API process here)".to_owned(),
                |mb| format!("{mb:.0} MB")
            )
        );
    }
    if r.url.is_some() && r.phases.contains(&Phase::Scaling) {
        md += "| Worker scaling | not measured: a running stack's workers are not the bench's to start |\n";
    }
    for (workers, rate) in &r.worker_scaling {
        md += &format!("| Pipeline with {workers} worker(s) | {rate:.0} tasks/s |\n");
    }
    if r.usage.is_empty() {
        return md;
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

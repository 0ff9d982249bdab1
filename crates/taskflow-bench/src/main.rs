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
use crate::stack::{CpuPerTask, Env, Stack, Usage};
use crate::stats::{median, median_by};

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
    /// Runs per figure (its median is reported).
    runs: usize,
    /// `null` for a stack the bench started; the URL of a running stack otherwise.
    url: Option<String>,
    /// The phases run (`--only` may leave some out).
    phases: Vec<Phase>,
    ceilings: Option<Ceilings>,
    /// Whether the create phase ran with the workers stopped (a running stack keeps its own).
    create_with_workers_stopped: bool,
    create: Vec<CreateFigures>,
    create_vs_insert_ceiling_at_64: Option<f64>,
    create_vs_insert_then_publish_ceiling_at_64: Option<f64>,
    pipeline: Option<PipelineFigures>,
    pipeline_vs_three_commit_ceiling: Option<f64>,
    latency: Vec<LatencyFigures>,
    fan_out: Vec<FanOutFigures>,
    worker_scaling: Vec<(usize, f64)>,
    usage: Vec<(String, Usage)>,
    /// CPU time (user + system) of the API and workers per task created, at each concurrency
    /// of the create phase (all its runs together).
    cpu_per_created_task: Vec<(usize, CpuPerTask)>,
    /// CPU time of the API and workers per task DONE in the pipeline phase (all its runs).
    cpu_per_done_task: Option<CpuPerTask>,
    /// The headline figures in one line, as printed at the end.
    summary: String,
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
    /// An INSERT+COMMIT, then a confirmed publish per row, at concurrency 64: what a create
    /// owes at the least, on the same cores.
    insert_then_publish_per_second_at_64: f64,
    confirmed_publish_per_second: f64,
    redis_publish_per_second: f64,
}

/// The phases, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Phase {
    Ceilings,
    Create,
    Pipeline,
    Latency,
    FanOut,
    Scaling,
}

impl Phase {
    const ALL: [Phase; 6] = [
        Phase::Ceilings,
        Phase::Create,
        Phase::Pipeline,
        Phase::Latency,
        Phase::FanOut,
        Phase::Scaling,
    ];

    fn name(self) -> &'static str {
        match self {
            Phase::Ceilings => "ceilings",
            Phase::Create => "create",
            Phase::Pipeline => "pipeline",
            Phase::Latency => "latency",
            Phase::FanOut => "fan-out",
            Phase::Scaling => "scaling",
        }
    }
}

const USAGE: &str = "usage: taskflow-bench [--quick] [--url http://HOST:PORT] [--only PHASE,...]
                      [--rates TASKS_PER_SECOND,...] [--runs N]
  --quick   small sizes, one run each (CI keeps the tool working with it)
  --url     measure a stack already running there, on the services and names its own
            variables give (DB_URL, RABBITMQ_URL, REDIS_URL, TASK_QUEUE, STATUS_CHANNEL,
            API_TOKEN); without it the bench starts a stack of its own on TEST_DB_URL,
            TEST_RABBITMQ_URL and TEST_REDIS_URL
  --only    some of: ceilings, create, pipeline, latency, fan-out, scaling
            (latency runs at shares of the pipeline's rate, so it brings the pipeline along)
  --rates   run the latency phase at these offered rates (tasks/s) instead of 10%, 50% and 90%
            of the pipeline's: two builds are then compared under the same load
  --runs    runs per figure (the median is reported) instead of 3 (1 with --quick): one
            run each, repeated in alternation with another build, compares the two";

struct Args {
    quick: bool,
    url: Option<String>,
    phases: Vec<Phase>,
    /// Offered rates for the latency phase, if given; otherwise shares of the pipeline's rate.
    rates: Option<Vec<f64>>,
    /// Runs per figure, if given; otherwise the plan's.
    runs: Option<usize>,
}

impl Args {
    fn parse(args: impl IntoIterator<Item = String>) -> anyhow::Result<Self> {
        let mut parsed = Self {
            quick: false,
            url: None,
            phases: Phase::ALL.to_vec(),
            rates: None,
            runs: None,
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
                None => (arg.clone(), None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .with_context(|| format!("{flag} needs a value\n{USAGE}"))
            };
            match flag.as_str() {
                "--quick" if inline.is_none() => parsed.quick = true,
                "--url" => {
                    let url = value()?;
                    anyhow::ensure!(
                        url.starts_with("http://"),
                        "--url {url}: expected http://HOST:PORT (the API's address)\n{USAGE}"
                    );
                    parsed.url = Some(url);
                }
                "--only" => {
                    let names = value()?;
                    let mut only = Vec::new();
                    for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                        let phase = Phase::ALL
                            .into_iter()
                            .find(|phase| phase.name() == name)
                            .with_context(|| format!("--only: no phase `{name}`\n{USAGE}"))?;
                        only.push(phase);
                    }
                    anyhow::ensure!(!only.is_empty(), "--only needs a phase\n{USAGE}");
                    parsed.phases = only;
                }
                "--rates" => {
                    let list = value()?;
                    let mut rates = Vec::new();
                    for rate in list.split(',').map(str::trim).filter(|r| !r.is_empty()) {
                        let parsed = rate
                            .parse::<f64>()
                            .ok()
                            .filter(|r| r.is_finite() && *r > 0.0);
                        rates.push(parsed.with_context(|| {
                            format!("--rates: `{rate}` is not a rate in tasks per second\n{USAGE}")
                        })?);
                    }
                    anyhow::ensure!(!rates.is_empty(), "--rates needs a rate\n{USAGE}");
                    parsed.rates = Some(rates);
                }
                "--runs" => {
                    let runs = value()?;
                    let parsed_runs = runs.parse::<usize>().ok().filter(|n| *n > 0);
                    parsed.runs = Some(parsed_runs.with_context(|| {
                        format!("--runs: `{runs}` is not a number of runs\n{USAGE}")
                    })?);
                }
                _ => anyhow::bail!("unknown argument `{arg}`\n{USAGE}"),
            }
        }
        // Shares of the pipeline's rate need the pipeline measured first.
        if parsed.phases.contains(&Phase::Latency) && parsed.rates.is_none() {
            parsed.phases.push(Phase::Pipeline);
        }
        let chosen = std::mem::take(&mut parsed.phases);
        parsed.phases = Phase::ALL
            .into_iter()
            .filter(|phase| chosen.contains(phase))
            .collect();
        Ok(parsed)
    }

    fn runs(&self, phase: Phase) -> bool {
        self.phases.contains(&phase)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|arg| arg == "-h" || arg == "--help") {
        println!("{USAGE}");
        return Ok(());
    }
    let args = match Args::parse(args) {
        Ok(args) => args,
        Err(err) => {
            eprintln!("taskflow-bench: {err:#}");
            std::process::exit(2);
        }
    };
    let mut plan = if args.quick {
        Plan::quick()
    } else {
        Plan::full()
    };
    if let Some(runs) = args.runs {
        plan.runs = runs;
    }
    let fds = stack::raise_fd_limit();
    let env = environment(args.url.is_some())?;
    println!(
        "taskflow-bench ({}), file descriptors: {fds}",
        if args.quick { "quick" } else { "full" }
    );

    let admin = sqlx::MySqlPool::connect(&env.mysql)
        .await
        .context("connecting to MySQL")?;
    let mut stack = match &args.url {
        Some(url) => Stack::attach(&env, url)?,
        None => Stack::start(&env, 1)?,
    };
    // Every phase but the ceilings and the fan-out needs a worker.
    if args
        .phases
        .iter()
        .any(|phase| !matches!(phase, Phase::Ceilings | Phase::FanOut))
    {
        phases::wait_for_consumers(&env, 1).await?;
    }
    let api = api_client(&stack, &env)?;
    let mut usage = Vec::new();
    let mut phase = |name: &str, before: Option<Usage>, stack: &Stack| {
        if let (Some(before), Some(after)) = (before, stack.usage()) {
            usage.push((name.to_owned(), before.until(&after)));
        }
    };
    let steps = args.phases.len();
    let mut step = 0;
    let mut announce = |what: &str| {
        step += 1;
        println!("{step}/{steps} {what}");
    };

    let mut ceilings = None;
    if args.runs(Phase::Ceilings) {
        announce("raw ceilings");
        let before = stack.usage();
        let ceiling = Duration::from_secs(plan.ceiling_seconds);
        let mut inserts = Vec::new();
        let mut inserts_then_publishes = Vec::new();
        let mut publishes = Vec::new();
        let mut redis = Vec::new();
        for _ in 0..plan.runs {
            inserts.push(phases::insert_ceiling(&env, 64, ceiling).await?);
            inserts_then_publishes
                .push(phases::insert_then_publish_ceiling(&env, 64, ceiling).await?);
            publishes.push(
                phases::publish_ceiling(&env, if args.quick { 5_000 } else { 50_000 }).await?,
            );
            redis.push(phases::redis_ceiling(&env, 16, ceiling).await?);
        }
        ceilings = Some(Ceilings {
            insert_commit_per_second_at_64: median(inserts),
            insert_then_publish_per_second_at_64: median(inserts_then_publishes),
            confirmed_publish_per_second: median(publishes),
            redis_publish_per_second: median(redis),
        });
        phase("ceilings", before, &stack);
    }

    let mut create = Vec::new();
    let mut cpu_per_created_task = Vec::new();
    if args.runs(Phase::Create) {
        // The create path alone: with the workers stopped, MySQL's time goes to the API's
        // INSERTs, as in the INSERT ceiling it is compared with. The tasks wait in the queue.
        // A running stack's workers are its own: they keep working.
        if stack.is_own() {
            announce("create throughput (workers stopped)");
            stack.set_workers(0)?;
        } else {
            announce("create throughput (the stack's workers running)");
        }
        let before = stack.usage();
        for concurrency in [1, 16, 64] {
            let level_before = stack.usage();
            let mut runs = Vec::new();
            for _ in 0..plan.runs {
                runs.push(
                    phases::create_throughput(
                        &api,
                        concurrency,
                        Duration::from_secs(plan.create_seconds),
                    )
                    .await?,
                );
            }
            let created = runs.iter().map(|run| run.latency.count).sum();
            if let Some(cpu) = CpuPerTask::between(level_before, stack.usage(), created) {
                cpu_per_created_task.push((concurrency, cpu));
            }
            create.extend(median_by(runs, |run| run.requests_per_second));
        }
        phase("create", before, &stack);
        // Let a worker finish the backlog the create phase left, so it does not skew the next.
        if stack.is_own() {
            stack.set_workers(1)?;
            phases::wait_for_consumers(&env, 1).await?;
        }
        drain(&env, &admin, &api.title).await?;
    }

    let mut pipeline = None;
    let mut cpu_per_done_task = None;
    if args.runs(Phase::Pipeline) {
        announce(&format!(
            "pipeline throughput ({} tasks)",
            plan.pipeline_tasks
        ));
        let before = stack.usage();
        let mut pipelines = Vec::new();
        for _ in 0..plan.runs {
            pipelines.push(phases::pipeline_throughput(&api, plan.pipeline_tasks).await?);
        }
        let done = pipelines.iter().map(|run| run.finished).sum();
        cpu_per_done_task = CpuPerTask::between(before, stack.usage(), done);
        pipeline = median_by(pipelines, |run| run.tasks_per_second);
        phase("pipeline", before, &stack);
    }

    let mut latency = Vec::new();
    let rates = match (&args.rates, pipeline) {
        (Some(rates), _) => rates.clone(),
        (None, Some(pipeline)) => [0.1, 0.5, 0.9]
            .map(|share| pipeline.tasks_per_second * share)
            .to_vec(),
        (None, None) => Vec::new(),
    };
    if args.runs(Phase::Latency) && !rates.is_empty() {
        match args.rates {
            Some(_) => announce("end-to-end latency at the rates given"),
            None => announce("end-to-end latency at 10%, 50%, 90% of the pipeline's throughput"),
        }
        let before = stack.usage();
        for rate in rates {
            latency.push(
                phases::end_to_end_latency(&api, rate, Duration::from_secs(plan.latency_seconds))
                    .await?,
            );
        }
        phase("latency", before, &stack);
    }

    let mut fan_out = Vec::new();
    if args.runs(Phase::FanOut) {
        announce("WebSocket fan-out");
        let before = stack.usage();
        for &clients in &plan.fan_out_clients {
            let api_rss = || stack.usage().map(|usage| usage.api.rss_mb);
            fan_out.push(
                phases::websocket_fan_out(
                    &env,
                    &api.ws_url,
                    clients,
                    plan.fan_out_events,
                    10.0,
                    api_rss,
                )
                .await?,
            );
        }
        phase("fan_out", before, &stack);
    }

    let mut worker_scaling = Vec::new();
    if args.runs(Phase::Scaling) {
        if stack.is_own() {
            announce("worker scaling");
            for &workers in &plan.workers {
                stack.set_workers(workers)?;
                phases::wait_for_consumers(&env, workers as u32).await?;
                drain(&env, &admin, &api.title).await?;
                let before = stack.usage();
                let figures = phases::pipeline_throughput(&api, plan.scaling_tasks).await?;
                worker_scaling.push((workers, figures.tasks_per_second));
                phase(&format!("scaling_{workers}_workers"), before, &stack);
            }
        } else {
            announce("worker scaling: skipped (a running stack's workers are not the bench's)");
        }
    }
    let own_stack = stack.is_own();
    drop(stack);

    let insert_ceiling = ceilings.as_ref().map(|c| c.insert_commit_per_second_at_64);
    let mut report = Report {
        machine: machine(&admin, &env).await,
        quick: args.quick,
        runs: plan.runs,
        url: args.url.clone(),
        phases: args.phases.clone(),
        create_with_workers_stopped: own_stack,
        create_vs_insert_ceiling_at_64: insert_ceiling
            .zip(create.get(2))
            .map(|(ceiling, at_64)| at_64.requests_per_second / ceiling),
        create_vs_insert_then_publish_ceiling_at_64: ceilings
            .as_ref()
            .zip(create.get(2))
            .map(|(c, at_64)| at_64.requests_per_second / c.insert_then_publish_per_second_at_64),
        pipeline_vs_three_commit_ceiling: insert_ceiling
            .zip(pipeline)
            .map(|(ceiling, pipeline)| pipeline.tasks_per_second / (ceiling / 3.0)),
        ceilings,
        create,
        pipeline,
        latency,
        fan_out,
        worker_scaling,
        usage,
        cpu_per_created_task,
        cpu_per_done_task,
        summary: String::new(),
    };
    report.summary = summary(&report);
    if own_stack {
        phases::clean_up(&env, &admin).await?;
    }
    write_report(&report)?;
    Ok(())
}

/// How the load generator reaches the API. `API_TOKEN`, if set (a stack the bench starts
/// inherits it too), goes with every request, and with the WebSocket as `?token=`.
fn api_client(stack: &Stack, env: &Env) -> anyhow::Result<phases::Api> {
    let token = std::env::var("API_TOKEN")
        .ok()
        .filter(|token| !token.is_empty());
    let mut headers = reqwest::header::HeaderMap::new();
    let mut ws_url = stack.ws_url();
    if let Some(token) = &token {
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}")
                .parse()
                .context("API_TOKEN is not a valid header value")?,
        );
        let mut url = reqwest::Url::parse(&ws_url).context("the API's WebSocket URL")?;
        url.query_pairs_mut().append_pair("token", token);
        ws_url = url.into();
    }
    Ok(phases::Api {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .default_headers(headers)
            .build()?,
        tasks_url: format!("{}/tasks", stack.api_url),
        ws_url,
        title: env.prefix.clone(),
    })
}

/// Waits until no task this run created (its title is the run's own) is PENDING or PROCESSING.
/// Unfinished tasks are few, and `idx_tasks_status` finds them.
async fn drain(env: &Env, admin: &sqlx::MySqlPool, title: &str) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    loop {
        let open: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM `{}`.tasks WHERE status IN ('PENDING', 'PROCESSING') \
             AND title = ?",
            env.database
        )))
        .bind(title)
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

/// The services and names: for a stack the bench starts, the test services (`TEST_DB_URL`, …)
/// and names unique to this run; for a running stack, the variables it reads itself.
fn environment(running: bool) -> anyhow::Result<Env> {
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let prefix = format!("bench-{suffix}");
    let bin_dir = stack::own_dir()?;
    if running {
        let settings = taskflow_core::config::Settings::from_env()?;
        let db_url = settings.db.url;
        let options: sqlx::mysql::MySqlConnectOptions = db_url.parse().context("parsing DB_URL")?;
        let database = options
            .get_database()
            .context("DB_URL names no database")?
            .to_owned();
        anyhow::ensure!(
            !database.contains('`'),
            "the database name in DB_URL contains a backquote"
        );
        return Ok(Env {
            bin_dir,
            mysql: db_url.clone(),
            database,
            db_url,
            rabbitmq: settings.amqp.url,
            redis: settings.redis.url,
            queue: settings.amqp.queue,
            channel: settings.redis.channel,
            prefix,
        });
    }
    let var = |names: &[&str], default: &str| {
        names
            .iter()
            .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
            .unwrap_or_else(|| default.to_owned())
    };
    let mysql = var(&["TEST_DB_URL"], "mysql://taskflow:taskflow@127.0.0.1:3306")
        .trim_end_matches('/')
        .to_owned();
    let database = format!("taskflow_bench_{suffix}");
    Ok(Env {
        bin_dir,
        db_url: format!("{mysql}/{database}"),
        mysql,
        database,
        rabbitmq: var(
            &["TEST_RABBITMQ_URL"],
            "amqp://guest:guest@127.0.0.1:5672/%2f",
        ),
        redis: var(&["TEST_REDIS_URL"], "redis://127.0.0.1:6379"),
        queue: format!("{prefix}.task.created"),
        channel: format!("{prefix}.task.status"),
        prefix,
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
    println!("{}", report.summary);
    Ok(())
}

/// The headline figures, in one line: create at concurrency 64, the pipeline, the end-to-end
/// p99 at each offered rate, and CPU per task.
fn summary(r: &Report) -> String {
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
    if let Some(c) = &r.ceilings {
        md += &format!(
            "| Raw ceiling: INSERT+COMMIT at concurrency 64 | {:.0}/s |\n",
            c.insert_commit_per_second_at_64
        );
        md += &format!(
            "| Raw ceiling: INSERT+COMMIT, then a confirmed publish, at concurrency 64 | {:.0}/s |\n",
            c.insert_then_publish_per_second_at_64
        );
        md += &format!(
            "| Raw ceiling: confirmed AMQP publishes | {:.0}/s |\n",
            c.confirmed_publish_per_second
        );
        md += &format!(
            "| Raw ceiling: Redis PUBLISH | {:.0}/s |\n",
            c.redis_publish_per_second
        );
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

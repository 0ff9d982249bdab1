//! `taskflow-bench`: measures the real, guarded pipeline on the services it is given and writes
//! `target/bench/report.json` and `report.md`. Run it with `cargo xtask bench` (`--quick` for
//! the short version CI runs). Figures are reported, never judged.

mod cli;
mod phases;
mod report;
mod stack;
mod stats;

use std::time::Duration;

use anyhow::Context as _;

use crate::cli::{Args, Phase, Plan, USAGE};
use crate::report::{Ceilings, Report, machine, summary, write_report};
use crate::stack::{CpuPerTask, Env, Stack, Usage};
use crate::stats::{median, median_by};

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
    let mut delayed = None;
    if args.runs(Phase::Delayed) {
        announce(&format!(
            "dispatch lag ({} delayed tasks due in the same second)",
            plan.delayed_tasks
        ));
        let before = stack.usage();
        delayed = Some(
            phases::delayed_dispatch_lag(&api, &admin, &env.database, plan.delayed_tasks).await?,
        );
        phase("delayed", before, &stack);
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
        delayed,
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

//! Project scripts, run as `cargo xtask <command>`:
//!
//! - `migrate`: create the database if needed and apply the migrations (`DB_URL`).
//! - `up`: migrate, then run the API and the worker with prefixed logs until Ctrl-C.
//! - `test`: formatting, clippy, and every test suite — the command CI runs.
//! - `soak`: the fault-injection soak test at full size (`SOAK_TASKS`, default 5,000).
//! - `bench [--quick] [--url URL] [--only PHASES] [--rates R,...]`: the benchmarks
//!   (`taskflow-bench`), report in `target/bench/`.
//!
//! Settings come from the environment and from a `.env` file at the root, if there is one.

mod env;
mod provision;
mod stack;
mod up;

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use xshell::{Shell, cmd};

const USAGE: &str = "usage: cargo xtask <migrate | up [--provision auto|binaries] | down | test | soak | bench [--quick] [--url URL] [--only PHASES] [--rates R,...]>";

fn main() -> anyhow::Result<()> {
    env::load_dotenv(&project_root().join(".env"))?;
    let command = std::env::args().nth(1);
    let sh = Shell::new()?;
    sh.change_dir(project_root());
    match command.as_deref() {
        Some("migrate") => migrate(&sh),
        Some("up") => up::run(&sh, &std::env::args().skip(2).collect::<Vec<_>>()),
        Some("down") => up::down(),
        Some("test") => test(&sh),
        Some("soak") => soak(&sh),
        Some("bench") => bench(&sh, &std::env::args().skip(2).collect::<Vec<_>>()),
        Some("help" | "--help" | "-h") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => anyhow::bail!("{USAGE}"),
    }
}

pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace root")
        .to_path_buf()
}

/// Builds every binary once, with the workspace's feature set, so later commands reuse it.
pub fn build_binaries(sh: &Shell) -> anyhow::Result<()> {
    cmd!(sh, "cargo build --workspace --bins").run()?;
    Ok(())
}

fn binary(name: &str) -> PathBuf {
    project_root().join("target/debug").join(name)
}

fn migrate(sh: &Shell) -> anyhow::Result<()> {
    build_binaries(sh)?;
    let api = binary("taskflow-api");
    cmd!(sh, "{api} migrate")
        .run()
        .context("migrating the database")?;
    Ok(())
}

/// The whole check CI runs: formatting, lints, the Rust test suites against the services the
/// environment names (`TEST_DB_URL`, `TEST_RABBITMQ_URL`, `TEST_REDIS_URL`) or containers, the
/// dashboard's type check and unit tests, then — against a real stack started here — the
/// browser suite and schemathesis on `/openapi.json`.
fn test(sh: &Shell) -> anyhow::Result<()> {
    cmd!(sh, "cargo fmt --all -- --check")
        .run()
        .context("formatting differs: run `cargo fmt --all`")?;
    cmd!(sh, "cargo clippy --workspace --all-targets -- -D warnings").run()?;
    // The flake's syntax, the Kubernetes manifests, the compose file and the workflow.
    cmd!(sh, "bash deploy/check.sh")
        .run()
        .context("the deployment files do not validate")?;
    let result = cmd!(sh, "cargo test --workspace --no-fail-fast")
        .env("INSTA_UPDATE", "no")
        .run();
    remove_test_containers(sh);
    result.context("tests failed")?;

    let frontend = project_root().join("frontend");
    {
        let _dir = sh.push_dir(&frontend);
        cmd!(sh, "npm ci --no-audit --no-fund").run()?;
        cmd!(sh, "npm run typecheck").run()?;
        cmd!(sh, "npm test").run()?;
        cmd!(sh, "npm run build").run()?;
    }
    stack_suites(sh)?;
    throwaway_smoke(sh)?;
    // The benchmark tool, in its short mode, so it keeps working (its figures are not judged).
    bench(sh, &["--quick".to_owned()])
}

/// `cargo xtask up`'s fourth way, for real: throwaway MariaDB, RabbitMQ and Redis from the
/// binaries on PATH, the API and a worker on them, one task to DONE, then everything stopped
/// and nothing left running.
fn throwaway_smoke(sh: &Shell) -> anyhow::Result<()> {
    let data = project_root().join("target/stack-smoke");
    let services = provision::throwaway(&data)?;
    let port = stack::free_port()?;
    let mut env = services.env();
    env.push(("WORKER_METRICS_PORT".to_owned(), "0".to_owned()));
    env.push(("RUST_LOG".to_owned(), "warn".to_owned()));
    let running = up::start_taskflow(sh, &env, &port.to_string(), false)?;
    let address = format!("127.0.0.1:{port}");
    let (status, body) = stack::http(
        &address,
        "POST",
        "/tasks",
        Some(r#"{"title":"smoke","payload":{"message":"throwaway"}}"#),
    )?;
    anyhow::ensure!(status == 201, "POST /tasks answered {status}: {body}");
    let id = body
        .split("\"task_id\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .context("a task_id in the answer")?
        .to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, task) = stack::http(&address, "GET", &format!("/tasks/{id}"), None)?;
        if task.contains("\"status\":\"DONE\"") {
            break;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the smoke task did not reach DONE: {task}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let pids = running
        .pids()
        .into_iter()
        .chain(services.started.pids())
        .collect::<Vec<_>>();
    drop(running);
    drop(services);
    let left: Vec<u32> = pids
        .into_iter()
        .filter(|pid| {
            std::path::Path::new(&format!("/proc/{pid}/status")).exists() && !is_zombie(*pid)
        })
        .collect();
    anyhow::ensure!(
        left.is_empty(),
        "processes left running after the stack stopped: {left:?}"
    );
    std::fs::remove_dir_all(&data).ok();
    println!("throwaway stack: task {id} DONE; stack stopped, nothing left running");
    Ok(())
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|status| {
        status
            .lines()
            .any(|line| line.starts_with("State:") && line.contains('Z'))
    })
}

/// Starts the API (serving the built dashboard) and a worker on a free port, with names of
/// their own, and runs the suites that need a whole running stack.
fn stack_suites(sh: &Shell) -> anyhow::Result<()> {
    build_binaries(sh)?;
    let port = stack::free_port()?;
    let env = suite_env();
    let root = project_root();
    let running = up::start_taskflow(sh, &env, &port.to_string(), false)?;
    let url = format!("http://127.0.0.1:{port}");

    {
        let _dir = sh.push_dir(root.join("frontend"));
        cmd!(sh, "npm run e2e")
            .env("TASKFLOW_URL", &url)
            .run()
            .context("the browser suite failed")?;
    }
    // Every 5xx schemathesis finds is a bug; the other checks hold the answers to the document.
    let openapi = format!("{url}/openapi.json");
    cmd!(
        sh,
        "schemathesis run {openapi} --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance --max-examples 30 --seed 1"
    )
    .run()
    .context("schemathesis found responses that break the API's contract")?;
    drop(running);
    token_suite(sh)
}

/// The browser suite's token scenario, on a second stack that wants a token for reads as well:
/// the page must ask for it, since none is built into the bundle.
fn token_suite(sh: &Shell) -> anyhow::Result<()> {
    let port = stack::free_port()?;
    // Fresh each run; `+/=` make the page's base64url differ from plain base64.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos();
    let token = format!("e2e+/={nanos}");
    let mut env = suite_env();
    env.push(("API_TOKEN".to_owned(), token.clone()));
    env.push(("API_TOKEN_READS".to_owned(), "true".to_owned()));
    let running = up::start_taskflow(sh, &env, &port.to_string(), false)?;
    let _dir = sh.push_dir(project_root().join("frontend"));
    let result = cmd!(sh, "npm run e2e")
        .env("TASKFLOW_URL", format!("http://127.0.0.1:{port}"))
        .env("TASKFLOW_TOKEN", &token)
        .run()
        .context("the browser suite's token scenario failed");
    drop(running);
    result
}

/// The stack suites' settings: the test servers, and names no test or dev stack uses.
fn suite_env() -> Vec<(String, String)> {
    let var = |names: &[&str], default: &str| {
        names
            .iter()
            .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
            .unwrap_or_else(|| default.to_owned())
    };
    let mysql = var(&["TEST_DB_URL"], "mysql://taskflow:taskflow@127.0.0.1:3306");
    let mysql = mysql.trim_end_matches('/');
    [
        ("DB_URL", format!("{mysql}/taskflow_suites")),
        (
            "RABBITMQ_URL",
            var(
                &["TEST_RABBITMQ_URL", "RABBITMQ_URL"],
                "amqp://guest:guest@127.0.0.1:5672/%2f",
            ),
        ),
        (
            "REDIS_URL",
            var(&["TEST_REDIS_URL", "REDIS_URL"], "redis://127.0.0.1:6379"),
        ),
        ("API_HOST", "127.0.0.1".to_owned()),
        ("WORKER_METRICS_PORT", "0".to_owned()),
        ("TASK_EXCHANGE", "suites.task.topic".to_owned()),
        ("TASK_QUEUE", "suites.task.created".to_owned()),
        (
            "TASK_DEAD_LETTER_QUEUE",
            "suites.task.dead-letter".to_owned(),
        ),
        ("STATUS_CHANNEL", "suites.task.status".to_owned()),
        (
            "STATIC_DIR",
            project_root().join("frontend/dist").display().to_string(),
        ),
        ("RUST_LOG", "warn".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The benchmarks, on release builds (debug ones for `--quick`, which only keeps the tool
/// working), against the services the environment names (as for `test`), or against a running
/// stack (`--url`). The arguments go to `taskflow-bench` as they are.
fn bench(sh: &Shell, args: &[String]) -> anyhow::Result<()> {
    let quick = args.iter().any(|arg| arg == "--quick");
    let profile = if quick { "dev" } else { "release" };
    cmd!(
        sh,
        "cargo build --profile {profile} -p taskflow-bench -p taskflow-api -p taskflow-worker"
    )
    .run()?;
    let dir = if quick { "debug" } else { "release" };
    let bench = project_root()
        .join("target")
        .join(dir)
        .join("taskflow-bench");
    cmd!(sh, "{bench} {args...}")
        .run()
        .context("the benchmark failed")?;
    Ok(())
}

/// The soak test at full size: tasks stream in at `SOAK_RATE` per second while random faults
/// cut MySQL, RabbitMQ and Redis; it prints what was sent, accepted, lost and duplicated.
fn soak(sh: &Shell) -> anyhow::Result<()> {
    let tasks = std::env::var("SOAK_TASKS").unwrap_or_else(|_| "5000".to_owned());
    let rate = std::env::var("SOAK_RATE").unwrap_or_else(|_| "100".to_owned());
    let result = cmd!(
        sh,
        "cargo test -p taskflow-tests --test integration -- soak --nocapture"
    )
    .env("SOAK_TASKS", tasks)
    .env("SOAK_RATE", rate)
    .run();
    remove_test_containers(sh);
    result.context("the soak test failed")?;
    Ok(())
}

/// The harness leaves the containers it started (if any) running until the test process ends;
/// remove them so a run leaves nothing behind.
fn remove_test_containers(sh: &Shell) {
    let Ok(ids) = cmd!(sh, "docker ps -aq --filter label=taskflow-test")
        .quiet()
        .ignore_stderr()
        .read()
    else {
        return;
    };
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if !ids.is_empty() {
        let _ = cmd!(sh, "docker rm -f {ids...}")
            .quiet()
            .ignore_stdout()
            .run();
    }
}

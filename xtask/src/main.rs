//! Project scripts, run as `cargo xtask <command>`:
//!
//! - `migrate`: create the database if needed and apply the migrations (`DB_URL`).
//! - `up`: migrate, then run the API and the worker with prefixed logs until Ctrl-C.
//! - `test`: formatting, clippy, and every test suite — the command CI runs.
//! - `up-smoke`: `up` on each provisioning path this machine offers (part of `test`).
//! - `soak`: the fault-injection soak test at full size (`SOAK_TASKS`, default 5,000).
//! - `bench [--quick] [--url URL] [--only PHASES] [--rates R,...] [--runs N]`: the benchmarks
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

const USAGE: &str = "usage: cargo xtask <migrate | up [--release] [--provision auto|binaries] | down | test | up-smoke | soak | bench [--quick] [--url URL] [--only PHASES] [--rates R,...] [--runs N]>";

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
        Some("up-smoke") => {
            build_binaries(&sh, Profile::Debug)?;
            let servers = provision::provision(
                provision::Mode::Auto,
                provision::TEST_NAMES,
                &project_root().join("target/test-services"),
            )?;
            up_smokes(&sh, &servers)?;
            harness_on_throwaway_servers(&sh)
        }
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

/// Which build the stack runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Debug,
    Release,
}

impl Profile {
    pub fn binary(self, name: &str) -> PathBuf {
        let dir = match self {
            Profile::Debug => "debug",
            Profile::Release => "release",
        };
        project_root().join("target").join(dir).join(name)
    }
}

/// Builds every binary once, with the workspace's feature set, so later commands reuse it.
pub fn build_binaries(sh: &Shell, profile: Profile) -> anyhow::Result<()> {
    match profile {
        Profile::Debug => cmd!(sh, "cargo build --workspace --bins").run()?,
        Profile::Release => cmd!(sh, "cargo build --release --workspace --bins").run()?,
    }
    Ok(())
}

pub fn binary(name: &str) -> PathBuf {
    Profile::Debug.binary(name)
}

fn migrate(sh: &Shell) -> anyhow::Result<()> {
    build_binaries(sh, Profile::Debug)?;
    let api = binary("taskflow-api");
    cmd!(sh, "{api} migrate")
        .run()
        .context("migrating the database")?;
    Ok(())
}

/// The whole check CI runs: formatting, lints, the deployment files, the Rust test suites, the
/// dashboard's type check and unit tests, then — against a real stack started here — the
/// browser suite, schemathesis on `/openapi.json`, `up` on every provisioning path this machine
/// offers, and the benchmark tool. The servers come from the provisioning chain, found once
/// and handed to every suite as `TEST_*`.
fn test(sh: &Shell) -> anyhow::Result<()> {
    cmd!(sh, "cargo fmt --all -- --check")
        .run()
        .context("formatting differs: run `cargo fmt --all`")?;
    cmd!(sh, "cargo clippy --workspace --all-targets -- -D warnings").run()?;
    // The flake's syntax, the Kubernetes manifests, the compose file and the workflow.
    let skipped_file = project_root().join("target/deploy-check-skipped");
    let _ = std::fs::remove_file(&skipped_file);
    cmd!(sh, "bash deploy/check.sh")
        .env("DEPLOY_CHECK_SKIPPED", &skipped_file)
        .run()
        .context("the deployment files do not validate")?;
    build_binaries(sh, Profile::Debug)?;
    let servers = provision::provision(
        provision::Mode::Auto,
        provision::TEST_NAMES,
        &project_root().join("target/test-services"),
    )?;
    println!("Testing on {}.", servers.how);
    let test_env = test_env(&servers);
    let result = cmd!(sh, "cargo test --workspace --no-fail-fast")
        .envs(test_env.iter().map(|(k, v)| (k, v)))
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
    stack_suites(sh, &servers)?;
    up_smokes(sh, &servers)?;
    harness_on_throwaway_servers(sh)?;
    // The benchmark tool, in its short mode, so it keeps working (its figures are not judged).
    bench_with(sh, &["--quick".to_owned()], &test_env)?;
    drop(servers);
    remove_test_containers(sh);
    // Repeated here, where it is read: check.sh's own list has scrolled away by now.
    if let Ok(skipped) = std::fs::read_to_string(&skipped_file) {
        println!("\nAll tests passed. Deploy checks skipped because their tool is missing:");
        for check in skipped.lines() {
            println!("  - {check}");
        }
    }
    Ok(())
}

/// The found servers under the names the test suites and the bench read.
fn test_env(servers: &provision::Servers) -> Vec<(String, String)> {
    vec![
        ("TEST_DB_URL".to_owned(), servers.mysql.clone()),
        ("TEST_RABBITMQ_URL".to_owned(), servers.rabbitmq.clone()),
        ("TEST_REDIS_URL".to_owned(), servers.redis.clone()),
    ]
}

/// `cargo xtask up` on each provisioning path this machine can offer, each from a state
/// without a stack directory: the configured URLs (the test servers, named as a user's `.env`
/// would), a MySQL whose root logs in only over its socket (a throwaway MariaDB installed as
/// Debian installs it, reached through the localhost step, so the machine's own server is left
/// alone), and throwaway instances from the binaries on PATH.
fn up_smokes(sh: &Shell, test_servers: &provision::Servers) -> anyhow::Result<()> {
    let dir = project_root().join("target/stack-smoke");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).context("clearing target/stack-smoke")?;
    }
    let configured = [
        ("DB_URL", test_servers.db_url("taskflow_smoke")),
        ("RABBITMQ_URL", test_servers.rabbitmq.clone()),
        ("REDIS_URL", test_servers.redis.clone()),
    ];
    let servers = taskflow_provision::configured(provision::STACK_NAMES, |name| {
        configured
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    })?
    .context("the configured URLs were not taken")?;
    up_smoke(sh, "configured", servers, &dir.join("configured"))?;

    if !taskflow_provision::binaries_available() {
        println!(
            "up smoke: skipped the socket-only root and throwaway paths: no server binaries on PATH"
        );
        return Ok(());
    }
    let (started, local) = taskflow_provision::throwaway_servers(
        &dir.join("socket-root-servers"),
        taskflow_provision::MariaDb::SocketRootOnly,
    )?;
    let mut servers = match taskflow_provision::localhost(&local) {
        Ok(Some(servers)) => servers,
        Ok(None) => anyhow::bail!("the localhost step did not find the servers it was shown"),
        Err(err) => return Err(err.context("the localhost step with a socket-only root")),
    };
    servers.started = started;
    up_smoke(sh, "socket-only root", servers, &dir.join("socket-root"))?;

    let servers = provision::provision(
        provision::Mode::Binaries,
        provision::STACK_NAMES,
        &dir.join("throwaway"),
    )?;
    up_smoke(sh, "throwaway", servers, &dir.join("throwaway"))?;
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

/// The integration harness's own chain on a machine whose services are stopped: a few tests in
/// network and process namespaces of their own, where nothing answers on the localhost ports
/// and no Docker engine is reachable, so the harness starts throwaway servers from the binaries
/// on PATH. The machine's servers keep running outside; the namespace ends with the command,
/// taking anything left in it along, and the check inside fails if the harness left its
/// servers running. Needs root (for the namespaces) and the binaries.
fn harness_on_throwaway_servers(sh: &Shell) -> anyhow::Result<()> {
    let root = cmd!(sh, "id -u").quiet().read().is_ok_and(|uid| uid == "0");
    if !root
        || !taskflow_provision::binaries_available()
        || cmd!(sh, "unshare --version")
            .quiet()
            .ignore_stdout()
            .run()
            .is_err()
    {
        println!(
            "harness on throwaway servers: skipped (needs root, unshare and the server binaries)"
        );
        return Ok(());
    }
    let script = "ip link set lo up && \
        cargo test --offline -p taskflow-tests --test integration -- \
          pipeline::a_task_with_a_message_is_seen adoption && \
        left=$(ps -e -o comm= | grep -E '^(mariadbd|redis-server|beam.smp)$' || true) && \
        if [ -n \"$left\" ]; then echo \"left running: $left\" >&2; exit 1; fi";
    cmd!(sh, "unshare --net --pid --fork --mount-proc sh -c {script}")
        .env_remove("TEST_DB_URL")
        .env_remove("TEST_RABBITMQ_URL")
        .env_remove("TEST_REDIS_URL")
        .run()
        .context("the integration harness on throwaway servers")?;
    println!("harness on throwaway servers: passed, nothing left running");
    Ok(())
}

/// What `up` runs, on `servers` with names of its own: one task to DONE, then everything
/// stopped and nothing left running.
fn up_smoke(
    sh: &Shell,
    path: &str,
    servers: provision::Servers,
    stack_dir: &Path,
) -> anyhow::Result<()> {
    let port = stack::free_port()?;
    let prefix = format!("smoke-{}", path.replace(' ', "-"));
    let env: Vec<(String, String)> = [
        ("WORKER_METRICS_PORT", "0".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
        ("TASK_EXCHANGE", format!("{prefix}.task.topic")),
        ("TASK_QUEUE", format!("{prefix}.task.created")),
        (
            "TASK_DEAD_LETTER_QUEUE",
            format!("{prefix}.task.dead-letter"),
        ),
        ("STATUS_CHANNEL", format!("{prefix}.task.status")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let running = up::launch(
        sh,
        servers,
        &env,
        &port.to_string(),
        false,
        Profile::Debug,
        stack_dir,
    )
    .with_context(|| format!("up on the {path} path"))?;
    let address = format!("127.0.0.1:{port}");
    let (status, body) = stack::http(
        &address,
        "POST",
        "/tasks",
        Some(r#"{"title":"smoke","payload":{"message":"up"}}"#),
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
            "{path}: the smoke task did not reach DONE: {task}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let pids = running.pids();
    drop(running);
    let left: Vec<u32> = pids
        .into_iter()
        .filter(|pid| {
            std::path::Path::new(&format!("/proc/{pid}/status")).exists() && !is_zombie(*pid)
        })
        .collect();
    anyhow::ensure!(
        left.is_empty(),
        "{path}: processes left running after the stack stopped: {left:?}"
    );
    println!("up smoke, {path}: task {id} DONE; stack stopped, nothing left running");
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
fn stack_suites(sh: &Shell, servers: &provision::Servers) -> anyhow::Result<()> {
    let port = stack::free_port()?;
    let env = suite_env(servers);
    let root = project_root();
    let running = up::start_taskflow(sh, &env, &port.to_string(), false, Profile::Debug)?;
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
    token_suite(sh, servers)
}

/// The browser suite's token scenario, on a second stack that wants a token for reads as well:
/// the page must ask for it, since none is built into the bundle.
fn token_suite(sh: &Shell, servers: &provision::Servers) -> anyhow::Result<()> {
    let port = stack::free_port()?;
    // Fresh each run; `+/=` make the page's base64url differ from plain base64.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos();
    let token = format!("e2e+/={nanos}");
    let mut env = suite_env(servers);
    env.push(("API_TOKEN".to_owned(), token.clone()));
    env.push(("API_TOKEN_READS".to_owned(), "true".to_owned()));
    let running = up::start_taskflow(sh, &env, &port.to_string(), false, Profile::Debug)?;
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
fn suite_env(servers: &provision::Servers) -> Vec<(String, String)> {
    [
        ("DB_URL", servers.db_url("taskflow_suites")),
        ("RABBITMQ_URL", servers.rabbitmq.clone()),
        ("REDIS_URL", servers.redis.clone()),
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
/// working), against the servers the provisioning chain finds (as for `test`), or against a
/// running stack (`--url`). The arguments go to `taskflow-bench` as they are.
fn bench(sh: &Shell, args: &[String]) -> anyhow::Result<()> {
    if args.iter().any(|arg| arg == "--url") {
        return bench_with(sh, args, &[]);
    }
    let servers = provision::provision(
        provision::Mode::Auto,
        provision::TEST_NAMES,
        &project_root().join("target/test-services"),
    )?;
    println!("Benchmarking on {}.", servers.how);
    let result = bench_with(sh, args, &test_env(&servers));
    drop(servers);
    remove_test_containers(sh);
    result
}

fn bench_with(sh: &Shell, args: &[String], env: &[(String, String)]) -> anyhow::Result<()> {
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
        .envs(env.iter().map(|(k, v)| (k, v)))
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

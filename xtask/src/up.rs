//! `cargo xtask up`: find or start MySQL, RabbitMQ and Redis (see `provision`), migrate, then run
//! the API, the worker and the dashboard's dev server, each line of their logs prefixed with its
//! service, until Ctrl-C (or SIGTERM), which stops everything that was started.
//! `cargo xtask down` stops a stack a killed `up` left behind.

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use xshell::{Shell, cmd};

use crate::provision::{self, Mode, STACK_NAMES, Servers};
use crate::stack::{self, Service, Stack};
use crate::{Profile, project_root};

/// Where `up` keeps throwaway data and the pids of what it started.
pub fn stack_dir() -> std::path::PathBuf {
    project_root().join("target/stack")
}

pub fn run(sh: &Shell, args: &[String]) -> anyhow::Result<()> {
    let mode = match args.iter().position(|arg| arg == "--provision") {
        None => Mode::Auto,
        Some(i) => match args.get(i + 1).map(String::as_str) {
            Some("binaries") => Mode::Binaries,
            Some("auto") => Mode::Auto,
            other => anyhow::bail!("--provision takes `auto` or `binaries`, not {other:?}"),
        },
    };
    // Release builds on request, so the stack's speed can be tried on what production runs.
    let profile = if args.iter().any(|arg| arg == "--release") {
        Profile::Release
    } else {
        Profile::Debug
    };
    crate::build_binaries(sh, profile)?;
    let frontend = project_root().join("frontend");
    if !frontend.join("node_modules").is_dir() {
        let _dir = sh.push_dir(&frontend);
        cmd!(sh, "npm ci --no-audit --no-fund")
            .run()
            .context("installing the dashboard's packages")?;
    }

    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    ctrlc::set_handler(move || {
        let _ = stop_tx.send(());
    })
    .context("installing the Ctrl-C handler")?;

    let servers = provision::provision(mode, STACK_NAMES, &stack_dir())?;
    println!("Using {}.", servers.how);
    let port = std::env::var("API_PORT").unwrap_or_else(|_| "8000".to_owned());
    let mut stack = launch(sh, servers, &[], &port, true, profile, &stack_dir())?;
    println!("\nTaskFlow is up:");
    println!("  Dashboard  http://localhost:5001");
    println!("  API        http://localhost:{port}  (docs: /docs, OpenAPI: /openapi.json)");
    println!("  WebSocket  ws://localhost:{port}/ws");
    println!("  Health     http://localhost:{port}/healthz   Metrics: /metrics");
    println!("Ctrl-C stops everything.\n");

    // Wait for Ctrl-C, or for a service to exit by itself (which ends the stack too).
    loop {
        if stop_rx.recv_timeout(Duration::from_millis(250)).is_ok() {
            break;
        }
        if let Some(service) = stack.exited() {
            eprintln!("{service} exited; stopping the stack");
            break;
        }
    }
    drop(stack);
    let _ = std::fs::remove_file(stack_dir().join("pids"));
    Ok(())
}

/// What `up` runs on `servers`: TaskFlow started on them (with `env` added), the servers' own
/// processes taken into the same stack, and every pid recorded under `stack_dir` for `down`.
pub fn launch(
    sh: &Shell,
    servers: Servers,
    env: &[(String, String)],
    port: &str,
    web: bool,
    profile: Profile,
    stack_dir: &Path,
) -> anyhow::Result<Stack> {
    let mut all_env = servers.env("taskflow");
    all_env.extend_from_slice(env);
    // The servers join the stack first, so a failed start stops them too.
    let mut stack = Stack::default();
    stack.extend(servers.started);
    stack.extend(start_taskflow(sh, &all_env, port, web, profile)?);
    stack.record_pids(&stack_dir.join("pids"))?;
    Ok(stack)
}

/// Migrates, then starts the API and the worker (and the dashboard's dev server when `web`)
/// with `env`, and waits until the API is ready.
pub fn start_taskflow(
    sh: &Shell,
    env: &[(String, String)],
    port: &str,
    web: bool,
    profile: Profile,
) -> anyhow::Result<Stack> {
    let api = profile.binary("taskflow-api");
    cmd!(sh, "{api} migrate")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .run()
        .context("migrating the database")?;
    let root = project_root();
    let mut env = env.to_vec();
    env.push(("API_PORT".to_owned(), port.to_owned()));
    let mut stack = Stack::default();
    stack.push(Service::spawn("api", &api, &[], &root, &env)?);
    stack.push(Service::spawn(
        "worker",
        &profile.binary("taskflow-worker"),
        &[],
        &root,
        &env,
    )?);
    if web {
        stack.push(Service::spawn(
            "web",
            Path::new("npm"),
            &["run", "dev"],
            &root.join("frontend"),
            &[(
                "TASKFLOW_API".to_owned(),
                format!("http://127.0.0.1:{port}"),
            )],
        )?);
    }
    stack::wait_until_ready(
        &format!("127.0.0.1:{port}"),
        "/healthz",
        Duration::from_secs(60),
    )?;
    Ok(stack)
}

/// `cargo xtask down`: stops the processes a previous `up` recorded and did not stop.
pub fn down() -> anyhow::Result<()> {
    let pids_file = stack_dir().join("pids");
    let Ok(text) = std::fs::read_to_string(&pids_file) else {
        println!("No stack left behind.");
        return Ok(());
    };
    let pids: Vec<u32> = text
        .lines()
        .filter_map(|line| line.trim().parse().ok())
        .collect();
    for pid in &pids {
        stack::signal_group(*pid, "TERM");
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    let alive = |pid: &u32| Path::new(&format!("/proc/{pid}")).exists();
    while pids.iter().any(alive) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    for pid in pids.iter().filter(|pid| alive(pid)) {
        stack::signal_group(*pid, "KILL");
    }
    std::fs::remove_file(&pids_file).context("removing the pid file")?;
    println!("Stopped {} processes.", pids.len());
    Ok(())
}

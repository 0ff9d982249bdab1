//! `cargo xtask up`: migrate, then run the API, the worker and the dashboard's dev server, each
//! line of their logs prefixed with its service, until Ctrl-C (or SIGTERM), which stops
//! everything that was started.

use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context as _;
use xshell::{Shell, cmd};

use crate::stack::{Service, Stack};
use crate::{binary, project_root};

pub fn run(sh: &Shell) -> anyhow::Result<()> {
    crate::migrate(sh)?;
    let frontend = project_root().join("frontend");
    if !frontend.join("node_modules").is_dir() {
        let _dir = sh.push_dir(&frontend);
        cmd!(sh, "npm ci")
            .run()
            .context("installing the dashboard's packages")?;
    }

    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    ctrlc::set_handler(move || {
        let _ = stop_tx.send(());
    })
    .context("installing the Ctrl-C handler")?;

    let port = std::env::var("API_PORT").unwrap_or_else(|_| "8000".to_owned());
    let root = project_root();
    let mut stack = Stack::default();
    stack.push(Service::spawn(
        "api",
        &binary("taskflow-api"),
        &[],
        &root,
        &[],
    )?);
    stack.push(Service::spawn(
        "worker",
        &binary("taskflow-worker"),
        &[],
        &root,
        &[],
    )?);
    stack.push(Service::spawn(
        "web",
        std::path::Path::new("npm"),
        &["run", "dev"],
        &frontend,
        &[(
            "TASKFLOW_API".to_owned(),
            format!("http://127.0.0.1:{port}"),
        )],
    )?);
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
    Ok(())
}

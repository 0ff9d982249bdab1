//! `cargo xtask up`: migrate, then run the API and the worker, each line of their logs prefixed
//! with its service, until Ctrl-C (or SIGTERM), which stops everything that was started.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use xshell::Shell;

use crate::binary;

/// How long the services get to drain after Ctrl-C before they are killed.
const STOP_DEADLINE: Duration = Duration::from_secs(15);

pub fn run(sh: &Shell) -> anyhow::Result<()> {
    crate::migrate(sh)?;

    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    ctrlc::set_handler(move || {
        let _ = stop_tx.send(());
    })
    .context("installing the Ctrl-C handler")?;

    let port = std::env::var("API_PORT").unwrap_or_else(|_| "8000".to_owned());
    let mut services = vec![
        Service::spawn(sh, "api", "taskflow-api")?,
        Service::spawn(sh, "worker", "taskflow-worker")?,
    ];
    println!("\nTaskFlow is up:");
    println!("  API        http://localhost:{port}  (POST /tasks, GET /tasks, GET /tasks/{{id}})");
    println!("  WebSocket  ws://localhost:{port}/ws");
    println!("  Health     http://localhost:{port}/healthz");
    println!("Ctrl-C stops everything.\n");

    // Wait for Ctrl-C, or for a service to exit by itself (which ends the stack too).
    loop {
        if stop_rx.recv_timeout(Duration::from_millis(250)).is_ok() {
            break;
        }
        if let Some(service) = services
            .iter_mut()
            .find_map(|s| s.has_exited().then_some(s.name))
        {
            eprintln!("{service} exited; stopping the stack");
            break;
        }
    }
    for service in &mut services {
        service.terminate();
    }
    let deadline = Instant::now() + STOP_DEADLINE;
    for service in &mut services {
        service.wait_until(deadline);
    }
    Ok(())
}

struct Service {
    name: &'static str,
    child: Child,
}

impl Service {
    fn spawn(sh: &Shell, name: &'static str, bin: &str) -> anyhow::Result<Self> {
        let mut command = Command::new(binary(bin));
        command
            .current_dir(sh.current_dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().with_context(|| format!("starting {bin}"))?;
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    println!("{name:<7}| {line}");
                }
            });
        }
        Ok(Self { name, child })
    }

    fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// SIGTERM: the services drain and exit on it.
    fn terminate(&mut self) {
        if self.has_exited() {
            return;
        }
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
    }

    fn wait_until(&mut self, deadline: Instant) {
        while Instant::now() < deadline {
            if self.has_exited() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("{} did not stop in time; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

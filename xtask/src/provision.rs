//! The provisioning chain (`taskflow-provision`) as xtask uses it: its Docker step runs the
//! integration harness's testcontainers code as the `taskflow-test-services` binary.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::Context as _;

use taskflow_provision::process::Stack;
pub use taskflow_provision::{Names, STACK_NAMES, Servers, TEST_NAMES};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Try every source in order.
    Auto,
    /// Go straight to throwaway instances from the binaries on `PATH`.
    Binaries,
}

/// The servers for `names`, found or started; what was started stops when they are dropped.
pub fn provision(mode: Mode, names: Names, data_dir: &Path) -> anyhow::Result<Servers> {
    match mode {
        Mode::Auto => taskflow_provision::locate(names, data_dir, containers),
        Mode::Binaries => taskflow_provision::throwaway(data_dir),
    }
}

/// The harness's container code, as a binary that prints the URLs and keeps the containers
/// until it is stopped.
fn containers() -> anyhow::Result<Servers> {
    let status = Command::new("cargo")
        .args([
            "build",
            "-p",
            "taskflow-tests",
            "--bin",
            "taskflow-test-services",
        ])
        .current_dir(crate::project_root())
        .status()
        .context("building taskflow-test-services")?;
    anyhow::ensure!(status.success(), "building taskflow-test-services failed");
    let binary = crate::binary("taskflow-test-services");
    let mut child = Command::new(&binary)
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut urls = std::collections::HashMap::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading the container URLs")?;
        if line == "READY" {
            break;
        }
        if let Some((name, value)) = line.split_once('=') {
            urls.insert(name.to_owned(), value.to_owned());
        }
    }
    let url = |name: &str| {
        urls.get(name)
            .cloned()
            .with_context(|| format!("taskflow-test-services printed no {name}"))
    };
    let mut started = Stack::default();
    started.adopt("containers", child);
    Ok(Servers {
        mysql: url("TEST_DB_URL")?,
        database: None,
        rabbitmq: url("TEST_RABBITMQ_URL")?,
        redis: url("TEST_REDIS_URL")?,
        how: "containers started with testcontainers",
        started,
    })
}

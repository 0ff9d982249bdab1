//! Project scripts, run as `cargo xtask <command>`:
//!
//! - `migrate`: create the database if needed and apply the migrations (`DB_URL`).
//! - `up`: migrate, then run the API and the worker with prefixed logs until Ctrl-C.
//! - `test`: formatting, clippy, and every test suite — the command CI runs.
//! - `soak`: the fault-injection soak test at full size (`SOAK_TASKS`, default 5,000).
//!
//! Settings come from the environment and from a `.env` file at the root, if there is one.

mod env;
mod up;

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use xshell::{Shell, cmd};

const USAGE: &str = "usage: cargo xtask <migrate | up | test | soak>";

fn main() -> anyhow::Result<()> {
    env::load_dotenv(&project_root().join(".env"))?;
    let command = std::env::args().nth(1);
    let sh = Shell::new()?;
    sh.change_dir(project_root());
    match command.as_deref() {
        Some("migrate") => migrate(&sh),
        Some("up") => up::run(&sh),
        Some("test") => test(&sh),
        Some("soak") => soak(&sh),
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
fn build_binaries(sh: &Shell) -> anyhow::Result<()> {
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

/// The whole check CI runs: formatting, lints, then the test suites against the services the
/// environment names (`TEST_DB_URL`, `TEST_RABBITMQ_URL`, `TEST_REDIS_URL`), or containers.
fn test(sh: &Shell) -> anyhow::Result<()> {
    cmd!(sh, "cargo fmt --all -- --check")
        .run()
        .context("formatting differs: run `cargo fmt --all`")?;
    cmd!(sh, "cargo clippy --workspace --all-targets -- -D warnings").run()?;
    let result = cmd!(sh, "cargo test --workspace --no-fail-fast")
        .env("INSTA_UPDATE", "no")
        .run();
    remove_test_containers(sh);
    result.context("tests failed")?;
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

//! A worker in a process of its own — the real worker `main`, built from its source as the
//! `taskflow-worker-under-test` binary of this package — so tests can SIGKILL or SIGTERM it.
//! Cargo tells only integration tests where that binary is, so they pass its path in.

use std::collections::HashMap;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

pub struct WorkerProcess {
    child: Child,
}

impl WorkerProcess {
    pub fn spawn(binary: &str, vars: &HashMap<String, String>, name: &str) -> Self {
        Self::spawn_command(Command::new(binary), vars, name)
    }

    /// A worker whose clock is `behind` the machine's, through libfaketime (Debian's
    /// `faketime`), preloaded into the worker itself so that killing the child kills the worker:
    /// a real process with a wrong clock, as on a host whose NTP is off.
    pub fn spawn_with_clock_behind(
        binary: &str,
        vars: &HashMap<String, String>,
        name: &str,
        behind: Duration,
    ) -> Self {
        const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
        assert!(
            std::path::Path::new(LIBFAKETIME).exists(),
            "this test needs libfaketime: apt-get install faketime"
        );
        let mut vars = vars.clone();
        vars.insert("LD_PRELOAD".to_owned(), LIBFAKETIME.to_owned());
        vars.insert("FAKETIME".to_owned(), format!("-{}s", behind.as_secs()));
        Self::spawn_command(Command::new(binary), &vars, name)
    }

    fn spawn_command(mut command: Command, vars: &HashMap<String, String>, name: &str) -> Self {
        let child = command
            .env_clear()
            .envs(vars)
            .env("WORKER_NAME", name)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_owned()),
            )
            .stdin(Stdio::null())
            .spawn()
            .expect("starting a worker process");
        Self { child }
    }

    /// SIGKILL: the process dies at once, mid-task, without settling anything.
    pub fn kill(&mut self) {
        self.signal("KILL");
        let _ = self.child.wait();
    }

    /// SIGTERM: the worker drains and exits by itself.
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Waits for the process to exit (after [`WorkerProcess::terminate`]).
    pub async fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut interval = tokio::time::interval(Duration::from_millis(20));
        loop {
            if let Some(status) = self.child.try_wait().expect("polling the worker process") {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the worker process did not exit in time"
            );
            interval.tick().await;
        }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{signal} failed");
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

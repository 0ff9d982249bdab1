//! Running servers and TaskFlow's processes from a script: each service a child process whose
//! log lines are prefixed with its name, stopped with SIGTERM (and killed after a deadline) when
//! the stack is dropped, so a failing script leaves nothing running.

use std::io::{BufRead as _, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::os::unix::process::CommandExt as _;

use anyhow::Context as _;

/// How long services get to drain after SIGTERM before they are killed.
const STOP_DEADLINE: Duration = Duration::from_secs(15);

pub struct Service {
    pub name: &'static str,
    child: Child,
}

impl Service {
    /// Starts `program` in `dir` with `env` added to this process's environment.
    pub fn spawn(
        name: &'static str,
        program: &Path,
        args: &[&str],
        dir: &Path,
        env: &[(String, String)],
    ) -> anyhow::Result<Self> {
        let mut child = Command::new(program)
            // A group of its own, so a stop reaches the whole tree (npm's Vite, RabbitMQ's BEAM).
            .process_group(0)
            .args(args)
            .current_dir(dir)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let streams: [Option<Box<dyn Read + Send>>; 2] = [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ];
        for stream in streams.into_iter().flatten() {
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    println!("{name:<7}| {line}");
                }
            });
        }
        Ok(Self { name, child })
    }

    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// SIGTERM to the service's process group: the services drain and exit on it.
    fn terminate(&mut self) {
        if !self.has_exited() {
            signal_group(self.child.id(), "TERM");
        }
    }

    fn wait_until(&mut self, deadline: Instant) {
        while Instant::now() < deadline {
            if self.has_exited() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("{} did not stop in time; killing it", self.name);
        signal_group(self.child.id(), "KILL");
        let _ = self.child.wait();
    }
}

/// Services that stop together, when dropped.
#[derive(Default)]
pub struct Stack {
    pub services: Vec<Service>,
}

impl Stack {
    pub fn push(&mut self, service: Service) {
        self.services.push(service);
    }

    /// Takes charge of a process started elsewhere (in a process group of its own or not).
    pub fn adopt(&mut self, name: &'static str, child: Child) {
        self.services.push(Service { name, child });
    }

    /// Moves every service of `other` into this stack (they then stop with it).
    pub fn extend(&mut self, mut other: Stack) {
        self.services.append(&mut other.services);
    }

    pub fn pids(&self) -> Vec<u32> {
        self.services
            .iter()
            .map(|service| service.child.id())
            .collect()
    }

    /// Writes the process ids to `path`, so `cargo xtask down` can stop a stack left behind.
    pub fn record_pids(&self, path: &Path) -> anyhow::Result<()> {
        let pids: Vec<String> = self
            .services
            .iter()
            .map(|service| service.child.id().to_string())
            .collect();
        // The directory exists only once a throwaway stack has run there.
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(path, pids.join("\n") + "\n")
            .with_context(|| format!("writing {}", path.display()))
    }

    /// The name of a service that exited by itself, if any.
    pub fn exited(&mut self) -> Option<&'static str> {
        self.services
            .iter_mut()
            .find_map(|service| service.has_exited().then_some(service.name))
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for service in &mut self.services {
            service.terminate();
        }
        let deadline = Instant::now() + STOP_DEADLINE;
        for service in &mut self.services {
            service.wait_until(deadline);
        }
    }
}

/// Sends `signal` to the process group led by `pid`.
pub fn signal_group(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), "--", &format!("-{pid}")])
        .stderr(Stdio::null())
        .status();
}

/// A port nobody listens on right now.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

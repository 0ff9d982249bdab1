//! Running TaskFlow's processes from a script: each service a child process whose log lines are
//! prefixed with its name, stopped with SIGTERM (and killed after a deadline) when the stack is
//! dropped, so a failing script leaves nothing running.

use std::io::{BufRead as _, BufReader, Read, Write as _};
use std::net::TcpStream;
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

/// Waits until `GET path` on `address` answers 200, or fails after `timeout`.
pub fn wait_until_ready(address: &str, path: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if http_status(address, path).is_ok_and(|status| status == 200) {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!("http://{address}{path} did not answer 200 within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn http_status(address: &str, path: &str) -> anyhow::Result<u16> {
    http(address, "GET", path, None).map(|(status, _)| status)
}

/// A plain HTTP/1.0 request with an optional JSON body: enough for probes and smoke tests,
/// without an HTTP client crate in the build scripts.
pub fn http(
    address: &str,
    method: &str,
    path: &str,
    json: Option<&str>,
) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let body = json.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .context("no status code")?
        .parse()
        .context("a numeric status code")?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// A port nobody listens on right now.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

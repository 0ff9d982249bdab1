//! Running TaskFlow's processes from a script: each service a child process whose log lines are
//! prefixed with its name, stopped with SIGTERM (and killed after a deadline) when the stack is
//! dropped, so a failing script leaves nothing running.

use std::io::{BufRead as _, BufReader, Read, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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

    /// SIGTERM: the services drain and exit on it.
    fn terminate(&mut self) {
        if !self.has_exited() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
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
        let _ = self.child.kill();
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

/// The status code of a plain HTTP/1.0 GET: enough for a readiness probe.
fn http_status(address: &str, path: &str) -> anyhow::Result<u16> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n")?;
    let mut status_line = String::new();
    BufReader::new(stream).read_line(&mut status_line)?;
    status_line
        .split_whitespace()
        .nth(1)
        .context("no status code")?
        .parse()
        .context("a numeric status code")
}

/// A port nobody listens on right now.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

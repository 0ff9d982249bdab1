//! The stack under test: the real API and worker binaries as child processes, on names of their
//! own — or a stack already running, reached by its URL — and their resource use read from
//! `/proc`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;

/// Where the services are, and the names this run uses.
#[derive(Debug, Clone)]
pub struct Env {
    pub bin_dir: PathBuf,
    /// Where the bench's own queries go: the server (a stack the bench starts gets a database of
    /// its own on it), or a running stack's database.
    pub mysql: String,
    /// The stack's database, and its URL.
    pub database: String,
    pub db_url: String,
    pub rabbitmq: String,
    pub redis: String,
    /// The stack's work queue and status channel.
    pub queue: String,
    pub channel: String,
    /// Unique to this run: the names of its scratch table, queue and channel, the title of its
    /// tasks, and, for a stack the bench starts, every name of that stack.
    pub prefix: String,
}

impl Env {
    fn vars(&self) -> Vec<(String, String)> {
        let p = &self.prefix;
        [
            ("DB_URL", self.db_url.clone()),
            ("RABBITMQ_URL", self.rabbitmq.clone()),
            ("REDIS_URL", self.redis.clone()),
            ("TASK_EXCHANGE", format!("{p}.task.topic")),
            ("TASK_QUEUE", self.queue.clone()),
            ("TASK_DEAD_LETTER_QUEUE", format!("{p}.task.dead-letter")),
            ("STATUS_CHANNEL", self.channel.clone()),
            ("API_HOST", "127.0.0.1".to_owned()),
            ("WORKER_METRICS_PORT", "0".to_owned()),
            ("STATIC_DIR", "/nonexistent".to_owned()),
            ("RUST_LOG", "warn".to_owned()),
            ("DB_MAX_CONNECTIONS", "32".to_owned()),
            // Tasks that finish at once: enough deliveries in hand that the worker's start and
            // finish batches fill up while the one before is at the database
            // (docs/performance.md).
            ("WORKER_PREFETCH", "256".to_owned()),
            ("WS_MAX_CLIENTS", "20000".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    fn command(&self, binary: &str) -> Command {
        let mut command = Command::new(self.bin_dir.join(binary));
        command
            .envs(self.vars())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        command
    }
}

/// The API and workers under test. Those the bench started are stopped when it is dropped.
pub struct Stack {
    /// `http://host:port`
    pub api_url: String,
    /// Started by the bench, or `None` for a running stack, whose processes are not the bench's
    /// to start or stop.
    api: Option<Child>,
    workers: Vec<Child>,
    env: Env,
}

impl Stack {
    pub fn start(env: &Env, workers: usize) -> anyhow::Result<Self> {
        let status = env
            .command("taskflow-api")
            .arg("migrate")
            .status()
            .context("migrating the bench database")?;
        anyhow::ensure!(status.success(), "taskflow-api migrate failed");
        let port = free_port()?;
        let api = env
            .command("taskflow-api")
            .env("API_PORT", port.to_string())
            .spawn()
            .context("starting the API")?;
        let address = format!("127.0.0.1:{port}");
        let mut stack = Self {
            api_url: format!("http://{address}"),
            api: Some(api),
            workers: Vec::new(),
            env: env.clone(),
        };
        stack.set_workers(workers)?;
        wait_for_port(&address, Duration::from_secs(60))?;
        Ok(stack)
    }

    /// A stack already running at `url` (`http://host:port`, checked by the argument parser), on
    /// the services and names `env` gives.
    pub fn attach(env: &Env, url: &str) -> anyhow::Result<Self> {
        let url = url.trim_end_matches('/');
        Ok(Self {
            api_url: url.to_owned(),
            api: None,
            workers: Vec::new(),
            env: env.clone(),
        })
    }

    /// Whether the bench started this stack, so it can stop and start its workers.
    pub fn is_own(&self) -> bool {
        self.api.is_some()
    }

    /// Starts or stops workers until `count` run.
    pub fn set_workers(&mut self, count: usize) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.is_own(),
            "the workers of a running stack are not the bench's to start or stop"
        );
        while self.workers.len() < count {
            let n = self.workers.len() + 1;
            let worker = self
                .env
                .command("taskflow-worker")
                .env("WORKER_NAME", format!("bench-worker-{n}"))
                .spawn()
                .context("starting a worker")?;
            self.workers.push(worker);
        }
        while self.workers.len() > count {
            let mut worker = self.workers.pop().expect("more than count");
            terminate(&mut worker);
        }
        Ok(())
    }

    pub fn ws_url(&self) -> String {
        format!("ws{}/ws", self.api_url.trim_start_matches("http"))
    }

    /// Resident memory and CPU time of the API and of all workers together: of the processes
    /// the bench started, or, for a running stack, of the `taskflow-api` and `taskflow-worker`
    /// processes on this machine (`None` if there is no API process here to measure).
    pub fn usage(&self) -> Option<Usage> {
        let (api, workers) = match &self.api {
            Some(api) => (vec![api.id()], self.workers.iter().map(Child::id).collect()),
            None => (pids_named("taskflow-api"), pids_named("taskflow-worker")),
        };
        if api.is_empty() {
            return None;
        }
        Some(Usage {
            api: total_usage(&api),
            workers: total_usage(&workers),
        })
    }
}

fn total_usage(pids: &[u32]) -> ProcessUsage {
    pids.iter()
        .map(|&pid| process_usage(pid))
        .fold(ProcessUsage::default(), |a, b| ProcessUsage {
            rss_mb: a.rss_mb + b.rss_mb,
            cpu_seconds: a.cpu_seconds + b.cpu_seconds,
        })
}

/// The processes whose command name is `name`.
fn pids_named(name: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim_end() == name)
        })
        .collect()
}

impl Drop for Stack {
    fn drop(&mut self) {
        for worker in &mut self.workers {
            terminate(worker);
        }
        if let Some(api) = &mut self.api {
            terminate(api);
        }
    }
}

fn terminate(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ProcessUsage {
    pub rss_mb: f64,
    pub cpu_seconds: f64,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Usage {
    pub api: ProcessUsage,
    pub workers: ProcessUsage,
}

impl Usage {
    /// CPU seconds spent between `self` (earlier) and `later`, and the later memory.
    pub fn until(&self, later: &Usage) -> Usage {
        Usage {
            api: ProcessUsage {
                rss_mb: later.api.rss_mb,
                cpu_seconds: later.api.cpu_seconds - self.api.cpu_seconds,
            },
            workers: ProcessUsage {
                rss_mb: later.workers.rss_mb,
                cpu_seconds: later.workers.cpu_seconds - self.workers.cpu_seconds,
            },
        }
    }
}

/// CPU time (user + system) spent per task between two readings, in microseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CpuPerTask {
    /// The tasks the CPU time is divided by.
    pub tasks: usize,
    pub api_us: f64,
    pub workers_us: f64,
    pub total_us: f64,
}

impl CpuPerTask {
    /// `None` without both readings (no API process here to read) or without a task.
    pub fn between(before: Option<Usage>, after: Option<Usage>, tasks: usize) -> Option<Self> {
        let spent = before?.until(&after?);
        if tasks == 0 {
            return None;
        }
        let per_task = |seconds: f64| seconds * 1e6 / tasks as f64;
        Some(Self {
            tasks,
            api_us: per_task(spent.api.cpu_seconds),
            workers_us: per_task(spent.workers.cpu_seconds),
            total_us: per_task(spent.api.cpu_seconds + spent.workers.cpu_seconds),
        })
    }
}

fn process_usage(pid: u32) -> ProcessUsage {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kb: f64 = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kb| kb.parse().ok())
        .unwrap_or(0.0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the command.
    let per_second = clock_ticks_per_second();
    ProcessUsage {
        rss_mb: rss_kb / 1024.0,
        cpu_seconds: (ticks(11) + ticks(12)) / per_second,
    }
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn wait_for_port(address: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while std::net::TcpStream::connect(address).is_err() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the API did not listen on {address}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// The directory of the running binary: the API and worker binaries sit beside it.
pub fn own_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the bench binary")?;
    Ok(exe.parent().map(Path::to_path_buf).unwrap_or_default())
}

/// Lets this process (and the API it starts, which inherits it) open as many sockets as the
/// hard limit allows: 10,000 WebSocket clients need 10,000 descriptors on each side.
pub fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
    limit.rlim_cur
}

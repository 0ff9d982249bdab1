//! The command line: the arguments, the phases they choose, and how big each phase is.

use anyhow::Context as _;
use serde::Serialize;

/// How big each phase is.
pub struct Plan {
    pub runs: usize,
    pub ceiling_seconds: u64,
    pub create_seconds: u64,
    pub pipeline_tasks: usize,
    pub latency_seconds: u64,
    pub fan_out_clients: Vec<usize>,
    pub fan_out_events: usize,
    pub scaling_tasks: usize,
    pub workers: Vec<usize>,
    pub delayed_tasks: usize,
}

impl Plan {
    pub fn full() -> Self {
        Self {
            runs: 3,
            ceiling_seconds: 5,
            create_seconds: 5,
            pipeline_tasks: 20_000,
            latency_seconds: 10,
            fan_out_clients: vec![1_000, 10_000],
            fan_out_events: 50,
            scaling_tasks: 5_000,
            workers: vec![1, 2, 4],
            delayed_tasks: 10_000,
        }
    }

    /// Under two minutes, so CI keeps the tool working.
    pub fn quick() -> Self {
        Self {
            runs: 1,
            ceiling_seconds: 2,
            create_seconds: 2,
            pipeline_tasks: 1_000,
            latency_seconds: 3,
            fan_out_clients: vec![200],
            fan_out_events: 20,
            scaling_tasks: 500,
            workers: vec![1, 2],
            delayed_tasks: 1_000,
        }
    }
}

/// The phases, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Ceilings,
    Create,
    Pipeline,
    Latency,
    FanOut,
    Scaling,
    Delayed,
}

impl Phase {
    pub const ALL: [Phase; 7] = [
        Phase::Ceilings,
        Phase::Create,
        Phase::Pipeline,
        Phase::Latency,
        Phase::FanOut,
        Phase::Scaling,
        Phase::Delayed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Phase::Ceilings => "ceilings",
            Phase::Create => "create",
            Phase::Pipeline => "pipeline",
            Phase::Latency => "latency",
            Phase::FanOut => "fan-out",
            Phase::Scaling => "scaling",
            Phase::Delayed => "delayed",
        }
    }
}

pub const USAGE: &str =
    "usage: taskflow-bench [--quick] [--url http://HOST:PORT] [--only PHASE,...]
                      [--rates TASKS_PER_SECOND,...] [--runs N]
  --quick   small sizes, one run each (CI keeps the tool working with it)
  --url     measure a stack already running there, on the services and names its own
            variables give (DB_URL, RABBITMQ_URL, REDIS_URL, TASK_QUEUE, STATUS_CHANNEL,
            API_TOKEN); without it the bench starts a stack of its own on TEST_DB_URL,
            TEST_RABBITMQ_URL and TEST_REDIS_URL
  --only    some of: ceilings, create, pipeline, latency, fan-out, scaling, delayed
            (delayed: dispatch lag of tasks all due in the same second)
            (latency runs at shares of the pipeline's rate, so it brings the pipeline along)
  --rates   run the latency phase at these offered rates (tasks/s) instead of 10%, 50% and 90%
            of the pipeline's: two builds are then compared under the same load
  --runs    runs per figure (the median is reported) instead of 3 (1 with --quick): one
            run each, repeated in alternation with another build, compares the two";

pub struct Args {
    pub quick: bool,
    pub url: Option<String>,
    pub phases: Vec<Phase>,
    /// Offered rates for the latency phase, if given; otherwise shares of the pipeline's rate.
    pub rates: Option<Vec<f64>>,
    /// Runs per figure, if given; otherwise the plan's.
    pub runs: Option<usize>,
}

impl Args {
    pub fn parse(args: impl IntoIterator<Item = String>) -> anyhow::Result<Self> {
        let mut parsed = Self {
            quick: false,
            url: None,
            phases: Phase::ALL.to_vec(),
            rates: None,
            runs: None,
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
                None => (arg.clone(), None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .with_context(|| format!("{flag} needs a value\n{USAGE}"))
            };
            match flag.as_str() {
                "--quick" if inline.is_none() => parsed.quick = true,
                "--url" => {
                    let url = value()?;
                    anyhow::ensure!(
                        url.starts_with("http://"),
                        "--url {url}: expected http://HOST:PORT (the API's address)\n{USAGE}"
                    );
                    parsed.url = Some(url);
                }
                "--only" => {
                    let names = value()?;
                    let mut only = Vec::new();
                    for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                        let phase = Phase::ALL
                            .into_iter()
                            .find(|phase| phase.name() == name)
                            .with_context(|| format!("--only: no phase `{name}`\n{USAGE}"))?;
                        only.push(phase);
                    }
                    anyhow::ensure!(!only.is_empty(), "--only needs a phase\n{USAGE}");
                    parsed.phases = only;
                }
                "--rates" => {
                    let list = value()?;
                    let mut rates = Vec::new();
                    for rate in list.split(',').map(str::trim).filter(|r| !r.is_empty()) {
                        let parsed = rate
                            .parse::<f64>()
                            .ok()
                            .filter(|r| r.is_finite() && *r > 0.0);
                        rates.push(parsed.with_context(|| {
                            format!("--rates: `{rate}` is not a rate in tasks per second\n{USAGE}")
                        })?);
                    }
                    anyhow::ensure!(!rates.is_empty(), "--rates needs a rate\n{USAGE}");
                    parsed.rates = Some(rates);
                }
                "--runs" => {
                    let runs = value()?;
                    let parsed_runs = runs.parse::<usize>().ok().filter(|n| *n > 0);
                    parsed.runs = Some(parsed_runs.with_context(|| {
                        format!("--runs: `{runs}` is not a number of runs\n{USAGE}")
                    })?);
                }
                _ => anyhow::bail!("unknown argument `{arg}`\n{USAGE}"),
            }
        }
        // Shares of the pipeline's rate need the pipeline measured first.
        if parsed.phases.contains(&Phase::Latency) && parsed.rates.is_none() {
            parsed.phases.push(Phase::Pipeline);
        }
        let chosen = std::mem::take(&mut parsed.phases);
        parsed.phases = Phase::ALL
            .into_iter()
            .filter(|phase| chosen.contains(phase))
            .collect();
        Ok(parsed)
    }

    pub fn runs(&self, phase: Phase) -> bool {
        self.phases.contains(&phase)
    }
}

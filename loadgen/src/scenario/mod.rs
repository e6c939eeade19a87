//! Scenario files: TOML → [`raw::RawScenario`] (exactly what was written) →
//! [`Scenario`] (resolved, validated, no optional required values).
//!
//! Every problem is reported as a [`ScenarioError`] that names the file, the
//! line, the TOML key and what is allowed there.

mod locate;
mod plan;
pub mod raw;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

pub use plan::{resolve, Overrides};

use crate::metric::LatencyKey;

/// A resolved scenario: what a run will do.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Short name; also the results directory name.
    pub name: String,
    /// Free text shown in reports.
    pub description: String,
    /// Seed of every random choice (adapter, lengths, prompt).
    pub seed: u64,
    /// Where requests go; `None` means the embedded reference server.
    pub target: Option<Target>,
    /// What each request asks for.
    pub workload: Workload,
    /// One entry per step of the sweep, run in order.
    pub steps: Vec<Step>,
    /// Time for all users of a step to start (closed loop).
    pub ramp_up: Duration,
    /// Pause between a user's response and its next request (closed loop).
    pub think_time: Duration,
    /// Objectives checked at the end of the run.
    pub slo: Vec<Slo>,
    /// Published figures to show beside the measured ones.
    pub reference: Option<Reference>,
    /// The scenario file's text, kept for the summary and report.
    pub source_text: String,
    /// Where the file was read from.
    pub path: PathBuf,
}

/// The server API spoken to a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// LoRAX/TGI `POST /generate_stream`.
    Lorax,
    /// OpenAI-compatible `POST /v1/completions`.
    OpenaiCompletions,
    /// OpenAI-compatible `POST /v1/chat/completions`.
    OpenaiChat,
}

impl Protocol {
    /// Accepted spellings, for error messages.
    pub const NAMES: &'static str = "lorax, openai-completions, openai-chat";

    /// Parse a protocol name as written in a scenario or on the command line.
    pub fn parse(s: &str) -> Option<Protocol> {
        match s {
            "lorax" | "tgi" => Some(Protocol::Lorax),
            "openai-completions" | "openai" => Some(Protocol::OpenaiCompletions),
            "openai-chat" => Some(Protocol::OpenaiChat),
            _ => None,
        }
    }

    /// The name as written in files.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Lorax => "lorax",
            Protocol::OpenaiCompletions => "openai-completions",
            Protocol::OpenaiChat => "openai-chat",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One or more replicas of a server.
#[derive(Debug, Clone)]
pub struct Target {
    /// API spoken.
    pub protocol: Protocol,
    /// Base URLs (scheme, host, port); several are replicas, used round-robin.
    pub urls: Vec<String>,
    /// Environment variable holding a bearer token, if any.
    pub token_env: Option<String>,
    /// Limit on one whole request, stream included.
    pub timeout: Duration,
    /// The `model` sent to OpenAI-compatible servers for the base model.
    pub base_model: Option<String>,
}

/// What each request asks for.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Prompt length in tokens.
    pub input_tokens: LengthDist,
    /// Requested output length in tokens.
    pub output_tokens: LengthDist,
    /// Where prompt text comes from.
    pub prompts: PromptSource,
    /// Adapters used when a step does not override them.
    pub adapters: AdapterSet,
    /// Ask the server to ignore EOS so outputs have the requested length.
    pub ignore_eos: bool,
}

/// A distribution of token counts, always within `[min, max]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "distribution", rename_all = "snake_case")]
pub enum LengthDist {
    /// Uniform over the integers `min..=max`.
    Uniform {
        /// Smallest value.
        min: u32,
        /// Largest value.
        max: u32,
    },
    /// Normal, rounded and clipped to `[min, max]`.
    Normal {
        /// Mean.
        mean: f64,
        /// Standard deviation.
        stddev: f64,
        /// Clip below.
        min: u32,
        /// Clip above.
        max: u32,
    },
}

/// Where prompt text comes from.
#[derive(Debug, Clone)]
pub enum PromptSource {
    /// Seeded synthetic text of the requested token length.
    Synthetic,
    /// Prompts from a JSONL file, chosen with the seeded generator.
    Jsonl {
        /// The file they came from.
        path: PathBuf,
        /// The prompts.
        prompts: Arc<Vec<String>>,
    },
}

/// The model a request is for: the base model or a named adapter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Adapter {
    /// No adapter.
    Base,
    /// An adapter by its id on the server.
    Named(Arc<str>),
}

impl Adapter {
    /// The label used in tables and files (`base` for the base model).
    pub fn label(&self) -> &str {
        match self {
            Adapter::Base => "base",
            Adapter::Named(name) => name,
        }
    }
}

impl fmt::Display for Adapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The adapters a step spreads requests over, and how it picks one.
#[derive(Debug, Clone)]
pub struct AdapterSet {
    /// The candidates (never empty).
    pub choices: Vec<Adapter>,
    /// How a request picks among them.
    pub selection: Selection,
}

/// How a request picks its adapter.
#[derive(Debug, Clone, PartialEq)]
pub enum Selection {
    /// Each with equal probability.
    Uniform,
    /// In order, each user starting at its own offset.
    RoundRobin,
    /// Zipf with exponent `s`: the first adapters are the most popular.
    Zipf(f64),
    /// Explicit relative weights, one per choice.
    Weighted(Vec<f64>),
}

/// One step of the sweep.
#[derive(Debug, Clone)]
pub struct Step {
    /// Position in the sweep, from 0.
    pub index: usize,
    /// Label in tables ("5 users", or the file's `name`).
    pub name: String,
    /// Closed-loop users or open-loop arrivals.
    pub load: StepLoad,
    /// How many of the target's URLs (or embedded replicas) this step uses.
    pub replicas: usize,
    /// The adapters this step uses.
    pub adapters: AdapterSet,
    /// Measured time, after warm-up.
    pub duration: Duration,
    /// Time at the start of the step whose requests are not counted.
    pub warmup: Duration,
}

impl Step {
    /// The number of concurrent users, for closed-loop steps.
    pub fn users(&self) -> Option<usize> {
        match self.load {
            StepLoad::Users(n) => Some(n),
            StepLoad::Rate { .. } => None,
        }
    }
}

/// The load a step applies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StepLoad {
    /// Closed loop: this many users, each waiting for its response.
    Users(usize),
    /// Open loop: requests sent on a schedule, whatever the responses do.
    Rate {
        /// Requests per second.
        per_s: f64,
        /// Constant spacing or Poisson arrivals.
        arrival: Arrival,
        /// Cap on requests in flight; arrivals past it wait (and their lag counts).
        max_in_flight: usize,
    },
}

/// Arrival process of an open-loop step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Arrival {
    /// Evenly spaced.
    Constant,
    /// Exponential gaps.
    Poisson,
}

/// A service-level objective checked against each step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Slo {
    /// A latency statistic must not exceed this many milliseconds.
    Latency {
        /// Which statistic.
        key: LatencyKey,
        /// Limit in milliseconds.
        max_ms: f64,
    },
    /// Failed requests / all requests must not exceed this fraction.
    ErrorRate(f64),
    /// Aggregate output tokens per second must reach this.
    MinOutputTokensPerS(f64),
    /// Completed requests per second must reach this.
    MinRequestsPerS(f64),
}

/// Published figures shown beside measured ones.
#[derive(Debug, Clone, Serialize)]
pub struct Reference {
    /// Where the figures come from.
    pub source: String,
    /// Figures per user count.
    pub steps: Vec<ReferenceStep>,
}

/// Published figures for one user count.
#[derive(Debug, Clone, Serialize)]
pub struct ReferenceStep {
    /// The user count they were measured at.
    pub users: usize,
    /// `(metric key, milliseconds)` pairs.
    pub figures: Vec<(String, f64)>,
}

/// A scenario file that cannot be used, and why.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("{}: cannot read scenario: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file was read but a field is wrong.
    #[error("{}", render_invalid(path, *line, field, message))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line of the offending key, when known.
        line: Option<usize>,
        /// Dotted TOML path of the key (`load.steps[1].users`).
        field: String,
        /// What is wrong and what is allowed.
        message: String,
    },
}

fn render_invalid(path: &Path, line: Option<usize>, field: &str, message: &str) -> String {
    let location = match line {
        Some(line) => format!("{}:{line}", path.display()),
        None => path.display().to_string(),
    };
    if field.is_empty() {
        format!("{location}: {message}")
    } else {
        format!("{location}: field `{field}`: {message}")
    }
}

impl Scenario {
    /// Read, parse and resolve a scenario file, applying command-line overrides.
    pub fn load(path: &Path, overrides: &Overrides) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io {
            path: path.to_owned(),
            source,
        })?;
        Scenario::from_str(&text, path, overrides)
    }

    /// Parse and resolve scenario text; `path` is used in messages and to find
    /// files named relative to the scenario.
    pub fn from_str(
        text: &str,
        path: &Path,
        overrides: &Overrides,
    ) -> Result<Scenario, ScenarioError> {
        let raw = plan::parse(text, path)?;
        resolve(raw, text, path, overrides)
    }

    /// Total planned time of all steps (ramp-up, warm-up and measurement).
    pub fn planned_duration(&self) -> Duration {
        self.steps
            .iter()
            .map(|s| self.ramp_up + s.warmup + s.duration)
            .sum()
    }
}

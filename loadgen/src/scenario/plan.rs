//! Second stage: validate a [`RawScenario`] and resolve it into a [`Scenario`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::locate::line_of;
use super::raw::{RawAdapters, RawLength, RawPrompts, RawScenario, RawStep, RawTarget};
use super::{
    Adapter, AdapterSet, Arrival, LengthDist, PromptSource, Protocol, Reference, ReferenceStep,
    Scenario, ScenarioError, Selection, Slo, Step, StepLoad, Target, Workload,
};
use crate::metric::LatencyKey;

/// Command-line values that replace the file's.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--target URL` (repeatable): replaces `target.urls`.
    pub targets: Vec<String>,
    /// `--api`: replaces `target.protocol`.
    pub api: Option<String>,
    /// `--duration`: replaces every step's measured duration.
    pub duration: Option<Duration>,
    /// `--users 1,5,10`: replaces the sweep with one closed-loop step per value.
    pub users: Option<Vec<usize>>,
    /// `--seed`: replaces `seed`.
    pub seed: Option<u64>,
}

/// Default request timeout: long generations on a loaded server take a while.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// Default cap on requests in flight in open-loop mode.
const DEFAULT_MAX_IN_FLIGHT: usize = 1024;

/// Parse TOML text into the raw types, naming the key and line of any error.
pub(super) fn parse(text: &str, path: &Path) -> Result<RawScenario, ScenarioError> {
    let de = toml::de::Deserializer::parse(text).map_err(|e| toml_error(text, path, "", &e))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let field = if field == "." { String::new() } else { field };
        toml_error(text, path, &field, e.inner())
    })
}

fn toml_error(text: &str, path: &Path, field: &str, e: &toml::de::Error) -> ScenarioError {
    let line = e
        .span()
        .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1)
        .or_else(|| line_of(text, field));
    ScenarioError::Invalid {
        path: path.to_owned(),
        line,
        field: field.to_owned(),
        message: e.message().trim().to_owned(),
    }
}

/// Builds errors that point at a key of the file being resolved.
struct Ctx<'a> {
    text: &'a str,
    path: &'a Path,
}

impl Ctx<'_> {
    fn err(&self, field: impl Into<String>, message: impl Into<String>) -> ScenarioError {
        let field = field.into();
        ScenarioError::Invalid {
            path: self.path.to_owned(),
            line: line_of(self.text, &field),
            field,
            message: message.into(),
        }
    }

    fn duration(
        &self,
        field: &str,
        value: Option<&str>,
        default: Duration,
    ) -> Result<Duration, ScenarioError> {
        match value {
            None => Ok(default),
            Some(s) => humantime::parse_duration(s).map_err(|e| {
                self.err(
                    field,
                    format!("`{s}` is not a duration ({e}); write e.g. \"500ms\", \"30s\", \"2m\""),
                )
            }),
        }
    }
}

/// Validate and resolve a parsed scenario.
pub fn resolve(
    mut raw: RawScenario,
    text: &str,
    path: &Path,
    overrides: &Overrides,
) -> Result<Scenario, ScenarioError> {
    let ctx = Ctx { text, path };
    apply_overrides(&mut raw, overrides, &ctx)?;

    if raw.name.trim().is_empty() || raw.name.contains(['/', '\\']) {
        return Err(ctx.err(
            "name",
            "must be a non-empty name without slashes (it names the results directory)",
        ));
    }
    let target = raw
        .target
        .as_ref()
        .map(|t| resolve_target(t, &ctx))
        .transpose()?;
    let workload = resolve_workload(&raw, &ctx)?;
    let load = &raw.load;
    let default_duration = ctx.duration(
        "load.step_duration",
        Some(&load.step_duration),
        Duration::ZERO,
    )?;
    if default_duration.is_zero() {
        return Err(ctx.err("load.step_duration", "must be longer than zero"));
    }
    let warmup = ctx.duration("load.warmup", load.warmup.as_deref(), Duration::ZERO)?;
    let ramp_up = ctx.duration("load.ramp_up", load.ramp_up.as_deref(), Duration::ZERO)?;
    let think_time = ctx.duration(
        "load.think_time",
        load.think_time.as_deref(),
        Duration::ZERO,
    )?;
    let steps = resolve_steps(&raw, &workload.adapters, default_duration, warmup, &ctx)?;
    if let Some(target) = &target {
        for step in &steps {
            if step.replicas > target.urls.len() {
                return Err(ctx.err(
                    format!("load.steps[{}].replicas", step.index),
                    format!(
                        "asks for {} replicas but `target.urls` lists {}",
                        step.replicas,
                        target.urls.len()
                    ),
                ));
            }
        }
    }
    let slo = resolve_slo(&raw, &ctx)?;
    let reference = resolve_reference(&raw, &ctx)?;
    Ok(Scenario {
        name: raw.name.clone(),
        description: raw.description.clone(),
        seed: raw.seed.unwrap_or(0),
        target,
        workload,
        steps,
        ramp_up,
        think_time,
        slo,
        reference,
        source_text: text.to_owned(),
        path: path.to_owned(),
    })
}

fn apply_overrides(
    raw: &mut RawScenario,
    o: &Overrides,
    ctx: &Ctx<'_>,
) -> Result<(), ScenarioError> {
    if !o.targets.is_empty() || o.api.is_some() {
        let target = raw.target.get_or_insert_with(|| RawTarget {
            protocol: None,
            urls: Vec::new(),
            token_env: None,
            timeout: None,
            base_model: None,
        });
        if !o.targets.is_empty() {
            target.urls = o.targets.clone();
        }
        if let Some(api) = &o.api {
            target.protocol = Some(api.clone());
        }
        if target.urls.is_empty() {
            return Err(ctx.err(
                "target.urls",
                "`--api` was given but no target URL: add `--target URL`",
            ));
        }
    }
    if let Some(seed) = o.seed {
        raw.seed = Some(seed);
    }
    if let Some(users) = &o.users {
        raw.load.users = Some(users.clone());
        raw.load.rates = None;
        raw.load.mode = Some("closed".into());
        raw.load.steps = None;
    }
    if let Some(d) = o.duration {
        raw.load.step_duration = humantime::format_duration(d).to_string();
        for step in raw.load.steps.iter_mut().flatten() {
            step.duration = None;
        }
    }
    Ok(())
}

fn resolve_target(t: &RawTarget, ctx: &Ctx<'_>) -> Result<Target, ScenarioError> {
    let protocol = match t.protocol.as_deref() {
        None => Protocol::Lorax,
        Some(p) => Protocol::parse(p).ok_or_else(|| {
            ctx.err(
                "target.protocol",
                format!("unknown protocol `{p}`; allowed: {}", Protocol::NAMES),
            )
        })?,
    };
    if t.urls.is_empty() {
        return Err(ctx.err(
            "target.urls",
            "must list at least one URL such as \"http://127.0.0.1:8080\" (or leave out [target] to use the embedded server)",
        ));
    }
    let mut urls = Vec::with_capacity(t.urls.len());
    for (i, url) in t.urls.iter().enumerate() {
        let parsed = reqwest::Url::parse(url).map_err(|e| {
            ctx.err(
                format!("target.urls[{i}]"),
                format!("`{url}` is not a URL: {e}"),
            )
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ctx.err(
                format!("target.urls[{i}]"),
                format!("`{url}`: scheme must be http or https"),
            ));
        }
        urls.push(url.trim_end_matches('/').to_owned());
    }
    if let Some(var) = &t.token_env {
        if var.is_empty() {
            return Err(ctx.err("target.token_env", "must name an environment variable"));
        }
    }
    let timeout = ctx.duration("target.timeout", t.timeout.as_deref(), DEFAULT_TIMEOUT)?;
    if timeout.is_zero() {
        return Err(ctx.err("target.timeout", "must be longer than zero"));
    }
    Ok(Target {
        protocol,
        urls,
        token_env: t.token_env.clone(),
        timeout,
        base_model: t.base_model.clone(),
    })
}

fn resolve_workload(raw: &RawScenario, ctx: &Ctx<'_>) -> Result<Workload, ScenarioError> {
    let w = &raw.workload;
    let input_tokens = resolve_length(&w.input_tokens, "workload.input_tokens", 1, ctx)?;
    let output_tokens = resolve_length(&w.output_tokens, "workload.output_tokens", 1, ctx)?;
    let prompts = match &w.prompts {
        None => PromptSource::Synthetic,
        Some(RawPrompts::Named(name)) if name == "synthetic" => PromptSource::Synthetic,
        Some(RawPrompts::Named(other)) => {
            return Err(ctx.err(
                "workload.prompts",
                format!("`{other}` is not a prompt source; allowed: \"synthetic\" or {{ jsonl = \"file.jsonl\" }}"),
            ))
        }
        Some(RawPrompts::File(file)) => {
            let path = ctx.path.parent().unwrap_or(Path::new(".")).join(&file.jsonl);
            let prompts = read_prompts(&path).map_err(|m| ctx.err("workload.prompts.jsonl", m))?;
            PromptSource::Jsonl { path, prompts: Arc::new(prompts) }
        }
    };
    let adapters = resolve_adapters(w.adapters.as_ref(), None, "workload.adapters", ctx)?;
    Ok(Workload {
        input_tokens,
        output_tokens,
        prompts,
        adapters,
        ignore_eos: w.ignore_eos.unwrap_or(true),
    })
}

fn read_prompts(path: &PathBuf) -> Result<Vec<String>, String> {
    #[derive(serde::Deserialize)]
    struct Line {
        prompt: String,
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut prompts = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parsed: Line = serde_json::from_str(line).map_err(|e| {
            format!(
                "{}:{}: expected {{\"prompt\": \"...\"}}: {e}",
                path.display(),
                i + 1
            )
        })?;
        prompts.push(parsed.prompt);
    }
    if prompts.is_empty() {
        return Err(format!("{} holds no prompts", path.display()));
    }
    Ok(prompts)
}

fn resolve_length(
    l: &RawLength,
    field: &str,
    floor: u32,
    ctx: &Ctx<'_>,
) -> Result<LengthDist, ScenarioError> {
    let min = l
        .min
        .ok_or_else(|| ctx.err(format!("{field}.min"), "is required"))?;
    let max = l
        .max
        .ok_or_else(|| ctx.err(format!("{field}.max"), "is required"))?;
    if min < floor {
        return Err(ctx.err(
            format!("{field}.min"),
            format!("must be at least {floor}, got {min}"),
        ));
    }
    if max < min {
        return Err(ctx.err(
            format!("{field}.max"),
            format!("must be >= min ({min}), got {max}"),
        ));
    }
    match l.distribution.as_deref().unwrap_or("uniform") {
        "uniform" => {
            if l.mean.is_some() || l.stddev.is_some() {
                return Err(ctx.err(field, "`mean` and `stddev` need distribution = \"normal\""));
            }
            Ok(LengthDist::Uniform { min, max })
        }
        "normal" => {
            let mean = l.mean.ok_or_else(|| {
                ctx.err(
                    format!("{field}.mean"),
                    "is required for a normal distribution",
                )
            })?;
            let stddev = l.stddev.ok_or_else(|| {
                ctx.err(
                    format!("{field}.stddev"),
                    "is required for a normal distribution",
                )
            })?;
            if !(stddev.is_finite() && stddev >= 0.0) {
                return Err(ctx.err(
                    format!("{field}.stddev"),
                    format!("must be a finite number >= 0, got {stddev}"),
                ));
            }
            if !mean.is_finite() {
                return Err(ctx.err(format!("{field}.mean"), "must be finite"));
            }
            Ok(LengthDist::Normal {
                mean,
                stddev,
                min,
                max,
            })
        }
        other => Err(ctx.err(
            format!("{field}.distribution"),
            format!("unknown distribution `{other}`; allowed: uniform, normal"),
        )),
    }
}

/// Resolve an adapter table; a step's table (`over`) inherits unset fields from the workload's.
fn resolve_adapters(
    raw: Option<&RawAdapters>,
    base: Option<&RawAdapters>,
    field: &str,
    ctx: &Ctx<'_>,
) -> Result<AdapterSet, ScenarioError> {
    let empty = RawAdapters::default();
    let a = raw.unwrap_or(&empty);
    let b = base.unwrap_or(&empty);
    // A step that sets `count` or `names` replaces the workload's list entirely.
    let (count, names, pattern) = if a.count.is_some() || a.names.is_some() {
        (
            a.count,
            a.names.clone(),
            a.pattern.clone().or(b.pattern.clone()),
        )
    } else {
        (
            b.count,
            b.names.clone(),
            a.pattern.clone().or(b.pattern.clone()),
        )
    };
    let include_base = a.include_base.or(b.include_base);
    let selection = a.selection.clone().or(b.selection.clone());
    let zipf_s = a.zipf_s.or(b.zipf_s);
    let weights = a.weights.clone().or(b.weights.clone());

    let mut choices = Vec::new();
    match (count, &names) {
        (Some(_), Some(_)) => {
            return Err(ctx.err(
                field,
                "give either `count` (with `pattern`) or `names`, not both",
            ));
        }
        (Some(n), None) => {
            let pattern = pattern.unwrap_or_else(|| "adapter-{i}".to_owned());
            if n > 0 && !pattern.contains("{i}") {
                return Err(ctx.err(
                    format!("{field}.pattern"),
                    format!("`{pattern}` must contain `{{i}}`"),
                ));
            }
            for i in 0..n {
                choices.push(Adapter::Named(
                    pattern.replace("{i}", &i.to_string()).into(),
                ));
            }
        }
        (None, Some(list)) => {
            for (i, name) in list.iter().enumerate() {
                if name.is_empty() {
                    return Err(ctx.err(
                        format!("{field}.names[{i}]"),
                        "adapter names must not be empty",
                    ));
                }
                choices.push(Adapter::Named(name.as_str().into()));
            }
        }
        (None, None) => {}
    }
    if include_base.unwrap_or(choices.is_empty()) {
        choices.insert(0, Adapter::Base);
    }
    if choices.is_empty() {
        return Err(ctx.err(
            field,
            "selects nothing: set `count`, `names` or include_base = true",
        ));
    }
    let selection = match selection.as_deref().unwrap_or("uniform") {
        "uniform" => Selection::Uniform,
        "round-robin" => Selection::RoundRobin,
        "zipf" => {
            let s = zipf_s.unwrap_or(1.0);
            if !(s.is_finite() && s > 0.0) {
                return Err(ctx.err(format!("{field}.zipf_s"), format!("must be > 0, got {s}")));
            }
            Selection::Zipf(s)
        }
        "weighted" => {
            let w = weights.ok_or_else(|| {
                ctx.err(
                    format!("{field}.weights"),
                    "is required with selection = \"weighted\"",
                )
            })?;
            if w.len() != choices.len() {
                return Err(ctx.err(
                    format!("{field}.weights"),
                    format!(
                        "has {} weights for {} adapters (base counts when included)",
                        w.len(),
                        choices.len()
                    ),
                ));
            }
            if w.iter().any(|x| !(x.is_finite() && *x >= 0.0)) || w.iter().sum::<f64>() <= 0.0 {
                return Err(ctx.err(
                    format!("{field}.weights"),
                    "must be finite, >= 0 and not all zero",
                ));
            }
            Selection::Weighted(w)
        }
        other => {
            return Err(ctx.err(
                format!("{field}.selection"),
                format!(
                    "unknown selection `{other}`; allowed: uniform, round-robin, zipf, weighted"
                ),
            ))
        }
    };
    Ok(AdapterSet { choices, selection })
}

fn resolve_steps(
    raw: &RawScenario,
    adapters: &AdapterSet,
    default_duration: Duration,
    warmup: Duration,
    ctx: &Ctx<'_>,
) -> Result<Vec<Step>, ScenarioError> {
    let load = &raw.load;
    let open = match load.mode.as_deref().unwrap_or("closed") {
        "closed" => false,
        "open" => true,
        other => {
            return Err(ctx.err(
                "load.mode",
                format!("unknown mode `{other}`; allowed: closed, open"),
            ))
        }
    };
    let arrival = match load.arrival.as_deref().unwrap_or("poisson") {
        "poisson" => Arrival::Poisson,
        "constant" => Arrival::Constant,
        other => {
            return Err(ctx.err(
                "load.arrival",
                format!("unknown arrival `{other}`; allowed: poisson, constant"),
            ))
        }
    };
    if !open && (load.rates.is_some() || load.arrival.is_some() || load.max_in_flight.is_some()) {
        let key = if load.rates.is_some() {
            "load.rates"
        } else if load.arrival.is_some() {
            "load.arrival"
        } else {
            "load.max_in_flight"
        };
        return Err(ctx.err(
            key,
            "`rates`, `arrival` and `max_in_flight` need mode = \"open\"",
        ));
    }
    if open && load.users.is_some() {
        return Err(ctx.err("load.users", "open-loop mode takes `rates`, not `users`"));
    }
    let max_in_flight = load.max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT);
    if max_in_flight == 0 {
        return Err(ctx.err("load.max_in_flight", "must be at least 1"));
    }

    let mut raw_steps: Vec<RawStep> = load.steps.clone().unwrap_or_default();
    let shorthand = if open {
        load.rates.as_ref().map(Vec::len)
    } else {
        load.users.as_ref().map(Vec::len)
    };
    match (shorthand, raw_steps.is_empty()) {
        (Some(_), false) => {
            return Err(ctx.err(
                "load.steps",
                if open {
                    "give either `rates` or `[[load.steps]]`, not both"
                } else {
                    "give either `users` or `[[load.steps]]`, not both"
                },
            ))
        }
        (Some(0), true) => {
            return Err(ctx.err(
                if open { "load.rates" } else { "load.users" },
                "must list at least one step",
            ))
        }
        (None, true) => {
            return Err(ctx.err(
                "load",
                if open {
                    "needs `rates = [...]` or `[[load.steps]]`"
                } else {
                    "needs `users = [...]` or `[[load.steps]]`"
                },
            ))
        }
        _ => {}
    }
    if raw_steps.is_empty() {
        let blank = RawStep {
            name: None,
            users: None,
            rate: None,
            replicas: None,
            duration: None,
            adapters: None,
        };
        if open {
            for &rate in load.rates.iter().flatten() {
                raw_steps.push(RawStep {
                    rate: Some(rate),
                    ..blank.clone()
                });
            }
        } else {
            for &users in load.users.iter().flatten() {
                raw_steps.push(RawStep {
                    users: Some(users),
                    ..blank.clone()
                });
            }
        }
    }

    let from_list = load.steps.is_none();
    let mut steps = Vec::with_capacity(raw_steps.len());
    for (index, s) in raw_steps.iter().enumerate() {
        let field = |key: &str| {
            if from_list {
                if open {
                    format!("load.rates[{index}]")
                } else {
                    format!("load.users[{index}]")
                }
            } else {
                format!("load.steps[{index}].{key}")
            }
        };
        let step_load = if open {
            if s.users.is_some() {
                return Err(ctx.err(field("users"), "open-loop steps take `rate`, not `users`"));
            }
            let per_s = s
                .rate
                .ok_or_else(|| ctx.err(field("rate"), "is required in open-loop mode"))?;
            if !(per_s.is_finite() && per_s > 0.0) {
                return Err(ctx.err(
                    field("rate"),
                    format!("must be a request rate > 0 per second, got {per_s}"),
                ));
            }
            StepLoad::Rate {
                per_s,
                arrival,
                max_in_flight,
            }
        } else {
            if s.rate.is_some() {
                return Err(ctx.err(
                    field("rate"),
                    "closed-loop steps take `users`, not `rate` (set load.mode = \"open\")",
                ));
            }
            let users = s
                .users
                .ok_or_else(|| ctx.err(field("users"), "is required in closed-loop mode"))?;
            if users == 0 {
                return Err(ctx.err(field("users"), "must be at least 1"));
            }
            StepLoad::Users(users)
        };
        let replicas = s.replicas.unwrap_or(1);
        if replicas == 0 {
            return Err(ctx.err(field("replicas"), "must be at least 1"));
        }
        let duration = ctx.duration(&field("duration"), s.duration.as_deref(), default_duration)?;
        if duration.is_zero() {
            return Err(ctx.err(field("duration"), "must be longer than zero"));
        }
        let step_adapters = match &s.adapters {
            None => adapters.clone(),
            Some(over) => resolve_adapters(
                Some(over),
                raw.workload.adapters.as_ref(),
                &field("adapters"),
                ctx,
            )?,
        };
        let name = s.name.clone().unwrap_or_else(|| match step_load {
            StepLoad::Users(1) => "1 user".to_owned(),
            StepLoad::Users(n) => format!("{n} users"),
            StepLoad::Rate { per_s, .. } => format!("{per_s} req/s"),
        });
        let name = if replicas > 1 && s.name.is_none() {
            format!("{name}, {replicas} replicas")
        } else {
            name
        };
        steps.push(Step {
            index,
            name,
            load: step_load,
            replicas,
            adapters: step_adapters,
            duration,
            warmup,
        });
    }
    Ok(steps)
}

fn resolve_slo(raw: &RawScenario, ctx: &Ctx<'_>) -> Result<Vec<Slo>, ScenarioError> {
    let mut out = Vec::new();
    for (key, &value) in &raw.slo {
        let field = format!("slo.{key}");
        if !(value.is_finite() && value >= 0.0) {
            return Err(ctx.err(field, format!("must be a finite number >= 0, got {value}")));
        }
        let slo = match key.as_str() {
            "error_rate" => {
                if value > 1.0 {
                    return Err(ctx.err(field, format!("is a fraction in [0, 1], got {value}")));
                }
                Slo::ErrorRate(value)
            }
            "min_output_tokens_per_s" => Slo::MinOutputTokensPerS(value),
            "min_requests_per_s" => Slo::MinRequestsPerS(value),
            other => match other.parse::<LatencyKey>() {
                Ok(key) => Slo::Latency { key, max_ms: value },
                Err(()) => {
                    return Err(ctx.err(
                        field,
                        format!(
                            "unknown objective; allowed: error_rate, min_output_tokens_per_s, min_requests_per_s, or {}",
                            LatencyKey::FORMS
                        ),
                    ))
                }
            },
        };
        out.push(slo);
    }
    Ok(out)
}

fn resolve_reference(raw: &RawScenario, ctx: &Ctx<'_>) -> Result<Option<Reference>, ScenarioError> {
    let Some(r) = &raw.reference else {
        return Ok(None);
    };
    let mut steps = Vec::new();
    for (i, s) in r.steps.iter().enumerate() {
        let mut figures = Vec::new();
        for (key, &value) in &s.metrics {
            if key.parse::<LatencyKey>().is_err() {
                return Err(ctx.err(
                    format!("reference.steps[{i}].{key}"),
                    format!("unknown figure; allowed: users, or {}", LatencyKey::FORMS),
                ));
            }
            figures.push((key.clone(), value));
        }
        steps.push(ReferenceStep {
            users: s.users,
            figures,
        });
    }
    Ok(Some(Reference {
        source: r.source.clone(),
        steps,
    }))
}

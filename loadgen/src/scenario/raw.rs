//! The scenario file exactly as written: serde types with `deny_unknown_fields`.
//!
//! Nothing here is interpreted; [`super::plan`] turns a [`RawScenario`] into a
//! resolved [`super::Scenario`] and reports every semantic problem with the
//! TOML key that caused it.

// Field names are the TOML keys themselves; the schema is documented in
// scenarios/README.md, so they carry no doc comments of their own.
#![allow(missing_docs)]

use std::collections::BTreeMap;

use serde::Deserialize;

/// Top level of a scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub seed: Option<u64>,
    pub target: Option<RawTarget>,
    pub workload: RawWorkload,
    pub load: RawLoad,
    #[serde(default)]
    pub slo: BTreeMap<String, f64>,
    pub reference: Option<RawReference>,
}

/// `[target]`: where requests go. Absent means the embedded reference server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    pub protocol: Option<String>,
    #[serde(default)]
    pub urls: Vec<String>,
    pub token_env: Option<String>,
    pub timeout: Option<String>,
    pub base_model: Option<String>,
}

/// `[workload]`: what each request asks for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWorkload {
    pub input_tokens: RawLength,
    pub output_tokens: RawLength,
    pub prompts: Option<RawPrompts>,
    pub adapters: Option<RawAdapters>,
    pub ignore_eos: Option<bool>,
}

/// A token-length distribution.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLength {
    pub distribution: Option<String>,
    pub min: Option<u32>,
    pub max: Option<u32>,
    pub mean: Option<f64>,
    pub stddev: Option<f64>,
}

/// `prompts = "synthetic"` or `prompts = { jsonl = "file.jsonl" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawPrompts {
    Named(String),
    File(RawPromptFile),
}

/// A JSONL prompt file, one `{"prompt": "..."}` object per line.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPromptFile {
    pub jsonl: String,
}

/// `[workload.adapters]` or a step's `adapters` override.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdapters {
    pub count: Option<usize>,
    pub pattern: Option<String>,
    pub names: Option<Vec<String>>,
    pub include_base: Option<bool>,
    pub selection: Option<String>,
    pub zipf_s: Option<f64>,
    pub weights: Option<Vec<f64>>,
}

/// `[load]`: the sweep.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLoad {
    pub mode: Option<String>,
    pub users: Option<Vec<usize>>,
    pub rates: Option<Vec<f64>>,
    pub arrival: Option<String>,
    pub max_in_flight: Option<usize>,
    pub step_duration: String,
    pub warmup: Option<String>,
    pub ramp_up: Option<String>,
    pub think_time: Option<String>,
    pub steps: Option<Vec<RawStep>>,
}

/// One `[[load.steps]]` entry: overrides for one step of the sweep.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    pub name: Option<String>,
    pub users: Option<usize>,
    pub rate: Option<f64>,
    pub replicas: Option<usize>,
    pub duration: Option<String>,
    pub adapters: Option<RawAdapters>,
}

/// `[reference]`: published figures shown beside the measured ones.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReference {
    pub source: String,
    #[serde(default)]
    pub steps: Vec<RawReferenceStep>,
}

/// Published figures for the step with this many users. The metric keys
/// (`ttft_avg_ms`, ...) are checked when the plan is resolved.
#[derive(Debug, Clone, Deserialize)]
pub struct RawReferenceStep {
    pub users: usize,
    #[serde(flatten)]
    pub metrics: BTreeMap<String, f64>,
}

//! loadgen: a load generator for multi-LoRA LLM servers (LoRAX/TGI and
//! OpenAI-compatible APIs) that replays the serving experiments of the LoRA
//! Land report and measures TTFT, total request time, token streaming time
//! and throughput with microsecond timestamps in HDR histograms.
//!
//! The data flow of a run: scenario TOML → [`scenario::Scenario`] → per step a
//! Goose attack (closed loop) or a paced arrival loop (open loop) → each request
//! through [`client::send`] → a [`record::RequestRecord`] over a channel to the
//! one [`recorder::Recorder`] → `requests.csv` row at once, histograms per
//! (step, adapter, target) → [`summary::Summary`] in `summary.json`.
//!
//! ```
//! use loadgen::scenario::{Overrides, Scenario};
//! let text = r#"
//!     name = "tiny"
//!     [target]
//!     urls = ["http://127.0.0.1:8080"]
//!     [workload]
//!     input_tokens = { min = 1, max = 8 }
//!     output_tokens = { min = 1, max = 4 }
//!     [load]
//!     users = [1, 2]
//!     step_duration = "5s"
//! "#;
//! let s = Scenario::from_str(text, "tiny.toml".as_ref(), &Overrides::default()).unwrap();
//! assert_eq!(s.steps.len(), 2);
//! ```
#![deny(missing_docs)]

pub mod calibrate;
pub mod client;
pub mod health;
pub mod merge;
pub mod metric;
pub mod mock;
pub mod progress;
pub mod protocol;
pub mod record;
pub mod recorder;
pub mod runner;
pub mod scenario;
pub mod slo;
pub mod summary;
pub mod table;
pub mod workload;

//! Runs a scenario: one Goose attack per closed-loop step (or a paced open
//! loop), every request through [`crate::client::send`], every record to the
//! recorder, a summary written after each step.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use goose::config::GooseConfiguration;
use goose::goose::{GooseUser, Scenario as GooseScenario, Transaction};
use goose::GooseAttack;
use rand::SeedableRng;
use rand_distr::{Distribution, Exp};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::client::{self, PreparedRequest};
use crate::health::CpuClock;
use crate::progress::Progress;
use crate::protocol::{request_body, stream_path, GenerationRequest};
use crate::record::RequestRecord;
use crate::recorder::{Live, Msg, Recorder};
use crate::scenario::{Arrival, Protocol, Scenario, Step, StepLoad};
use crate::slo;
use crate::summary::{ScenarioInfo, Summary, TargetInfo, SCHEMA};
use crate::workload::{Generator, RequestSpec, UserRequests};

/// How to run a scenario.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The scenario, with overrides applied.
    pub scenario: Scenario,
    /// Results directory (created).
    pub out_dir: PathBuf,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Cancelled on Ctrl-C (or by a test): the run stops and writes a partial summary.
    pub cancel: CancellationToken,
}

/// What a run produced.
#[derive(Debug)]
pub struct RunOutcome {
    /// Where the files are.
    pub dir: PathBuf,
    /// The final summary (also in `dir/summary.json`).
    pub summary: Summary,
}

/// The default results directory: `results/<scenario>/<timestamp>`.
pub fn default_out_dir(scenario: &Scenario) -> PathBuf {
    let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
    PathBuf::from("results")
        .join(&scenario.name)
        .join(stamp.to_string())
}

/// Everything a request of one step needs, shared by the step's users.
struct StepShared {
    step: usize,
    generator: Arc<Generator>,
    endpoints: Vec<String>,
    replicas: usize,
    next_target: AtomicUsize,
    protocol: Protocol,
    bearer: Option<Arc<str>>,
    timeout: Duration,
    ignore_eos: bool,
    base_model: Option<String>,
    tx: mpsc::Sender<Msg>,
    cancel: CancellationToken,
}

impl StepShared {
    /// One request: pick a target round-robin, send, hand the record over.
    async fn execute(
        &self,
        http: &reqwest::Client,
        user: usize,
        seq: u64,
        spec: RequestSpec,
        scheduled: Option<Instant>,
    ) {
        let target = self.next_target.fetch_add(1, Ordering::Relaxed) % self.replicas;
        let body = request_body(
            self.protocol,
            &GenerationRequest {
                prompt: &spec.prompt,
                adapter: &spec.adapter,
                max_tokens: spec.max_tokens,
                ignore_eos: self.ignore_eos,
                base_model: self.base_model.as_deref(),
            },
        );
        let req = PreparedRequest {
            url: self.endpoints[target].clone(),
            body,
            protocol: self.protocol,
            bearer: self.bearer.clone(),
            timeout: self.timeout,
        };
        tokio::select! {
            biased;
            _ = self.cancel.cancelled() => {
                let _ = self.tx.send(Msg::Cancelled { step: self.step }).await;
            }
            (sent, stamps, end, failure) = client::send(http, req) => {
                let record = RequestRecord {
                    step: self.step,
                    user,
                    seq,
                    adapter: spec.adapter,
                    target,
                    input_tokens: spec.input_tokens,
                    max_tokens: spec.max_tokens,
                    scheduled,
                    sent,
                    stamps,
                    end,
                    failure,
                };
                let _ = self.tx.send(Msg::Record(Box::new(record))).await;
            }
        }
    }

    /// The Goose transaction body: this user's next request.
    async fn user_request(&self, user: &mut GooseUser) {
        if self.cancel.is_cancelled() {
            // Goose ends users between transactions: yield instead of spinning
            // until it gets round to it.
            tokio::time::sleep(Duration::from_millis(20)).await;
            return;
        }
        let id = user.weighted_users_index;
        if user.get_session_data::<UserRequests>().is_none() {
            user.set_session_data(self.generator.user(id));
        }
        let requests = user
            .get_session_data_mut::<UserRequests>()
            .expect("session data was set just above");
        let seq = requests.seq();
        let spec = requests.next_request();
        let http = user.client.clone();
        self.execute(&http, id, seq, spec, None).await;
    }
}

/// Run the scenario against its target.
pub async fn run(cfg: RunConfig) -> anyhow::Result<RunOutcome> {
    let scenario = &cfg.scenario;
    let Some(target) = &scenario.target else {
        bail!(
            "scenario `{}` names no target: give one with `--target URL` (the embedded reference server is not built into this version)",
            scenario.name
        );
    };
    let bearer = match &target.token_env {
        None => None,
        Some(var) => Some(Arc::<str>::from(std::env::var(var).with_context(|| {
            format!("target.token_env names `{var}`, which is not set in the environment")
        })?)),
    };
    std::fs::create_dir_all(&cfg.out_dir)
        .with_context(|| format!("cannot create {}", cfg.out_dir.display()))?;
    std::fs::write(cfg.out_dir.join("scenario.toml"), &scenario.source_text)?;

    let origin = Instant::now();
    let cpu = CpuClock::start();
    let started_at = chrono::Local::now().to_rfc3339();
    let live = Arc::new(Live::default());
    let recorder = Recorder::create(&cfg.out_dir, origin, target.urls.clone(), Arc::clone(&live))
        .with_context(|| format!("cannot write into {}", cfg.out_dir.display()))?;
    let (tx, recorder_task) = recorder.spawn();
    let endpoints: Vec<String> = target
        .urls
        .iter()
        .map(|u| format!("{u}{}", stream_path(target.protocol)))
        .collect();

    let mut summary = Summary {
        schema: SCHEMA.to_owned(),
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        git_revision: git_revision(),
        scenario: ScenarioInfo {
            name: scenario.name.clone(),
            description: scenario.description.clone(),
            seed: scenario.seed,
            path: scenario.path.display().to_string(),
            text: scenario.source_text.clone(),
        },
        target: TargetInfo {
            protocol: target.protocol.to_string(),
            urls: target.urls.clone(),
            embedded: false,
        },
        started_at,
        ended_at: String::new(),
        partial: true,
        interrupted: None,
        steps: Vec::new(),
        cold_requests: Default::default(),
        health: Default::default(),
        slo: Vec::new(),
        reference: scenario
            .reference
            .as_ref()
            .map(|r| serde_json::to_value(r).expect("plain data")),
    };

    let progress = Progress::new(cfg.progress, scenario, Arc::clone(&live));
    for step in &scenario.steps {
        if cfg.cancel.is_cancelled() {
            break;
        }
        let shared = Arc::new(StepShared {
            step: step.index,
            generator: Arc::new(Generator::new(
                scenario.seed,
                step.index,
                &scenario.workload,
                &step.adapters,
            )),
            endpoints: endpoints.clone(),
            replicas: step.replicas,
            next_target: AtomicUsize::new(0),
            protocol: target.protocol,
            bearer: bearer.clone(),
            timeout: target.timeout,
            ignore_eos: scenario.workload.ignore_eos,
            base_model: target.base_model.clone(),
            tx: tx.clone(),
            cancel: cfg.cancel.clone(),
        });
        let start = Instant::now();
        let ramp = if step.users().is_some() {
            scenario.ramp_up
        } else {
            Duration::ZERO
        };
        let measure_start = start + ramp + step.warmup;
        let measure_end = measure_start + step.duration;
        let _ = tx
            .send(Msg::StartStep {
                step: step.clone(),
                measure_start,
                measure_end,
            })
            .await;
        progress.start_step(step, ramp + step.warmup + step.duration);
        let result = match step.load {
            StepLoad::Users(users) => run_closed(scenario, step, users, &shared, &cfg.cancel).await,
            StepLoad::Rate {
                per_s,
                arrival,
                max_in_flight,
            } => {
                run_open(
                    scenario.seed,
                    step,
                    per_s,
                    arrival,
                    max_in_flight,
                    &shared,
                    measure_end,
                    &cfg.cancel,
                )
                .await;
                Ok(())
            }
        };
        let complete = !cfg.cancel.is_cancelled();
        let (reply, rx) = oneshot::channel();
        let _ = tx
            .send(Msg::FinishStep {
                end: Instant::now(),
                complete,
                reply,
            })
            .await;
        if let Ok(step_summary) = rx.await {
            progress.finish_step(&step_summary);
            summary.steps.push(step_summary);
        }
        if let Err(e) = result {
            summary.interrupted = Some(format!("step `{}` failed: {e:#}", step.name));
            write_summary(&cfg.out_dir, &mut summary, &cpu)?;
            break;
        }
        if !complete {
            summary.interrupted = Some("interrupted (Ctrl-C)".to_owned());
        }
        write_summary(&cfg.out_dir, &mut summary, &cpu)?;
    }
    progress.done();

    let (reply, rx) = oneshot::channel();
    let _ = tx.send(Msg::Finish { reply }).await;
    summary.cold_requests = rx.await.unwrap_or_default();
    drop(tx);
    recorder_task
        .await
        .context("recorder task panicked")?
        .context("writing requests.csv")?;
    if cfg.cancel.is_cancelled() && summary.interrupted.is_none() {
        summary.interrupted = Some("interrupted (Ctrl-C)".to_owned());
    }
    summary.partial = summary.interrupted.is_some() || summary.steps.len() < scenario.steps.len();
    summary.slo = slo::evaluate(&scenario.slo, &summary.steps);
    write_summary(&cfg.out_dir, &mut summary, &cpu)?;
    Ok(RunOutcome {
        dir: cfg.out_dir.clone(),
        summary,
    })
}

/// One closed-loop step as a Goose attack.
async fn run_closed(
    scenario: &Scenario,
    step: &Step,
    users: usize,
    shared: &Arc<StepShared>,
    cancel: &CancellationToken,
) -> anyhow::Result<()> {
    let mut config = GooseConfiguration::default();
    config.host = Some(shared.endpoints[0].clone());
    config.users = Some(users);
    let ramp_s = scenario.ramp_up.as_secs_f64();
    let rate = if ramp_s > 0.0 {
        users as f64 / ramp_s
    } else {
        (users as f64 * 100.0).max(1000.0)
    };
    config.increase_rate = Some(format!("{rate}"));
    config.run_time = Some(format!(
        "{}",
        (step.warmup + step.duration).as_secs_f64().ceil().max(1.0) as u64
    ));
    config.timeout = Some(format!("{}", shared.timeout.as_secs() + 5));
    config.quiet = 1;
    config.no_print_metrics = true;
    config.no_error_summary = true;
    config.no_telnet = true;
    config.no_reset_metrics = true;
    config.no_status_codes = true;

    let body = Arc::clone(shared);
    let transaction = Transaction::new(Arc::new(move |user: &mut GooseUser| {
        let body = Arc::clone(&body);
        Box::pin(async move {
            body.user_request(user).await;
            Ok(())
        })
    }));
    let mut goose_scenario = GooseScenario::new("generate").register_transaction(transaction);
    if !scenario.think_time.is_zero() {
        goose_scenario = goose_scenario.set_wait_time(scenario.think_time, scenario.think_time)?;
    }
    let attack = GooseAttack::initialize_with_config(config)?.register_scenario(goose_scenario);

    // Goose resets its killswitch when an attack starts: forward our
    // cancellation to it for as long as the attack runs.
    let watcher_cancel = cancel.clone();
    let watcher = tokio::spawn(async move {
        watcher_cancel.cancelled().await;
        loop {
            goose::trigger_killswitch("loadgen run interrupted");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let result = attack.execute().await;
    watcher.abort();
    result
        .map(|_| ())
        .map_err(|e| anyhow::anyhow!("goose: {e}"))
}

/// One open-loop step: requests at scheduled times, latency also measured from them.
#[allow(clippy::too_many_arguments)]
async fn run_open(
    seed: u64,
    step: &Step,
    per_s: f64,
    arrival: Arrival,
    max_in_flight: usize,
    shared: &Arc<StepShared>,
    measure_end: Instant,
    cancel: &CancellationToken,
) {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(max_in_flight)
        .build()
        .expect("a default reqwest client builds");
    let permits = Arc::new(Semaphore::new(max_in_flight));
    let mut requests = shared.generator.user(0);
    let mut gaps =
        rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ (step.index as u64).rotate_left(32) ^ 0xa11);
    let exp = Exp::new(per_s).expect("validated: rate > 0");
    let mut tasks = tokio::task::JoinSet::new();
    let mut next = Instant::now();
    while next < measure_end && !cancel.is_cancelled() {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep_until(next.into()) => {}
        }
        let permit = tokio::select! {
            _ = cancel.cancelled() => break,
            p = Arc::clone(&permits).acquire_owned() => p.expect("semaphore is never closed"),
        };
        let seq = requests.seq();
        let spec = requests.next_request();
        let (shared, http, scheduled) = (Arc::clone(shared), http.clone(), next);
        tasks.spawn(async move {
            shared.execute(&http, 0, seq, spec, Some(scheduled)).await;
            drop(permit);
        });
        let gap = match arrival {
            Arrival::Constant => 1.0 / per_s,
            Arrival::Poisson => exp.sample(&mut gaps),
        };
        next += Duration::from_secs_f64(gap);
    }
    while tasks.join_next().await.is_some() {}
}

fn write_summary(dir: &Path, summary: &mut Summary, cpu: &CpuClock) -> anyhow::Result<()> {
    summary.ended_at = chrono::Local::now().to_rfc3339();
    summary.health = cpu.health(&summary.steps);
    let tmp = dir.join("summary.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(summary)?)?;
    std::fs::rename(&tmp, dir.join("summary.json"))?;
    Ok(())
}

fn git_revision() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty", "--abbrev=12"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

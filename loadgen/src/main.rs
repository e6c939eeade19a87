//! The `loadgen` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use loadgen::calibrate::{self, CalibrateConfig};
use loadgen::runner::{self, RunConfig};
use loadgen::scenario::{Overrides, Scenario};
use loadgen::summary::Summary;
use loadgen::{merge, table};

/// Exit status when the run completed but missed an objective.
const EXIT_SLO_MISSED: u8 = 3;
/// Exit status when the run was interrupted.
const EXIT_INTERRUPTED: u8 = 130;

/// Load generator for multi-LoRA LLM servers (LoRAX/TGI and OpenAI-compatible).
///
/// Replays a scenario (a sweep of user counts or request rates, prompt/output
/// length distributions, adapters, targets/replicas) and measures TTFT, total
/// request time, token streaming time and throughput with microsecond
/// timestamps in HDR histograms.
#[derive(Parser, Debug)]
#[command(name = "loadgen", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a scenario and write requests.csv, summary.json and a table.
    ///
    /// Exit status: 0 ok, 1 error, 3 an objective in [slo] was missed, 130 interrupted.
    Run(RunArgs),
    /// Check a scenario file without running it.
    Validate {
        /// Scenario file (TOML).
        file: PathBuf,
    },
    /// Merge results of the same scenario run at the same time on several machines.
    Merge {
        /// Results directories (or summary.json files) to merge.
        #[arg(required = true, num_args = 2..)]
        inputs: Vec<PathBuf>,
        /// Where to write the merged summary.json.
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Print the table of an existing results directory.
    Show {
        /// Results directory or summary.json.
        input: PathBuf,
    },
    /// Measure loadgen's own timing error against a loopback server with known timings.
    Calibrate {
        /// Concurrency levels to try.
        #[arg(long, value_delimiter = ',', default_value = "1,8,32,128,512,1024")]
        streams: Vec<usize>,
        /// Time at each level.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "3s")]
        duration: Duration,
        /// Tokens per request.
        #[arg(long, default_value_t = 32)]
        tokens: u32,
        /// Server delay between tokens.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "10ms")]
        gap: Duration,
        /// Also write the results as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Scenario file (TOML); see scenarios/README.md for the schema.
    scenario: PathBuf,
    /// Target base URL; repeat for replicas (round-robin). Replaces [target].urls.
    #[arg(long = "target", value_name = "URL")]
    targets: Vec<String>,
    /// API spoken: lorax (also TGI), openai-completions, openai-chat. Replaces target.protocol.
    #[arg(long)]
    api: Option<String>,
    /// Measured duration of every step (e.g. 30s, 2m). Replaces load.step_duration.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// User counts, one closed-loop step each (e.g. 1,5,10). Replaces the sweep.
    #[arg(long, value_delimiter = ',')]
    users: Option<Vec<usize>>,
    /// Seed of every random choice. Replaces `seed`.
    #[arg(long)]
    seed: Option<u64>,
    /// Results directory [default: results/<scenario>/<timestamp>].
    #[arg(long)]
    out: Option<PathBuf>,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,goose=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(args) => run(args),
        Command::Validate { file } => {
            let s = Scenario::load(&file, &Overrides::default())?;
            println!(
                "{}: ok — scenario `{}`, {} step(s), about {} planned",
                file.display(),
                s.name,
                s.steps.len(),
                humantime::format_duration(s.planned_duration())
            );
            for step in &s.steps {
                println!(
                    "  step {}: {} for {}, {} adapter choice(s), {} replica(s)",
                    step.index + 1,
                    step.name,
                    humantime::format_duration(step.duration),
                    step.adapters.choices.len(),
                    step.replicas
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Merge { inputs, out } => {
            let summaries = inputs
                .iter()
                .map(|p| Summary::read(p))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let merged = merge::merge(&summaries)?;
            std::fs::create_dir_all(&out)?;
            std::fs::write(
                out.join("summary.json"),
                serde_json::to_vec_pretty(&merged)?,
            )?;
            print!("{}", table::render(&merged));
            println!(
                "merged {} runs into {}",
                inputs.len(),
                out.join("summary.json").display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Show { input } => {
            print!("{}", table::render(&Summary::read(&input)?));
            Ok(ExitCode::SUCCESS)
        }
        Command::Calibrate {
            streams,
            duration,
            tokens,
            gap,
            json,
        } => {
            let cfg = CalibrateConfig {
                levels: streams,
                duration,
                tokens,
                gap,
                ..CalibrateConfig::default()
            };
            eprintln!(
                "calibrating: {} tokens per request, {} apart, {} per level",
                cfg.tokens,
                humantime::format_duration(cfg.gap),
                humantime::format_duration(cfg.duration)
            );
            let results = calibrate::calibrate(&cfg, |r| {
                eprintln!(
                    "  {} streams: {:.0} events/s",
                    r.concurrency, r.events_per_s
                )
            })?;
            print!("{}", calibrate::render(&results));
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_vec_pretty(&results)?)?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let overrides = Overrides {
        targets: args.targets,
        api: args.api,
        duration: args.duration,
        users: args.users,
        seed: args.seed,
    };
    let scenario = Scenario::load(&args.scenario, &overrides)?;
    let out_dir = args
        .out
        .unwrap_or_else(|| runner::default_out_dir(&scenario));
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    ctrlc::set_handler(move || {
        if on_signal.is_cancelled() {
            eprintln!("second interrupt: exiting now (requests.csv is complete up to here)");
            std::process::exit(i32::from(EXIT_INTERRUPTED));
        }
        eprintln!("interrupted: stopping the run and writing a partial summary (Ctrl-C again to quit at once)");
        on_signal.cancel();
    })
    .context("installing the Ctrl-C handler")?;

    let runtime = tokio::runtime::Runtime::new()?;
    let outcome = runtime.block_on(runner::run(RunConfig {
        scenario,
        out_dir,
        progress: !args.quiet,
        cancel: cancel.clone(),
    }))?;
    let summary = &outcome.summary;
    print!("{}", table::render(summary));
    for w in &summary.health.warnings {
        eprintln!("warning: {w}");
    }
    println!(
        "loadgen CPU: {:.0}% of one core over {:.1}s",
        summary.health.cpu_percent_of_one_core, summary.health.wall_s
    );
    let missed: Vec<_> = summary.slo.iter().filter(|r| !r.pass).collect();
    for r in &summary.slo {
        println!(
            "SLO {} in `{}`: {} (limit {}) {}",
            r.objective,
            r.step,
            r.value.map_or("none".to_owned(), |v| format!("{v:.3}")),
            r.limit,
            if r.pass { "ok" } else { "MISSED" }
        );
    }
    println!("results: {}", outcome.dir.display());
    if let Some(why) = &summary.interrupted {
        eprintln!("run incomplete: {why}; summary.json holds the finished steps");
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
    }
    if !missed.is_empty() {
        return Ok(ExitCode::from(EXIT_SLO_MISSED));
    }
    Ok(ExitCode::SUCCESS)
}

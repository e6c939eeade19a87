//! The `loadgen` binary: Ctrl-C leaves a valid partial summary, SLOs set the
//! exit status, `validate` reports errors, help explains the options.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use loadgen::mock::MockConfig;
use loadgen::summary::Summary;

/// Kills the child if the test fails before it exits.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn loadgen() -> Command {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
}

const BODY: &str = r#"
[workload]
input_tokens = { min = 4, max = 4 }
output_tokens = { min = 4, max = 4 }
[workload.adapters]
count = 2
[load]
users = [2, 4]
step_duration = "30s"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_leaves_a_valid_partial_summary_and_every_row() {
    let server = mock(MockConfig {
        ttft: Duration::from_millis(5),
        gap: Duration::from_millis(5),
        ..MockConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("long.toml");
    std::fs::write(&file, scenario_text("lorax", &[server.url()], "10s", BODY)).unwrap();
    let out = dir.path().join("out");
    let child = loadgen()
        .args(["run", "--quiet", "--out"])
        .arg(&out)
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let killed = Command::new("kill")
        .args(["-INT", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "loadgen did not stop after SIGINT"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status.code(), Some(130));
    let summary = Summary::read(&out).unwrap();
    assert!(summary.partial);
    assert!(summary
        .interrupted
        .as_deref()
        .unwrap()
        .contains("interrupted"));
    assert_eq!(
        summary.steps.len(),
        1,
        "the interrupted first step is kept, the second never ran"
    );
    let s = &summary.steps[0];
    assert!(!s.complete);
    assert!(
        s.overall.ok > 10,
        "about 3 s of requests were measured: {}",
        s.overall.ok
    );
    assert!(
        s.overall.window_s < 10.0,
        "the window ends at the interruption: {}",
        s.overall.window_s
    );
    let rows = csv_rows(&out);
    assert_eq!(
        rows.iter().filter(|r| r["phase"] == "measured").count() as u64,
        s.overall.requests
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_slo_exits_non_zero_and_met_slo_exits_zero() {
    let server = mock(MockConfig {
        ttft: Duration::from_millis(30),
        gap: Duration::from_millis(1),
        ..MockConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let short = BODY
        .replace("users = [2, 4]", "users = [1]")
        .replace("30s", "1s");
    for (limit, code) in [("5", 3), ("500", 0)] {
        let file = dir.path().join(format!("slo{limit}.toml"));
        let text = scenario_text(
            "lorax",
            &[server.url()],
            "10s",
            &format!("{short}\n[slo]\nttft_p90_ms = {limit}\nerror_rate = 0.0\n"),
        );
        std::fs::write(&file, text).unwrap();
        let out = dir.path().join(format!("out{limit}"));
        let output = loadgen()
            .args(["run", "--quiet", "--out"])
            .arg(&out)
            .arg(&file)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(
            output.status.code(),
            Some(code),
            "{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.contains("ttft_p90_ms"), "{stdout}");
        assert!(
            stdout.contains("time to first token avg (ms)"),
            "the table is printed: {stdout}"
        );
        let summary = Summary::read(&out).unwrap();
        assert_eq!(summary.slo.iter().all(|r| r.pass), code == 0);
    }
}

#[test]
fn validate_reports_the_problem_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "name = \"x\"\n[workload]\ninput_tokens = { min = 1, max = 2 }\noutput_tokens = { min = 1, max = 2, mode = 3 }\n[load]\nusers = [1]\nstep_duration = \"1s\"\n").unwrap();
    let output = loadgen().arg("validate").arg(&file).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bad.toml:4") && stderr.contains("mode") && stderr.contains("distribution"),
        "{stderr}"
    );
    let ok = loadgen()
        .args([
            "validate",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/25adapters.toml"),
        ])
        .output()
        .unwrap();
    assert!(ok.status.success());
}

#[test]
fn help_explains_every_run_option() {
    let output = loadgen().args(["run", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--target",
        "--api",
        "--duration",
        "--users",
        "--seed",
        "--out",
        "--quiet",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
    let top = loadgen().arg("--help").output().unwrap();
    let top = String::from_utf8_lossy(&top.stdout);
    for cmd in ["run", "validate", "merge", "show", "calibrate"] {
        assert!(top.contains(cmd), "{cmd} missing from:\n{top}");
    }
}

#[test]
fn a_scenario_without_target_says_how_to_give_one() {
    let output = loadgen()
        .args([
            "run",
            "--quiet",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/smoke.toml"),
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--target"));
}

//! Invalid scenario files get an error naming the file, line, field and what is allowed.

use std::path::Path;

use loadgen::scenario::{Overrides, Scenario};

const GOOD: &str = r#"name = "ok"

[workload]
input_tokens = { min = 1, max = 8 }
output_tokens = { min = 1, max = 4 }

[load]
users = [1, 2]
step_duration = "5s"
"#;

fn error_of(text: &str) -> String {
    Scenario::from_str(text, Path::new("bad.toml"), &Overrides::default())
        .expect_err("the scenario is invalid")
        .to_string()
}

fn assert_mentions(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "`{msg}` should mention `{p}`");
    }
}

#[test]
fn the_good_file_is_valid() {
    Scenario::from_str(GOOD, Path::new("ok.toml"), &Overrides::default()).unwrap();
}

#[test]
fn unknown_fields_are_errors_with_the_allowed_ones() {
    let text = GOOD.replace("users = [1, 2]", "users = [1, 2]\nusrs = 3");
    let msg = error_of(&text);
    assert_mentions(
        &msg,
        &[
            "bad.toml:9",
            "usrs",
            "unknown field",
            "users",
            "step_duration",
        ],
    );
}

#[test]
fn wrong_types_name_the_field_and_line() {
    let msg = error_of(&GOOD.replace("users = [1, 2]", "users = \"many\""));
    assert_mentions(&msg, &["bad.toml:8", "load.users"]);
}

#[test]
fn semantic_errors_name_the_field_line_and_allowed_values() {
    let msg = error_of(&GOOD.replace(
        "output_tokens = { min = 1, max = 4 }",
        "output_tokens = { min = 9, max = 4 }",
    ));
    assert_mentions(
        &msg,
        &["bad.toml:5", "workload.output_tokens.max", "must be >= min"],
    );

    let msg = error_of(&GOOD.replace("step_duration = \"5s\"", "step_duration = \"five\""));
    assert_mentions(
        &msg,
        &["bad.toml:9", "load.step_duration", "not a duration"],
    );

    let msg = error_of(&format!(
        "{GOOD}\n[target]\nprotocol = \"grpc\"\nurls = [\"http://127.0.0.1:1\"]\n"
    ));
    assert_mentions(
        &msg,
        &[
            "bad.toml:12",
            "target.protocol",
            "lorax, openai-completions, openai-chat",
        ],
    );

    let msg = error_of(&format!("{GOOD}\n[target]\nurls = [\"not a url\"]\n"));
    assert_mentions(&msg, &["target.urls[0]", "not a URL"]);

    let msg = error_of(&GOOD.replace("users = [1, 2]", "users = [1, 0]"));
    assert_mentions(&msg, &["load.users[1]", "at least 1"]);

    let msg = error_of(&format!(
        "{GOOD}\n[workload.adapters]\ncount = 3\nselection = \"random\"\n"
    ));
    assert_mentions(
        &msg,
        &[
            "workload.adapters.selection",
            "uniform, round-robin, zipf, weighted",
        ],
    );

    let msg = error_of(&format!("{GOOD}\n[workload.adapters]\nnames = [\"a\", \"b\"]\nselection = \"weighted\"\nweights = [1.0]\n"));
    assert_mentions(
        &msg,
        &["workload.adapters.weights", "1 weights for 2 adapters"],
    );

    let msg = error_of(&format!("{GOOD}\n[slo]\nttft_p42_ms = 10\n"));
    assert_mentions(&msg, &["slo.ttft_p42_ms", "error_rate", "ttft_p90_ms"]);

    let msg = error_of(&GOOD.replace("users = [1, 2]", "rates = [1.0]"));
    assert_mentions(&msg, &["bad.toml:8", "load.rates", r#"mode = "open""#]);
}

#[test]
fn replicas_beyond_the_target_list_are_refused() {
    let text = r#"name = "r"
[target]
urls = ["http://127.0.0.1:1"]
[workload]
input_tokens = { min = 1, max = 8 }
output_tokens = { min = 1, max = 4 }
[load]
step_duration = "5s"
[[load.steps]]
users = 2
replicas = 2
"#;
    assert_mentions(
        &error_of(text),
        &["bad.toml:11", "load.steps[0].replicas", "lists 1"],
    );
}

#[test]
fn shipped_scenarios_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            Scenario::load(&path, &Overrides::default()).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
    }
    assert!(n >= 5);
}

#[test]
fn overrides_replace_the_file() {
    let o = Overrides {
        targets: vec!["http://127.0.0.1:9/".into()],
        api: Some("openai-chat".into()),
        duration: Some(std::time::Duration::from_secs(7)),
        users: Some(vec![3, 4, 5]),
        seed: Some(99),
    };
    let s = Scenario::from_str(GOOD, Path::new("ok.toml"), &o).unwrap();
    let t = s.target.unwrap();
    assert_eq!(t.urls, ["http://127.0.0.1:9"]);
    assert_eq!(t.protocol, loadgen::scenario::Protocol::OpenaiChat);
    assert_eq!(s.seed, 99);
    assert_eq!(
        s.steps
            .iter()
            .map(|s| s.users().unwrap())
            .collect::<Vec<_>>(),
        [3, 4, 5]
    );
    assert!(s.steps.iter().all(|s| s.duration.as_secs() == 7));
}

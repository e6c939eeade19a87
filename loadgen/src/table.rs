//! The terminal table, in the layout of the LoRA Land report's Tables 8/9:
//! metrics as rows, steps as columns, average and p90.

use std::fmt::Write;

use crate::metric::Metric;
use crate::summary::Summary;

/// Render the main table of a summary as aligned text.
pub fn render(summary: &Summary) -> String {
    let steps = &summary.steps;
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1}"));
    for metric in [Metric::Total, Metric::Ttft, Metric::Streaming, Metric::Tpot] {
        for (stat, get) in [("avg", 0), ("p90", 1)] {
            let cells = steps
                .iter()
                .map(|s| {
                    ms(s.overall
                        .latency_ms
                        .get(&metric)
                        .map(|x| if get == 0 { x.avg } else { x.p90 }))
                })
                .collect();
            rows.push((format!("{} {stat} (ms)", metric.label()), cells));
        }
    }
    rows.push((
        "output tokens/s (all requests)".into(),
        steps
            .iter()
            .map(|s| format!("{:.1}", s.overall.output_tokens_per_s))
            .collect(),
    ));
    rows.push((
        "requests/s".into(),
        steps
            .iter()
            .map(|s| format!("{:.2}", s.overall.requests_per_s))
            .collect(),
    ));
    rows.push((
        "requests ok / failed".into(),
        steps
            .iter()
            .map(|s| format!("{} / {}", s.overall.ok, s.overall.failed))
            .collect(),
    ));

    let header: Vec<String> = steps.iter().map(|s| s.name.clone()).collect();
    let first = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(6);
    let widths: Vec<usize> = (0..steps.len())
        .map(|i| {
            rows.iter()
                .map(|r| r.1[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let _ = write!(out, "{:first$}", "metric");
    for (h, w) in header.iter().zip(&widths) {
        let _ = write!(out, "  {h:>w$}");
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "{}",
        "-".repeat(first + widths.iter().map(|w| w + 2).sum::<usize>())
    );
    for (label, cells) in &rows {
        let _ = write!(out, "{label:first$}");
        for (c, w) in cells.iter().zip(&widths) {
            let _ = write!(out, "  {c:>w$}");
        }
        out.push('\n');
    }
    for s in steps {
        if !s.overall.counters.errors.is_empty() {
            let errs: Vec<String> = s
                .overall
                .counters
                .errors
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            let _ = writeln!(out, "errors in `{}`: {}", s.name, errs.join(", "));
        }
    }
    out
}

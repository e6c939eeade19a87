//! `loadgen merge`: combine runs of the same scenario taken at the same time on
//! several machines into one summary, exactly (HDR histograms add losslessly).
//!
//! Counts and histograms add; the window of each step is the longest of the
//! inputs, so aggregate throughput is the sum of the machines' throughputs.

use std::collections::BTreeMap;

use anyhow::{bail, Context};

use crate::summary::{Accumulator, Breakdown, StepSummary, Summary};

/// Merge summaries step by step. All must come from the same scenario and seed.
pub fn merge(summaries: &[Summary]) -> anyhow::Result<Summary> {
    let Some((first, rest)) = summaries.split_first() else {
        bail!("nothing to merge");
    };
    let mut out = first.clone();
    for s in rest {
        if s.scenario.name != first.scenario.name || s.scenario.text != first.scenario.text {
            bail!(
                "cannot merge runs of different scenarios (`{}` vs `{}`)",
                first.scenario.name,
                s.scenario.name
            );
        }
        if s.steps.len() != first.steps.len() {
            bail!(
                "runs have different numbers of finished steps ({} vs {})",
                first.steps.len(),
                s.steps.len()
            );
        }
    }
    for (i, step) in out.steps.iter_mut().enumerate() {
        let others: Vec<&StepSummary> = rest.iter().map(|s| &s.steps[i]).collect();
        merge_step(step, &others).with_context(|| format!("step `{}`", step.name))?;
    }
    for s in rest {
        for (adapter, cold) in &s.cold_requests {
            out.cold_requests
                .entry(adapter.clone())
                .or_default()
                .extend(cold.iter().cloned());
        }
        out.partial |= s.partial;
        out.health
            .warnings
            .extend(s.health.warnings.iter().cloned());
        for url in &s.target.urls {
            if !out.target.urls.contains(url) {
                out.target.urls.push(url.clone());
            }
        }
    }
    out.health.cpu_s = summaries.iter().map(|s| s.health.cpu_s).sum();
    out.slo.clear();
    Ok(out)
}

fn merge_step(step: &mut StepSummary, others: &[&StepSummary]) -> anyhow::Result<()> {
    let window = others
        .iter()
        .map(|o| o.overall.window_s)
        .fold(step.overall.window_s, f64::max);
    step.overall = merge_breakdowns(
        std::iter::once(&step.overall).chain(others.iter().map(|o| &o.overall)),
        window,
    )?;
    let adapters = merge_maps(
        std::iter::once(&step.by_adapter).chain(others.iter().map(|o| &o.by_adapter)),
        window,
    )?;
    let targets = merge_maps(
        std::iter::once(&step.by_target).chain(others.iter().map(|o| &o.by_target)),
        window,
    )?;
    step.by_adapter = adapters;
    step.by_target = targets;
    step.warmup_requests += others.iter().map(|o| o.warmup_requests).sum::<u64>();
    step.cancelled_requests += others.iter().map(|o| o.cancelled_requests).sum::<u64>();
    step.complete &= others.iter().all(|o| o.complete);
    step.users = step
        .users
        .map(|u| u + others.iter().filter_map(|o| o.users).sum::<usize>());
    step.rate_per_s = step
        .rate_per_s
        .map(|r| r + others.iter().filter_map(|o| o.rate_per_s).sum::<f64>());
    Ok(())
}

fn merge_breakdowns<'a>(
    items: impl Iterator<Item = &'a Breakdown>,
    window_s: f64,
) -> anyhow::Result<Breakdown> {
    let mut acc = Accumulator::default();
    for b in items {
        acc.merge(&Accumulator::from_breakdown(b).map_err(anyhow::Error::msg)?);
    }
    Ok(acc.summarize(window_s))
}

fn merge_maps<'a>(
    maps: impl Iterator<Item = &'a BTreeMap<String, Breakdown>>,
    window_s: f64,
) -> anyhow::Result<BTreeMap<String, Breakdown>> {
    let mut keyed: BTreeMap<&str, Vec<&Breakdown>> = BTreeMap::new();
    for map in maps {
        for (k, b) in map {
            keyed.entry(k).or_default().push(b);
        }
    }
    keyed
        .into_iter()
        .map(|(k, bs)| Ok((k.to_owned(), merge_breakdowns(bs.into_iter(), window_s)?)))
        .collect()
}

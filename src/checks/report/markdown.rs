//! Markdown report for people: verdict, summary table per wave, regressions first, then
//! every wave and VM with its checks (worst first).

use super::{group, Report, Summary};
use crate::checks::baseline::{DiffStatus, Diffed};
use std::fmt::Write;

pub fn render(r: &Report<'_>) -> String {
    let mut out = String::new();
    let total = Summary::of(r.diffs);
    let _ = writeln!(out, "# Verify report: {}\n", cell(r.plan));
    let _ = writeln!(out, "- generated: {}", r.generated_at);
    match r.baseline_taken_at {
        Some(t) => {
            let _ = writeln!(out, "- baseline: taken {t}");
        }
        None => out.push_str("- baseline: none (no regressions can be told apart)\n"),
    }
    let verdict = if total.regressions > 0 {
        format!(
            "**FAILED**: {} regression(s), {} failing check(s) in all",
            total.regressions,
            total.fail + total.error
        )
    } else if !total.passed() {
        format!("**FAILED**: {} failing check(s)", total.fail + total.error)
    } else {
        format!("**PASSED**: {} of {} checks pass", total.pass, total.checks)
    };
    let _ = writeln!(out, "- result: {verdict}\n");

    out.push_str("## Summary\n\n");
    out.push_str(
        "| wave | VMs | checks | pass | fail | error | skipped | regressions | still failing | new failing | fixed |\n",
    );
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let groups = group(r.diffs);
    for (wave, vms) in &groups {
        let s = Summary::of(vms.iter().flat_map(|(_, l)| l.iter().copied()));
        summary_row(&mut out, &cell(wave), &s);
    }
    summary_row(&mut out, "**total**", &total);
    out.push('\n');

    if let Some((median, max)) = super::downtime_stats(r.cutovers) {
        out.push_str("## Cutovers\n\n");
        let _ = writeln!(
            out,
            "Downtime (power-off request to every check passing): median {}, max {} over {} VM(s).\n",
            ms(median),
            ms(max),
            r.cutovers.len()
        );
        out.push_str("| VM | migration | downtime | precopy rounds | copy |\n");
        out.push_str("|---|---|---:|---:|---|\n");
        for c in r.cutovers {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                cell(&c.vm),
                cell(&c.migration),
                ms(c.downtime_ms),
                c.precopy_rounds,
                if c.consistent_copy {
                    "after a guest shutdown"
                } else {
                    "crash-consistent (hard stop)"
                }
            );
        }
        out.push('\n');
        for c in r.cutovers.iter().filter(|c| !c.backend_steps.is_empty()) {
            let backend = c.backend.as_deref().unwrap_or("backend");
            let _ = writeln!(out, "{backend} steps of {}:\n", cell(&c.vm));
            for s in &c.backend_steps {
                let _ = writeln!(out, "- {}", cell(&s.summary()));
            }
            out.push('\n');
        }
    }

    let regressions: Vec<&Diffed> = r
        .diffs
        .iter()
        .filter(|d| d.status == DiffStatus::Regression)
        .collect();
    if !regressions.is_empty() {
        out.push_str("## Regressions\n\nPassed in the baseline, fail now.\n\n");
        out.push_str("| wave | VM | check | target | now | detail |\n|---|---|---|---|---|---|\n");
        for d in regressions {
            let x = &d.result;
            let _ = writeln!(
                out,
                "| {} | {} | `{}` | {} | {} | {} |",
                cell(&x.wave),
                cell(&x.vm),
                cell(&x.check),
                cell(&x.target),
                x.outcome,
                cell(&x.detail)
            );
        }
        out.push('\n');
    }

    for (wave, vms) in groups {
        let _ = writeln!(out, "## Wave {}\n", cell(wave));
        let mut vms = vms;
        // Worst VM first (regressions before failures before the rest), plan order otherwise.
        vms.sort_by_key(|(_, list)| list.iter().map(|d| d.status).min());
        for (vm, mut list) in vms {
            let s = Summary::of(list.iter().copied());
            let mark = if s.regressions > 0 {
                "REGRESSION"
            } else if !s.passed() {
                "FAIL"
            } else {
                "ok"
            };
            let _ = writeln!(
                out,
                "### {} — {mark} ({} of {} pass)\n",
                cell(vm),
                s.pass,
                s.checks
            );
            out.push_str("| status | check | target | outcome | latency | detail |\n");
            out.push_str("|---|---|---|---|---:|---|\n");
            list.sort_by_key(|d| d.status);
            for d in list {
                let x = &d.result;
                let latency = x
                    .latency
                    .map(|l| format!("{:.1} ms", l.as_secs_f64() * 1000.0))
                    .unwrap_or_default();
                let status = match (d.status, d.before) {
                    (DiffStatus::Regression, _) => "**regression**".to_string(),
                    (s, _) => s.to_string(),
                };
                let _ = writeln!(
                    out,
                    "| {status} | `{}` | {} | {} | {latency} | {} |",
                    cell(&x.check),
                    cell(&x.target),
                    x.outcome,
                    cell(&x.detail)
                );
            }
            out.push('\n');
        }
    }
    out
}

fn summary_row(out: &mut String, name: &str, s: &Summary) {
    let _ = writeln!(
        out,
        "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
        s.vms,
        s.checks,
        s.pass,
        s.fail,
        s.error,
        s.skipped,
        s.regressions,
        s.still_failing,
        s.new,
        s.fixed
    );
}

/// Makes text safe inside a table cell: no line breaks, escaped pipes and backticks.
fn cell(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
        .replace('|', "\\|")
        .replace('`', "'")
}

/// `1m22s`, `1h08m`, `850 ms`.
fn ms(v: u64) -> String {
    if v < 1000 {
        format!("{v} ms")
    } else {
        crate::plan::time::humanize(std::time::Duration::from_millis(v))
    }
}

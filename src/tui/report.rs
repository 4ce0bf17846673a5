//! The `e` export: a Markdown verify report of one wave as the TUI sees it (step, node,
//! every check's result and detail, migrations). Pure: the loop writes the file.

use std::fmt::Write;

use super::app::App;
use super::view::widgets::fmt_utc;

/// A Markdown report of wave `wave` (index into the fleet's waves).
pub fn markdown(app: &App, wave: usize) -> String {
    let mut s = String::new();
    let Some(w) = app.fleet().waves().get(wave) else {
        return s;
    };
    let vms = app.fleet().vms();
    let _ = writeln!(
        s,
        "# wavelift report: plan {}, wave {}\n",
        app.session().plan_name,
        w.name
    );
    let _ = writeln!(
        s,
        "Target: {} ({}). Generated {} UTC.\n",
        app.session().target.label(),
        app.session().mode.label(),
        fmt_utc(app.ui().now_ms)
    );
    let (mut verified, mut failed) = (0, 0);
    for &i in &w.vms {
        let v = &vms[i];
        if v.step == crate::engine::Step::Verified {
            verified += 1;
        }
        if v.failed() {
            failed += 1;
        }
    }
    let _ = writeln!(
        s,
        "{} VMs: {verified} verified, {failed} failed.\n",
        w.vms.len()
    );
    let _ = writeln!(s, "| VM | model | IP | step | node | checks |");
    let _ = writeln!(s, "|---|---|---|---|---|---|");
    for &i in &w.vms {
        let v = &vms[i];
        let (pass, bad, total) = v.check_counts();
        let step = if v.failed() {
            format!("{} (failed)", v.step.label())
        } else {
            v.step.label().to_string()
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {pass}/{total} pass, {bad} fail |",
            v.name,
            v.model.as_str(),
            v.ip,
            step,
            v.node.as_deref().unwrap_or("-"),
        );
    }
    let _ = writeln!(s, "\n## Checks\n");
    for &i in &w.vms {
        let v = &vms[i];
        for c in &v.checks {
            let _ = writeln!(
                s,
                "- {} `{}`: {}{}",
                v.name,
                c.name,
                c.outcome.label(),
                if c.detail.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", c.detail)
                }
            );
        }
    }
    let migs: Vec<_> = w
        .vms
        .iter()
        .filter_map(|&i| vms[i].migration.as_ref().map(|m| (&vms[i], m)))
        .collect();
    if !migs.is_empty() {
        let _ = writeln!(s, "\n## Live migrations\n");
        for (v, m) in migs {
            let _ = writeln!(
                s,
                "- {} ({}): {} {} → {}, {} ms, {}/{} probes lost",
                v.name,
                m.name,
                m.phase,
                m.source_node.as_deref().unwrap_or("?"),
                m.target_node.as_deref().unwrap_or("?"),
                m.duration_ms(app.ui().now_ms),
                m.lost_probes,
                m.sent_probes
            );
        }
    }
    s
}

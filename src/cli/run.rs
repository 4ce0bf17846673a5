//! `wavelift run`: a wave headless. Text (a progress bar per VM on a terminal) or JSON lines
//! (one engine event per line: the schema is the README's), an audit journal of mutating API
//! calls, and exit codes: 0 every VM verified, 1 a VM failed or did not finish, 2 invalid
//! plan, failed preflight or another wavelift drives the plan, 3 the plan's Lease was lost
//! mid-run.
//!
//! One driver per plan: the plan's Lease ([`super::lease`]) is taken before the engine
//! starts (not for `--dry-run`), renewed while it runs and released at exit; SIGINT/SIGTERM
//! stop the engine and release it too.

use super::target::connect_or_exit;
use super::{RunArgs, RunOutput, EXIT_INVALID, EXIT_LEASE_LOST, EXIT_OK, EXIT_WARNINGS};
use crate::engine::runtime::{spawn, EngineConfig, AGENT_TIMEOUT, GUARD_INTERVAL};
use crate::engine::{EngineEvent, EngineRequest, EventKind, Status, Step};
use crate::plan;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;

pub fn run(args: RunArgs) -> ExitCode {
    // Before any thread starts (see the function).
    crate::engine::runtime::limit_malloc_arenas();
    let (plan, file) = match super::load_valid_plan(&args.plan) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if let Some(w) = &args.wave {
        if plan.wave(w).is_none() {
            eprintln!("error: no wave `{w}` in {}", file);
            return ExitCode::from(EXIT_INVALID);
        }
    }
    for v in &args.vms {
        if plan.vm(v).is_none() {
            eprintln!("error: no VM `{v}` in {}", file);
            return ExitCode::from(EXIT_INVALID);
        }
    }
    // The firewall exports policies are drafted from, read before any cluster is contacted.
    let exports = match super::policies::read_exports(&plan, &args.plan) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {file}: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    // The plan's parse is freed: its pages go back before the engine starts.
    crate::engine::runtime::release_free_memory();
    let rt = match super::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let plan = Arc::new(plan);
    rt.block_on(async move { drive(plan, args, exports).await })
}

async fn drive(
    plan: Arc<plan::Plan>,
    args: RunArgs,
    exports: Option<crate::policy::draft::sources::Exports>,
) -> ExitCode {
    // The journal opens before anything reaches the cluster.
    let journal = match super::journal::Journal::open_arg(args.journal.as_deref()) {
        Ok(j) => j,
        Err(code) => return code,
    };
    let conn = match connect_or_exit(
        &plan,
        args.target.sim,
        args.target.context.as_deref(),
        args.target.dry_run,
        &args.rehearsal,
    )
    .await
    {
        Ok(c) => c,
        Err(code) => return code,
    };
    let drafted = match super::policies::for_cluster(
        &plan,
        exports.as_ref(),
        &conn.client,
        conn.mode == crate::cluster::client::Mode::Rehearsal,
    )
    .await
    {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: plan {}: {e}", plan.meta.name.value);
            return ExitCode::from(EXIT_INVALID);
        }
    };
    if exports.is_some() {
        eprintln!(
            "network policy ({}): drafted for {} VM(s), {} warning(s){}",
            plan.meta.policy.value.as_str(),
            drafted.docs.len(),
            drafted.warnings.len(),
            if drafted.warnings.is_empty() {
                String::new()
            } else {
                format!(
                    " (`wavelift policy draft --plan {}` lists them)",
                    args.plan.display()
                )
            }
        );
    }
    // One driver per plan (a server-side dry run persists nothing: it needs no Lease).
    let lease = if args.target.dry_run {
        None
    } else {
        match super::lease::claim(&plan, conn.client.clone()).await {
            Ok(g) => Some(g),
            Err(e) => {
                eprintln!("error: plan {}: {e}", plan.meta.name.value);
                return ExitCode::from(EXIT_INVALID);
            }
        }
    };
    let lost = lease.as_ref().map(|g| g.lost());
    let result = drive_engine(&plan, &args, &conn, journal, lost, drafted.docs).await;
    let code = match result {
        Ok(code) => {
            // Released while the cluster still serves (the embedded one ends with `conn`).
            if let Some(g) = lease {
                super::lease::release(g).await;
            }
            code
        }
        Err(why) => {
            eprintln!("error: {}", super::lease::lost_message(&plan, &why));
            ExitCode::from(EXIT_LEASE_LOST)
        }
    };
    drop(conn);
    code
}

/// The engine's run, until it ends, the Lease is lost (`lost` resolves: `Err` with the
/// reason) or the process is interrupted (both stop the engine).
async fn drive_engine(
    plan: &Arc<plan::Plan>,
    args: &RunArgs,
    conn: &super::target::Connected,
    mut journal: Option<super::journal::Journal>,
    lost: Option<impl std::future::Future<Output = String>>,
    policies: std::collections::BTreeMap<String, Vec<crate::policy::k8s::PolicyDoc>>,
) -> Result<ExitCode, String> {
    let waves: Vec<String> = match &args.wave {
        Some(w) => vec![w.clone()],
        None => plan.waves.iter().map(|w| w.name.value.clone()).collect(),
    };
    let text = matches!(args.output, RunOutput::Text);
    if text {
        println!(
            "wavelift run {} on {} [{}]",
            plan.meta.name.value,
            conn.label,
            conn.mode.label()
        );
    }
    let (mut handle, task) = spawn(EngineConfig {
        plan: plan.clone(),
        client: conn.client.clone(),
        source: conn.source.clone(),
        forklift_source: conn.forklift_source.clone(),
        prober: conn.prober.clone(),
        dry_run: args.target.dry_run,
        only_vms: args.vms.iter().cloned().collect(),
        auto_waves: waves,
        confirm_power_off: args.confirm_power_off,
        exit_when_done: true,
        agent_timeout: AGENT_TIMEOUT,
        guard_interval: GUARD_INTERVAL,
        window_clock: conn.window_clock,
        ignore_window: args.ignore_window,
        policies,
    });
    let tty = std::io::stdout().is_terminal();
    // Manual power-offs in an interactive run: the operator types the VM's name.
    let requests = handle.requests.clone();
    if !args.confirm_power_off && std::io::stdin().is_terminal() {
        std::thread::spawn(move || {
            let stdin = std::io::stdin();
            let mut line = String::new();
            while stdin.read_line(&mut line).is_ok_and(|n| n > 0) {
                let name = line.trim().to_string();
                if !name.is_empty()
                    && requests
                        .blocking_send(EngineRequest::ConfirmPowerOff(name))
                        .is_err()
                {
                    break;
                }
                line.clear();
            }
        });
    }
    let mut preflight_failed = false;
    let mut out = std::io::stdout();
    let lost = async {
        match lost {
            Some(f) => f.await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(lost);
    let interrupted = super::lease::interrupted();
    tokio::pin!(interrupted);
    let (mut lease_lost, mut stopping) = (None, false);
    loop {
        let ev = tokio::select! {
            ev = handle.events.recv() => match ev {
                Some(ev) => ev,
                None => break,
            },
            why = &mut lost, if lease_lost.is_none() => {
                // Stop driving at once: another wavelift may take the Lease over.
                tracing::error!(reason = %why, "lost the plan's lease: stopping the engine");
                lease_lost = Some(why);
                let _ = handle.requests.send(EngineRequest::Shutdown).await;
                continue;
            }
            () = &mut interrupted, if !stopping => {
                stopping = true;
                eprintln!("wavelift: interrupted: stopping the engine (the state lives in the cluster; run again to resume)");
                let _ = handle.requests.send(EngineRequest::Shutdown).await;
                // A second interrupt does not wait.
                tokio::spawn(async {
                    super::lease::interrupted().await;
                    std::process::exit(130);
                });
                continue;
            }
        };
        if let EventKind::Phase {
            step: Step::Preflight,
            status: Status::Failed(_),
            ..
        } = &ev.kind
        {
            preflight_failed = true;
        }
        if let Some(j) = journal.as_mut() {
            j.record(&ev);
        }
        let line = if text {
            render_text(&ev, tty)
        } else {
            serde_json::to_string(&ev).ok()
        };
        if let Some(line) = line {
            if writeln!(out, "{line}").is_err() {
                break;
            }
        }
    }
    if let Some(why) = lease_lost {
        // The caller reports the loss (exit 3).
        let _ = task.await;
        return Err(why);
    }
    let summary = match task.await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(EXIT_WARNINGS));
        }
        Err(e) => {
            eprintln!("error: engine stopped: {e}");
            return Ok(ExitCode::from(EXIT_WARNINGS));
        }
    };
    if text {
        println!(
            "done: {} verified, {} failed, {} rolled back, {} unfinished{}{}",
            summary.verified.len(),
            summary.failed.len(),
            summary.rolled_back.len(),
            summary.unfinished.len(),
            if summary.cancelled.is_empty() {
                String::new()
            } else {
                format!(", {} cancelled", summary.cancelled.len())
            } + &if summary.postponed.is_empty() {
                String::new()
            } else {
                format!(
                    ", {} postponed to a later window ({})",
                    summary.postponed.len(),
                    summary.postponed.join(", ")
                )
            },
            if args.target.dry_run {
                format!(", {} passed the dry run", summary.dry_run_ok.len())
            } else {
                String::new()
            }
        );
        for (vm, why) in &summary.failed {
            println!("  FAILED {vm}: {why}");
        }
        for (vm, why) in &summary.policy_reverted {
            println!("  POLICY REVERTED {vm}: runs without its network policy: {why}");
        }
        if !summary.downtime_ms.is_empty() {
            let mut d: Vec<u64> = summary.downtime_ms.iter().map(|(_, ms)| *ms).collect();
            d.sort_unstable();
            println!(
                "downtime (power-off request to checks passing): median {}, max {} over {} VM(s)",
                human_ms(d[d.len() / 2]),
                human_ms(d[d.len() - 1]),
                d.len()
            );
        }
    }
    Ok(if preflight_failed {
        ExitCode::from(EXIT_INVALID)
    } else if summary.failed.is_empty()
        && summary.unfinished.is_empty()
        && summary.cancelled.is_empty()
        && summary.postponed.is_empty()
        && summary.policy_reverted.is_empty()
    {
        ExitCode::from(EXIT_OK)
    } else {
        ExitCode::from(EXIT_WARNINGS)
    })
}

/// `850 ms`, `12.3 s`, `4 min 05 s`.
fn human_ms(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms} ms"),
        1_000..=59_999 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => format!("{} min {:02} s", ms / 60_000, ms / 1000 % 60),
    }
}

fn clock(ms: i64) -> String {
    let s = (ms / 1000).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// One human line per event worth a line; `None` for the rest.
fn render_text(ev: &EngineEvent, tty: bool) -> Option<String> {
    let t = clock(ev.at_ms);
    match &ev.kind {
        EventKind::Phase {
            step,
            status,
            progress,
            message,
            ..
        } => {
            let bar = match (step, progress, tty) {
                (Step::Importing, Some(p), true) => {
                    let filled = (p * 20.0).round() as usize;
                    format!(
                        " [{}{}]",
                        "#".repeat(filled.min(20)),
                        ".".repeat(20 - filled.min(20))
                    )
                }
                _ => String::new(),
            };
            let state = match status {
                Status::Failed(_) => "FAILED ",
                Status::Blocked(_) => "BLOCKED ",
                Status::Waiting(_) => "",
                Status::Paused => "paused ",
                Status::Active => "",
            };
            Some(format!(
                "{t} {:<20} {:<12} {state}{message}{bar}",
                ev.vm,
                step.label()
            ))
        }
        EventKind::Check {
            check,
            outcome,
            detail,
            ..
        } => Some(format!(
            "{t} {:<20} check {check}: {outcome} ({detail})",
            ev.vm
        )),
        EventKind::Log { level, message } => {
            Some(format!("{t} {:<20} {level:?}: {message}", ev.vm))
        }
        EventKind::WindowFit {
            left_ms,
            open,
            remaining,
            needed_ms,
            fits,
            throughput,
        } if *remaining > 0 => Some(format!(
            "{t} wave {}: window {} {}; {remaining} cutover{} left need about {} ({throughput}): {}",
            ev.wave,
            if *open { "closes in" } else { "lasts" },
            crate::plan::time::humanize(std::time::Duration::from_millis(*left_ms)),
            if *remaining == 1 { "" } else { "s" },
            crate::plan::time::humanize(std::time::Duration::from_millis(*needed_ms)),
            if *fits { "they fit" } else { "they do NOT fit" }
        )),
        EventKind::WaveDone {
            verified,
            failed,
            cancelled,
            postponed,
        } => Some(format!(
            "{t} wave {} done: {verified} verified, {failed} failed{}{}",
            ev.wave,
            if *cancelled > 0 {
                format!(", {cancelled} cancelled")
            } else {
                String::new()
            },
            if *postponed > 0 {
                format!(", {postponed} postponed (the window closed before their cutover)")
            } else {
                String::new()
            }
        )),
        EventKind::Migration { name, phase, .. } => {
            Some(format!("{t} {:<20} migration {name}: {phase}", ev.vm))
        }
        EventKind::Cutover {
            migration,
            downtime_ms,
            ..
        } => Some(format!(
            "{t} {:<20} cutover ({migration}): downtime {}",
            ev.vm,
            human_ms(*downtime_ms)
        )),
        _ => None,
    }
}

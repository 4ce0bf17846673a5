//! `wavelift tui PLAN`: the cockpit. The engine drives the cluster; the TUI shows its events
//! and sends the operator's requests. Waves start from the keyboard (`w`).
//!
//! One driver per plan: the TUI takes the plan's Lease ([`super::lease`]; not for
//! `--dry-run`). When another wavelift holds it, the TUI opens read-only instead of
//! refusing: a banner and the header name the holder and since when, and no request but
//! quitting reaches the engine. Losing the Lease stops the engine and closes the TUI
//! (exit 3).

use super::target::connect_or_exit;
use super::{TuiArgs, EXIT_INVALID, EXIT_LEASE_LOST, EXIT_OK};
use crate::cluster::client::Mode;
use crate::cluster::lease::{self, LeaseError};
use crate::engine::runtime::{spawn, EngineConfig, AGENT_TIMEOUT, GUARD_INTERVAL};
use crate::engine::EngineRequest;
use crate::tui::{self, setup, TargetInfo, TuiOptions};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub fn run(args: TuiArgs) -> ExitCode {
    // As `wavelift run`: two malloc arenas, set before the runtime's threads start.
    crate::engine::runtime::limit_malloc_arenas();
    let (plan, file) = match super::load_valid_plan(&args.plan) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let blast = match &args.blast {
        None => None,
        Some(p) => match setup::load_blast(p) {
            Ok(b) => Some(b),
            Err(e) => {
                eprintln!("error: --blast {}: {e}", p.display());
                return ExitCode::from(EXIT_INVALID);
            }
        },
    };
    // The firewall exports policies are drafted from, read before any cluster is contacted.
    let exports = match super::policies::read_exports(&plan, &args.plan) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {file}: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    // The journal opens before anything reaches the cluster.
    let journal = match super::journal::Journal::open_arg(args.journal.as_deref()) {
        Ok(j) => j,
        Err(code) => return code,
    };
    // The plan's parse is freed: its pages go back before the engine starts.
    crate::engine::runtime::release_free_memory();
    let rt = match super::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async move {
        let plan = Arc::new(plan);
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
            conn.mode == Mode::Rehearsal,
        )
        .await
        {
            Ok(d) => d,
            Err(e) => {
                eprintln!("error: plan {}: {e}", plan.meta.name.value);
                return ExitCode::from(EXIT_INVALID);
            }
        };
        let target = match conn.mode {
            Mode::Rehearsal => TargetInfo::Sim {
                kubeconfig: conn
                    .sim_kubeconfig
                    .as_ref()
                    .map(|p| p.display().to_string()),
            },
            Mode::Live | Mode::DryRun => TargetInfo::Context(conn.label.clone()),
        };
        let (themes, dir_warning) = setup::theme_set(Some(std::path::Path::new("themes")));
        let no_color = std::env::var("NO_COLOR").ok();
        let (theme, theme_warning) =
            setup::choose_theme(&themes, args.theme.as_deref(), &target, no_color.as_deref());
        // One driver per plan: take the Lease, or watch read-only who holds it.
        let (guard, driven_by) = if args.target.dry_run {
            (None, None)
        } else {
            match super::lease::claim(&plan, conn.client.clone()).await {
                Ok(g) => (Some(g), None),
                Err(LeaseError::Held { holder, since, .. }) => {
                    (None, Some(lease::holder_text(&holder, since.as_ref())))
                }
                Err(e) => {
                    eprintln!("error: plan {}: {e}", plan.meta.name.value);
                    return ExitCode::from(EXIT_INVALID);
                }
            }
        };
        let (handle, task) = spawn(EngineConfig {
            plan: plan.clone(),
            client: conn.client.clone(),
            source: conn.source.clone(),
        forklift_source: conn.forklift_source.clone(),
            prober: conn.prober.clone(),
            dry_run: args.target.dry_run,
            only_vms: Default::default(),
            auto_waves: Vec::new(),
            confirm_power_off: false,
            exit_when_done: false,
            agent_timeout: AGENT_TIMEOUT,
            guard_interval: GUARD_INTERVAL,
            window_clock: conn.window_clock,
            ignore_window: false,
            policies: drafted.docs,
        });
        let handle = match &driven_by {
            Some(by) => super::lease::observe_only(handle, by.clone()),
            None => handle,
        };
        let handle = match journal {
            Some(j) => super::journal::tee(handle, j),
            None => handle,
        };
        let banner = driven_by
            .as_ref()
            .map(|by| {
                format!(
                    "read-only: plan {} is driven by {by} (Lease {}/{}); this TUI only watches. Quit and reopen to drive once that run ends",
                    plan.meta.name.value,
                    plan.meta.namespace.value,
                    lease::lease_name(plan.meta.name.as_str())
                )
            })
            .or(theme_warning)
            .or(dir_warning);
        // A lost Lease stops the engine at once and closes the TUI.
        let cancel = CancellationToken::new();
        let watcher = guard.as_ref().map(|g| {
            let (lost, requests, cancel) = (g.lost(), handle.requests.clone(), cancel.clone());
            tokio::spawn(async move {
                let why = lost.await;
                tracing::error!(reason = %why, "lost the plan's lease: stopping the engine");
                let _ = requests.send(EngineRequest::Shutdown).await;
                cancel.cancel();
            })
        });
        let opts = TuiOptions {
            plan_path: file.clone(),
            mode: conn.mode,
            target,
            read_only: args.read_only,
            driven_by,
            blast,
            policies: exports.is_some().then_some(drafted.view),
            themes,
            banner,
            no_color: no_color.is_some_and(|v| !v.is_empty()),
            wave: None,
            report_dir: None,
            window_clock: conn
                .window_clock
                .map(|c| (crate::engine::events::now_ms(), c)),
        };
        let result = tui::run_with_cancel(opts, (*plan).clone(), handle, theme, cancel).await;
        // The TUI sent Shutdown; the engine stops at its next turn.
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        if let Some(w) = watcher {
            w.abort();
        }
        let lost = guard.as_ref().and_then(|g| g.lost_reason());
        if let (Some(g), None) = (guard, &lost) {
            super::lease::release(g).await;
        }
        // The kubeconfig this process wrote for its embedded rehearsal; never the one of a
        // `wavelift sim serve` (that is the operator's KUBECONFIG, still serving).
        if let (Some(p), Some(_)) = (&conn.sim_kubeconfig, &conn._rehearsal) {
            let _ = std::fs::remove_file(p);
        }
        if let Some(why) = lost {
            eprintln!("error: {}", super::lease::lost_message(&plan, &why));
            return ExitCode::from(EXIT_LEASE_LOST);
        }
        match result {
            Ok(()) => ExitCode::from(EXIT_OK),
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(EXIT_INVALID)
            }
        }
    })
}

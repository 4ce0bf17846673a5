//! `wavelift tui PLAN`: the cockpit. The engine drives the cluster; the TUI shows its events
//! and sends the operator's requests. Waves start from the keyboard (`w`).

use super::target::connect_or_exit;
use super::{TuiArgs, EXIT_INVALID, EXIT_OK};
use crate::cluster::client::Mode;
use crate::engine::runtime::{spawn, EngineConfig, AGENT_TIMEOUT, GUARD_INTERVAL};
use crate::tui::{self, setup, TargetInfo, TuiOptions};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

pub fn run(args: TuiArgs) -> ExitCode {
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
            args.speed,
        )
        .await
        {
            Ok(c) => c,
            Err(code) => return code,
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
        let (handle, task) = spawn(EngineConfig {
            plan: plan.clone(),
            client: conn.client.clone(),
            source: conn.source.clone(),
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
        });
        let opts = TuiOptions {
            plan_path: file.clone(),
            mode: conn.mode,
            target,
            read_only: args.read_only,
            blast,
            themes,
            banner: theme_warning.or(dir_warning),
            no_color: no_color.is_some_and(|v| !v.is_empty()),
            wave: None,
            report_dir: None,
        };
        let result = tui::run(opts, (*plan).clone(), handle, theme).await;
        // The TUI sent Shutdown; the engine stops at its next turn.
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        if let Some(p) = &conn.sim_kubeconfig {
            if conn.mode == Mode::Rehearsal {
                let _ = std::fs::remove_file(p);
            }
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

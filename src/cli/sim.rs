//! `wavelift sim serve`: the rehearsal cluster as a server, for kubectl and for `run`,
//! `verify`, `tui` and `migrate` through the kubeconfig it writes.

use super::{EXIT_INVALID, EXIT_OK};
use crate::sim::controllers::rehearsal::Rehearsal;
use crate::sim::controllers::scenario::Scenario;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub fn serve(
    port: u16,
    plan_path: Option<&Path>,
    scenario_path: Option<&Path>,
    rehearsal: &super::RehearsalArgs,
    kubeconfig: Option<PathBuf>,
) -> ExitCode {
    let scenario = match (plan_path, scenario_path) {
        (Some(p), _) => {
            let (plan, _) = match super::load_valid_plan(p) {
                Ok(p) => p,
                Err(code) => return code,
            };
            Scenario::from_plan(&plan)
        }
        (None, Some(s)) => match Scenario::load(s) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_INVALID);
            }
        },
        (None, None) => Scenario::default(),
    };
    let mut scenario = scenario;
    if let Some(s) = rehearsal.speed {
        if !(s.is_finite() && s > 0.0) {
            eprintln!("error: --speed must be a positive number");
            return ExitCode::from(EXIT_INVALID);
        }
        scenario.speed = s;
    }
    match rehearsal.clock_start_ms() {
        Ok(Some(ms)) => scenario.clock_start_ms = Some(ms),
        Ok(None) => {}
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    }
    let path =
        match kubeconfig.or_else(|| crate::logging::log_dir().map(|d| d.join("sim.kubeconfig"))) {
            Some(p) => p,
            None => PathBuf::from("wavelift-sim.kubeconfig"),
        };
    let rt = match super::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async move {
        let r = match Rehearsal::start(scenario, port).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e:#}");
                return ExitCode::from(EXIT_INVALID);
            }
        };
        if let Err(e) = write_kubeconfig(&path, &r.sim.url()) {
            eprintln!("error: kubeconfig {}: {e:#}", path.display());
            return ExitCode::from(EXIT_INVALID);
        }
        // A reader that goes away (a closed pipe) must not take the server down with it.
        {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "wavelift rehearsal cluster serving on {}", r.sim.url());
            let _ = writeln!(out, "export KUBECONFIG={}", path.display());
            let _ = writeln!(out, "then: kubectl get vm,dv,net-attach-def -A   |   wavelift run PLAN   |   wavelift tui PLAN");
            let _ = writeln!(out, "Ctrl-C stops it (the cluster lives in memory only).");
            let _ = out.flush();
        }
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term => {}
        }
        let Rehearsal { sim, controllers, .. } = r;
        drop(controllers);
        sim.shutdown().await;
        ExitCode::from(EXIT_OK)
    })
}

/// Writes the sim's kubeconfig `0600` (its directory, when wavelift creates it, `0700`; the
/// state directory always): whatever a kubeconfig holds is for its owner only.
pub(crate) fn write_kubeconfig(path: &Path, url: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if crate::logging::log_dir().as_deref() == Some(dir) {
            crate::logging::ensure_state_dir(dir)?;
        } else {
            crate::fsio::create_private_dir(dir)?;
        }
    }
    crate::fsio::write_private(path, crate::sim::kubeconfig_text(url).as_bytes())
}

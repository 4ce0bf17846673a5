//! `wavelift migrate PLAN VM`: live-migrate a running VM and report phases, nodes, duration
//! and the probes lost while it moved. Exit 0 when the migration succeeded.

use super::target::connect_or_exit;
use super::{MigrateArgs, EXIT_INVALID, EXIT_OK, EXIT_WARNINGS};
use crate::engine::migrate::migrate;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

pub fn run(args: MigrateArgs) -> ExitCode {
    let (plan, file) = match super::load_valid_plan(&args.plan) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let Some(vm) = plan.vm(&args.vm).cloned() else {
        eprintln!("error: no VM `{}` in {}", args.vm, file);
        return ExitCode::from(EXIT_INVALID);
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
            false,
            &Default::default(),
        )
        .await
        {
            Ok(c) => c,
            Err(code) => return code,
        };
        let (ev_tx, mut ev_rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move { while ev_rx.recv().await.is_some() {} });
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(
            crate::cluster::resources::MigrationPhase,
            Option<String>,
            Option<String>,
        )>(16);
        let printer = tokio::spawn(async move {
            while let Some((phase, src, dst)) = rx.recv().await {
                println!(
                    "{phase:<16} {} → {}",
                    src.as_deref().unwrap_or("?"),
                    dst.as_deref().unwrap_or("?")
                );
            }
        });
        let res = migrate(
            conn.client.clone(),
            plan.clone(),
            &vm,
            conn.prober.clone(),
            ev_tx,
            tx,
            Duration::from_secs(900),
        )
        .await;
        let _ = printer.await;
        match res {
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(EXIT_WARNINGS)
            }
            Ok(o) => {
                println!(
                    "{} {}: {} in {:.1} s, {} of {} probes lost, longest gap {}",
                    o.name,
                    vm.name.value,
                    o.phase,
                    o.duration.as_secs_f64(),
                    o.lost_probes,
                    o.sent_probes,
                    o.longest_gap
                        .map_or("none".to_string(), |g| format!("{} ms", g.as_millis()))
                );
                if let Some(from) = &o.probed_from {
                    println!("probed from: {from}");
                }
                if let Some(f) = &o.failure {
                    println!("failure: {f}");
                }
                if o.phase == crate::cluster::phase::MigrationPhase::Succeeded {
                    ExitCode::from(EXIT_OK)
                } else {
                    ExitCode::from(EXIT_WARNINGS)
                }
            }
        }
    })
}

//! Live migration of a running VM: create a VirtualMachineInstanceMigration, follow its
//! phases through the watch, and probe the VM's IP throughout to count lost probes and the
//! longest gap (the proof that an L2 VM stays reachable while it moves between nodes).

use super::events::{Emitter, EventKind, LogLevel};
use super::probes::WatchPod;
use crate::checks::continuous::{self, Target};
use crate::checks::probe::Prober;
use crate::cluster::build;
use crate::cluster::resources::{MigrationPhase, VirtualMachineInstanceMigration};
use crate::plan::{Plan, Vm};
use futures::StreamExt;
use kube::api::{Api, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How a live migration ended.
#[derive(Debug, Clone, PartialEq)]
pub struct MigrationOutcome {
    pub name: String,
    pub phase: MigrationPhase,
    pub source_node: Option<String>,
    pub target_node: Option<String>,
    pub duration: Duration,
    pub sent_probes: u64,
    pub lost_probes: u64,
    pub longest_gap: Option<Duration>,
    pub failure: Option<String>,
    /// Where the probes came from when not the workstation (`probe pod NAME on the VLAN`).
    pub probed_from: Option<String>,
}

/// The error for a migration KubeVirt would not create. Its admission webhook refuses a VMI
/// that is not live-migratable (`Cannot migrate VMI, Reason: DisksNotLiveMigratable,
/// Message: cannot migrate VMI: PVC NAME is not shared, …`), one already migrating, or one
/// that is not running; the message is KubeVirt's, with the plan disk behind a named PVC.
fn refused(plan: &Plan, vm: &Vm, e: kube::Error) -> anyhow::Error {
    let kube::Error::Api(status) = &e else {
        return anyhow::anyhow!(
            "create VirtualMachineInstanceMigration for {}: {e}",
            vm.name.value
        );
    };
    let mut msg = format!(
        "KubeVirt refused to live-migrate VM `{}` ({} {}): {}",
        vm.name.value, status.code, status.reason, status.message
    );
    if status.message.contains("DisksNotLiveMigratable") {
        let disks: Vec<String> = (0..vm.disks.len())
            .filter(|i| {
                let pvc = crate::cluster::labels::data_volume_name(vm.name.as_str(), *i);
                status.message.contains(&format!("PVC {pvc} "))
            })
            .map(|i| {
                let d = &vm.disks[i];
                let what = d
                    .backing_file
                    .as_ref()
                    .or(d.url.as_ref())
                    .map_or(String::new(), |s| format!(" ({})", s.value));
                format!("disk {i}{what}")
            })
            .collect();
        let mode = plan
            .defaults
            .access_mode
            .as_ref()
            .map_or("the storage profile's default", |m| m.as_str());
        msg.push_str(&format!(
            "\nhint: {} {} access mode {mode}; live migration needs ReadWriteMany (shared) \
             storage. Stop and start the VM to move it, or re-import onto ReadWriteMany storage.",
            if disks.is_empty() {
                "a disk of this VM".to_string()
            } else {
                disks.join(", ")
            },
            if disks.len() > 1 { "have" } else { "has" },
        ));
    }
    anyhow::anyhow!(msg)
}

/// Migrates `vm` and waits for the end (or `limit`). Phase changes go to `progress`
/// (phase, source node, target node); the final outcome with probe counts goes to `events`.
pub async fn migrate(
    client: Client,
    plan: Arc<Plan>,
    vm: &Vm,
    prober: Arc<dyn Prober>,
    events: impl Into<Emitter>,
    progress: mpsc::Sender<(MigrationPhase, Option<String>, Option<String>)>,
    limit: Duration,
) -> anyhow::Result<MigrationOutcome> {
    let events: Emitter = events.into();
    let ns = plan.meta.namespace.as_str();
    let api: Api<VirtualMachineInstanceMigration> = Api::namespaced(client.clone(), ns);
    // With `checks_from = "cluster"` (and a `probe_ip`), the continuous probe runs from a
    // pod on the VLAN, started before the migration; else from here.
    let watch_pod = match WatchPod::start(&client, &plan, vm, limit).await {
        Some(Ok(p)) => Some(p),
        Some(Err(why)) => {
            events
                .log(
                    LogLevel::Warn,
                    format!(
                        "{}: the probe pod for the migration did not run ({why}); probing from the workstation",
                        vm.name.value
                    ),
                )
                .await;
            None
        }
        None => None,
    };
    let created = api
        .create(&PostParams::default(), &build::migration(&plan, vm))
        .await
        .map_err(|e| refused(&plan, vm, e))?;
    let name = created.metadata.name.clone().unwrap_or_default();
    let started = Instant::now();

    // Probe the VM's first IP every 100 ms while it migrates.
    let cancel = CancellationToken::new();
    let probe_task = vm
        .nics
        .iter()
        .find_map(|n| n.ip.as_ref().map(|i| i.value))
        .filter(|_| watch_pod.is_none())
        .map(|ip| {
            let (prober, cancel) = (prober.clone(), cancel.clone());
            let timeout = plan.defaults.check_timeout.min(Duration::from_millis(500));
            tokio::spawn(async move {
                let cfg = continuous::Config {
                    target: Target::Icmp(ip),
                    interval: Duration::from_millis(100),
                    timeout,
                    duration: None,
                };
                continuous::run(prober.as_ref(), &cfg, cancel, None).await
            })
        });

    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher::watcher(api, cfg)
        .default_backoff()
        .applied_objects()
        .boxed();
    let mut last_phase: Option<MigrationPhase> = None;
    let mut outcome = MigrationOutcome {
        name: name.clone(),
        phase: MigrationPhase::Pending,
        source_node: None,
        target_node: None,
        duration: Duration::ZERO,
        sent_probes: 0,
        lost_probes: 0,
        longest_gap: None,
        failure: None,
        probed_from: None,
    };
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let next = tokio::time::timeout_at(deadline, stream.next()).await;
        let m = match next {
            Err(_) => {
                outcome.failure = Some(format!("no end within {limit:?}"));
                break;
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                tracing::warn!(error = %e, "migration watch error");
                continue;
            }
            Ok(Some(Ok(m))) => m,
        };
        let st = m.status.clone().unwrap_or_default();
        let phase = st.phase.clone().unwrap_or(MigrationPhase::Pending);
        if let Some(ms) = &st.migration_state {
            outcome.source_node = ms.source_node.clone().or(outcome.source_node.take());
            outcome.target_node = ms.target_node.clone().or(outcome.target_node.take());
            if ms.failed {
                outcome.failure = ms
                    .failure_reason
                    .clone()
                    .or_else(|| Some("migration failed".into()));
            }
        }
        if last_phase.as_ref() != Some(&phase) {
            // Phase events come from the engine's own watch (or the CLI prints them).
            last_phase = Some(phase.clone());
            outcome.phase = phase.clone();
            let _ = progress
                .send((
                    phase.clone(),
                    outcome.source_node.clone(),
                    outcome.target_node.clone(),
                ))
                .await;
        }
        if phase.is_final() {
            break;
        }
    }
    outcome.duration = started.elapsed();
    cancel.cancel();
    if let Some(t) = probe_task {
        if let Ok(s) = t.await {
            outcome.sent_probes = s.sent;
            outcome.lost_probes = s.lost;
            outcome.longest_gap = s.longest_gap;
        }
    }
    if let Some(p) = watch_pod {
        let name = p.name.clone();
        match p.stop().await {
            Ok((sent, lost, gap)) => {
                outcome.sent_probes = sent;
                outcome.lost_probes = lost;
                outcome.longest_gap = gap;
                outcome.probed_from = Some(format!("probe pod {name} on the VLAN"));
            }
            Err(why) => {
                events
                    .log(
                        LogLevel::Warn,
                        format!(
                            "{}: the migration's probe pod {name} gave no count: {why}",
                            vm.name.value
                        ),
                    )
                    .await
            }
        }
    }
    events
        .vm(
            vm,
            EventKind::Migration {
                name,
                phase: outcome.phase.clone(),
                source_node: outcome.source_node.clone(),
                target_node: outcome.target_node.clone(),
                lost_probes: outcome.lost_probes as u32,
                sent_probes: outcome.sent_probes as u32,
            },
        )
        .await;
    Ok(outcome)
}

//! In-cluster probes (`checks_from = "cluster"`, issue 14) through the engine, against the
//! rehearsal cluster's kubelet: the quickstart without guest agents verifies every VM
//! through ARP from probe pods; a node the VLAN does not reach is named in preflight and no
//! VM lands on it (or, with `l2_path = "required"`, the wave does not start); a ghost
//! holder of a source's IP blocks the cutover naming its MAC; Pod Security `baseline`
//! stops preflight naming what to change; probe pods are seen running during a run and none
//! is left at its end. (A run killed with SIGKILL while probe pods exist:
//! `tests/sim/serve_flow.rs`.)

use crate::common;

use common::{config, run_to_end};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::watcher;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use wavelift::cluster::resources::{DataVolume, VirtualMachine, VirtualMachineInstance};
use wavelift::engine::runtime::RunSummary;
use wavelift::engine::{EngineEvent, EventKind};
use wavelift::plan::Plan;
use wavelift::sim::controllers::rehearsal::Rehearsal;
use wavelift::sim::controllers::scenario::{Fault, FaultKind, FaultMode, Scenario};

const LIMIT: Duration = Duration::from_secs(90);
const NS: &str = "mig-quickstart";
const PROBE_SELECTOR: &str = "wavelift.io/plan=quickstart,wavelift.io/probe";

/// The quickstart checked from the cluster: no guest agents, a probe image, a `probe_ip`
/// on its network (icmp and tcp from the pod); `extra_net` goes into `[[network]]`.
fn cluster_plan(extra_net: &str) -> Arc<Plan> {
    let text = std::fs::read_to_string("plans/quickstart.toml")
        .expect("quickstart")
        .replace(
            "network_model = \"l2\"",
            "network_model = \"l2\"\nchecks_from = \"cluster\"\nprobe_image = \"registry.example.internal/wavelift:0.1\"",
        )
        .replace("guest_agent = true ", "guest_agent = false ")
        .replace(
            "gateway = \"192.0.2.1\"\n",
            &format!("gateway = \"192.0.2.1\"\nprobe_ip = \"192.0.2.250\"\n{extra_net}"),
        );
    let checked = wavelift::plan::check_str(&text, "quickstart-cluster.toml");
    let errors: Vec<String> = checked.located().iter().map(|d| d.render_text()).collect();
    Arc::new(checked.plan.unwrap_or_else(|| panic!("{errors:?}")))
}

fn scenario(plan: &Plan) -> Scenario {
    let mut sc = Scenario::from_plan(plan);
    sc.speed = 4000.0;
    sc
}

/// No object of kind `K` exists in the plan's namespace.
async fn none<K>(r: &Rehearsal) -> bool
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(r.client(), NS);
    api.list(&ListParams::default())
        .await
        .expect("list")
        .items
        .is_empty()
}

async fn probe_pods(r: &Rehearsal) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(r.client(), NS);
    api.list(&ListParams::default().labels(PROBE_SELECTOR))
        .await
        .expect("list pods")
        .items
}

fn logs(events: &[EngineEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Log { message, .. } => Some(message.clone()),
            _ => None,
        })
        .collect()
}

/// Check results as `(vm, check, outcome, detail)`.
fn checks(events: &[EngineEvent]) -> Vec<(String, String, String, String)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Check {
                check,
                outcome,
                detail,
                ..
            } => Some((
                e.vm.clone(),
                check.clone(),
                outcome.to_string(),
                detail.clone(),
            )),
            _ => None,
        })
        .collect()
}

async fn run(plan: &Arc<Plan>, r: &Rehearsal) -> (RunSummary, Vec<EngineEvent>) {
    let mut cfg = config(plan, r);
    cfg.ignore_window = true;
    run_to_end(cfg, LIMIT).await
}

type Phases = BTreeMap<String, BTreeSet<String>>;

/// Every phase each probe pod was seen in, by a watch running until the sender is used.
fn watch_phases(
    r: &Rehearsal,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Phases>,
) {
    let api: Api<Pod> = Api::namespaced(r.client(), NS);
    let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        let mut seen = Phases::new();
        let cfg = watcher::Config::default().labels(PROBE_SELECTOR);
        let mut stream = watcher::watcher(api, cfg).boxed();
        loop {
            tokio::select! {
                _ = &mut rx => break,
                ev = stream.next() => match ev {
                    Some(Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p))) => {
                        let name = p.metadata.name.clone().unwrap_or_default();
                        let phase = p
                            .status
                            .and_then(|s| s.phase)
                            .unwrap_or_else(|| "(none)".into());
                        seen.entry(name).or_default().insert(phase);
                    }
                    Some(_) => {}
                    None => break,
                },
            }
        }
        seen
    });
    (tx, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quickstart_without_agents_verifies_every_vm_through_arp_from_probe_pods() {
    let plan = cluster_plan("");
    let r = Rehearsal::start(scenario(&plan), 0)
        .await
        .expect("rehearsal");
    let (stop, phases) = watch_phases(&r);
    let (s, events) = run(&plan, &r).await;
    let _ = stop.send(());
    let phases = phases.await.expect("watch");
    assert_eq!(s.verified.len(), 3, "{s:?}\n{:#?}", logs(&events));
    let results = checks(&events);
    for vm in ["shop-db-01", "shop-app-01", "shop-web-01"] {
        for check in ["ip-preserved", "mac-preserved"] {
            let last = results
                .iter()
                .rev()
                .find(|(v, c, _, _)| v == vm && c == check)
                .unwrap_or_else(|| panic!("{vm} {check}: {results:#?}"));
            assert_eq!(last.2, "pass", "{last:?}");
            assert!(last.3.contains("ARP"), "{last:?}");
        }
    }
    // icmp and tcp ran from the pod (the network has a probe_ip).
    let tcp = results
        .iter()
        .rev()
        .find(|(v, c, _, _)| v == "shop-db-01" && c == "tcp:5432")
        .expect("tcp check");
    assert_eq!(tcp.2, "pass", "{tcp:?}");
    assert!(tcp.3.contains("probe pod"), "{tcp:?}");
    // The per-node proof passed on every node.
    assert!(
        logs(&events)
            .iter()
            .any(|l| l.contains("reaches all 3 schedulable nodes")),
        "{:#?}",
        logs(&events)
    );
    // Probe pods ran (seen Running, then ended) and none is left.
    assert!(
        phases.keys().any(|n| n.starts_with("wl-probe-l2-"))
            && phases.keys().any(|n| n.starts_with("wl-probe-guard-"))
            && phases.keys().any(|n| n.starts_with("wl-probe-checks-")),
        "{phases:#?}"
    );
    assert!(
        phases
            .values()
            .any(|p| p.contains("Running") && p.contains("Succeeded")),
        "{phases:#?}"
    );
    assert!(probe_pods(&r).await.is_empty());
    // The probe attachment with static IPAM exists beside the VM's.
    let nads: Api<wavelift::cluster::resources::NetworkAttachmentDefinition> =
        Api::namespaced(r.client(), NS);
    let probe_nad = nads.get("vlan-210-probe").await.expect("probe NAD");
    assert!(probe_nad.spec.config.contains("\"static\""));

    // A live migration's continuous probe runs from a pod on the VLAN, stopped by its
    // graceful deletion once the migration ended.
    let vm = plan.vm("shop-db-01").expect("vm").clone();
    let (ev_tx, _ev_rx) = tokio::sync::mpsc::channel(64);
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let prober: Arc<dyn wavelift::checks::probe::Prober> =
        Arc::new(wavelift::checks::probe::SimProber::new(r.world_url.clone()));
    let o =
        wavelift::engine::migrate::migrate(r.client(), plan.clone(), &vm, prober, ev_tx, tx, LIMIT)
            .await
            .expect("migration runs");
    assert_eq!(o.phase, "Succeeded", "{o:?}");
    assert_eq!(
        o.probed_from.as_deref(),
        Some("probe pod wl-probe-watch-shop-db-01 on the VLAN"),
        "{o:?}"
    );
    assert!(o.sent_probes > 0 && o.lost_probes == 0, "{o:?}");
    assert!(probe_pods(&r).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_the_vlan_is_named_and_no_vm_lands_on_it() {
    let plan = cluster_plan("");
    let mut sc = scenario(&plan);
    sc.node_vlans = BTreeMap::from([("sim-node-2".to_string(), vec![])]);
    let r = Rehearsal::start(sc, 0).await.expect("rehearsal");
    let (s, events) = run(&plan, &r).await;
    assert_eq!(s.verified.len(), 3, "{s:?}");
    let warned = logs(&events)
        .into_iter()
        .find(|l| l.contains("does not reach sim-node-2"))
        .unwrap_or_else(|| panic!("{:#?}", logs(&events)));
    assert!(
        warned.contains("no answer to an ARP probe of 192.0.2.1"),
        "{warned}"
    );
    let vmis: Api<VirtualMachineInstance> = Api::namespaced(r.client(), NS);
    let list = vmis.list(&ListParams::default()).await.expect("vmis");
    assert_eq!(list.items.len(), 3);
    for vmi in &list.items {
        let v = serde_json::to_value(vmi).expect("json");
        assert_ne!(v["status"]["nodeName"], "sim-node-2", "{v:#}");
    }
    let vms: Api<VirtualMachine> = Api::namespaced(r.client(), NS);
    let vm = vms.get("shop-db-01").await.expect("vm");
    let expr = &vm.spec.template["spec"]["affinity"]["nodeAffinity"]
        ["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
        ["matchExpressions"][0];
    assert_eq!(expr["operator"], "NotIn");
    assert_eq!(expr["values"], serde_json::json!(["sim-node-2"]));
    assert!(probe_pods(&r).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_l2_path_required_a_node_without_the_vlan_stops_the_wave() {
    let plan = cluster_plan("l2_path = \"required\"\n");
    let mut sc = scenario(&plan);
    sc.node_vlans = BTreeMap::from([("sim-node-3".to_string(), vec![])]);
    let r = Rehearsal::start(sc, 0).await.expect("rehearsal");
    let (s, _) = run(&plan, &r).await;
    assert!(s.verified.is_empty(), "{s:?}");
    assert_eq!(s.failed.len(), 3, "{s:?}");
    for (_, why) in &s.failed {
        assert!(
            why.contains("l2-path") && why.contains("sim-node-3"),
            "{why}"
        );
    }
    assert!(none::<DataVolume>(&r).await, "no DataVolume was created");
    assert!(probe_pods(&r).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ghost_holder_of_the_source_ip_blocks_the_cutover_naming_its_mac() {
    let plan = cluster_plan("");
    let mut sc = scenario(&plan);
    sc.faults = vec![Fault {
        kind: FaultKind::GhostHolder,
        vm: "shop-db-01".into(),
        mode: FaultMode::Once,
        factor: None,
    }];
    let r = Rehearsal::start(sc, 0).await.expect("rehearsal");
    let mut cfg = config(&plan, &r);
    cfg.ignore_window = true;
    cfg.only_vms = ["shop-db-01".to_string()].into();
    let (s, _) = run_to_end(cfg, LIMIT).await;
    let (_, why) = s
        .failed
        .iter()
        .find(|(v, _)| v == "shop-db-01")
        .unwrap_or_else(|| panic!("{s:?}"));
    assert!(
        why.contains("192.0.2.15 is still held on vlan-210 by MAC"),
        "{why}"
    );
    assert!(
        !why.contains("00:50:56:ab:cd:01"),
        "the source is off: {why}"
    );
    // The guest never booted: the guard holds before the VM is created.
    assert!(none::<VirtualMachineInstance>(&r).await);
    assert!(probe_pods(&r).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_security_baseline_stops_preflight_naming_what_to_change() {
    let plan = cluster_plan("");
    let r = Rehearsal::start(scenario(&plan), 0)
        .await
        .expect("rehearsal");
    let nss: Api<Namespace> = Api::all(r.client());
    let patch = serde_json::json!({ "metadata": { "labels": {
        "pod-security.kubernetes.io/enforce": "baseline" } } });
    nss.patch(NS, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("label namespace");
    let (s, _) = run(&plan, &r).await;
    assert_eq!(s.failed.len(), 3, "{s:?}");
    for (_, why) in &s.failed {
        assert!(why.contains("pod-security"), "{why}");
        assert!(
            why.contains("`baseline`") && why.contains("NET_RAW"),
            "{why}"
        );
        assert!(
            why.contains("pod-security.kubernetes.io/enforce=privileged"),
            "{why}"
        );
    }
    assert!(none::<DataVolume>(&r).await, "no DataVolume was created");
    assert!(probe_pods(&r).await.is_empty());
}

//! The rehearsal cluster's kubelet, L2 world and Pod Security, through the real kube-rs
//! client against the in-process sim:
//! - a probe pod goes Pending → Running → Succeeded and its termination message carries
//!   the MACs that answered (the gateway's router MAC, the running source VM's MAC);
//! - a node whose trunk lacks the VLAN hears nothing; a bridgeless node never gets the
//!   pod's sandbox, and the deadline fails it;
//! - a `ghost-holder` keeps answering for a powered-off source;
//! - Pod Security `baseline` refuses the probe pod's `NET_RAW` (dry run too);
//! - a VM's hostname `NotIn` affinity keeps its VMI off those nodes;
//! - graceful deletion: a `--watch` pod deleted with a grace period is marked, its probe
//!   stops on SIGTERM and its result (sent, lost) is written before the kubelet removes the
//!   pod; a source powered off midway shows as lost probes; grace 0, and a pod not bound to
//!   a node or already ended, are removed at once.

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::runtime::watcher::{self, Event};
use kube::ResourceExt;
use serde_json::json;
use std::time::Duration;
use wavelift::checks::probe::pod::{decode, PodResult, ProbeRequest};
use wavelift::cluster::build;
use wavelift::cluster::probe_pod::{probe_pod, ProbeSpec};
use wavelift::cluster::resources::{
    DataVolume, NetworkAttachmentDefinition, VirtualMachine, VirtualMachineInstance,
};
use wavelift::cluster::subresource::{put, VmAction};
use wavelift::plan::Plan;
use wavelift::sim::controllers::rehearsal::Rehearsal;
use wavelift::sim::controllers::scenario::{
    gateway_mac, ghost_mac, Fault, FaultKind, FaultMode, PowerState, Scenario,
};

const LIMIT: Duration = Duration::from_secs(30);
const NS: &str = "mig-quickstart";
const GATEWAY: &str = "192.0.2.1";
const DB_IP: &str = "192.0.2.15";
const DB_MAC: &str = "00:50:56:ab:cd:01";

/// The quickstart plan with a probe image.
fn plan() -> Plan {
    let text = std::fs::read_to_string("plans/quickstart.toml").expect("quickstart");
    let text = text.replace(
        "namespace = \"mig-quickstart\"",
        "namespace = \"mig-quickstart\"\nprobe_image = \"registry.example.internal/wavelift:0.1\"",
    );
    wavelift::plan::check_str(&text, "quickstart.toml")
        .plan
        .expect("valid plan")
}

/// A rehearsal of `plan`, its scenario changed by `tweak`, with the plan's NADs created.
async fn rehearsal(plan: &Plan, tweak: impl FnOnce(&mut Scenario)) -> Rehearsal {
    let mut scenario = Scenario::from_plan(plan);
    scenario.speed = 1000.0;
    tweak(&mut scenario);
    let r = Rehearsal::start(scenario, 0).await.expect("rehearsal");
    let nads: Api<NetworkAttachmentDefinition> = Api::namespaced(r.client(), NS);
    for net in &plan.networks {
        nads.create(
            &PostParams::default(),
            &build::network_attachment(plan, net),
        )
        .await
        .expect("NAD");
    }
    r
}

fn spec(name: &str, node: &str, req: &ProbeRequest) -> ProbeSpec {
    ProbeSpec {
        name: name.into(),
        network: "vlan-210".into(),
        node: Some(node.into()),
        avoid: vec![],
        ips: vec![],
        purpose: "l2-path".into(),
        args: req.to_args(),
        deadline: Duration::from_secs(60),
    }
}

fn phase(p: &Pod) -> String {
    p.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default()
}

fn ended(p: &Pod) -> bool {
    matches!(phase(p).as_str(), "Succeeded" | "Failed")
}

/// Creates the pod with a watch already open and returns every state of it the watch
/// showed, up to the one that ended it.
async fn run_watched(client: &kube::Client, pod: &Pod) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), NS);
    let name = pod.name_any();
    let mut stream = watcher::watcher(api.clone(), watcher::Config::default()).boxed();
    // The watch is open once its initial list is done.
    let opened = tokio::time::timeout(LIMIT, async {
        while let Some(ev) = stream.next().await {
            if matches!(ev, Ok(Event::InitDone)) {
                return;
            }
        }
        panic!("the watch ended");
    })
    .await;
    assert!(
        opened.is_ok(),
        "the pod watch did not open within {LIMIT:?}"
    );
    api.create(&PostParams::default(), pod)
        .await
        .expect("pod created");
    let seen = tokio::time::timeout(LIMIT, async {
        let mut seen = Vec::new();
        while let Some(ev) = stream.next().await {
            if let Ok(Event::Apply(p) | Event::InitApply(p)) = ev {
                if p.name_any() != name {
                    continue;
                }
                let done = ended(&p);
                seen.push(p);
                if done {
                    break;
                }
            }
        }
        seen
    })
    .await;
    seen.unwrap_or_else(|_| panic!("pod {name} did not end within {LIMIT:?}"))
}

fn phases(seen: &[Pod]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in seen {
        let ph = phase(p);
        if out.last() != Some(&ph) {
            out.push(ph);
        }
    }
    out
}

fn result_of(p: &Pod) -> PodResult {
    let state = p
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.terminated.as_ref())
        .expect("terminated container");
    assert_eq!(state.exit_code, 0, "{state:?}");
    assert_eq!(state.reason.as_deref(), Some("Completed"));
    decode(state.message.as_deref().unwrap_or_default()).expect("probe result")
}

fn macs(r: &PodResult, kind: &str, target: &str) -> Vec<String> {
    r.r.iter()
        .find(|p| p.k == kind && p.t == target)
        .unwrap_or_else(|| panic!("no {kind} entry for {target}: {r:?}"))
        .m
        .clone()
}

#[tokio::test]
async fn a_probe_pod_runs_and_reports_the_gateway_and_the_source() {
    let plan = plan();
    let r = rehearsal(&plan, |_| {}).await;
    let req = ProbeRequest {
        arp: vec![DB_IP.parse().unwrap()],
        gateway: vec![GATEWAY.parse().unwrap()],
        ..Default::default()
    };
    let pod = probe_pod(&plan, &spec("probe-l2-node-1", "sim-node-1", &req)).expect("pod");
    let seen = run_watched(&r.client(), &pod).await;
    assert_eq!(
        phases(&seen),
        vec!["Pending", "Running", "Succeeded"],
        "the phases the watch showed"
    );
    let last = seen.last().expect("seen");
    let result = result_of(last);
    assert_eq!(
        macs(&result, "gateway", GATEWAY),
        vec![gateway_mac(Some(210))]
    );
    assert_eq!(macs(&result, "arp", DB_IP), vec![DB_MAC.to_string()]);
    let cs = &last
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0];
    assert!(!cs.ready);
}

#[tokio::test]
async fn a_node_without_the_vlan_hears_no_gateway() {
    let plan = plan();
    let r = rehearsal(&plan, |s| {
        s.node_vlans.insert("sim-node-2".into(), vec![211]);
    })
    .await;
    let req = ProbeRequest {
        gateway: vec![GATEWAY.parse().unwrap()],
        ..Default::default()
    };
    let cut = probe_pod(&plan, &spec("probe-l2-node-2", "sim-node-2", &req)).expect("pod");
    let ok = probe_pod(&plan, &spec("probe-l2-node-1", "sim-node-1", &req)).expect("pod");
    let cut = run_watched(&r.client(), &cut).await;
    let ok = run_watched(&r.client(), &ok).await;
    assert!(macs(&result_of(cut.last().unwrap()), "gateway", GATEWAY).is_empty());
    assert_eq!(
        macs(&result_of(ok.last().unwrap()), "gateway", GATEWAY),
        vec![gateway_mac(Some(210))]
    );
}

#[tokio::test]
async fn a_bridgeless_node_never_creates_the_sandbox_and_the_deadline_fails_the_pod() {
    let plan = plan();
    let r = rehearsal(&plan, |s| s.bridgeless_nodes = vec!["sim-node-3".into()]).await;
    // bridge-marker advertises the bridge on the other nodes only.
    let nodes: Api<Node> = Api::all(r.client());
    let resource = "bridge.network.kubevirt.io/br-trunk";
    for (node, has) in [("sim-node-1", true), ("sim-node-3", false)] {
        let n = nodes.get(node).await.expect("node");
        let cap = n.status.and_then(|s| s.capacity).unwrap_or_default();
        assert_eq!(cap.contains_key(resource), has, "{node}");
    }
    let req = ProbeRequest {
        gateway: vec![GATEWAY.parse().unwrap()],
        ..Default::default()
    };
    let pod = probe_pod(&plan, &spec("probe-l2-node-3", "sim-node-3", &req)).expect("pod");
    let seen = run_watched(&r.client(), &pod).await;
    assert_eq!(phases(&seen), vec!["Pending", "Failed"]);
    let waiting = seen
        .iter()
        .filter_map(|p| {
            p.status.as_ref()?.container_statuses.as_ref()?[0]
                .state
                .as_ref()?
                .waiting
                .clone()
        })
        .find(|w| w.message.is_some())
        .expect("a waiting container with the sandbox error");
    assert_eq!(waiting.reason.as_deref(), Some("ContainerCreating"));
    let message = waiting.message.unwrap_or_default();
    assert!(
        message.starts_with("Failed to create pod sandbox")
            && message.contains("could not lookup \"br-trunk\""),
        "{message}"
    );
    let st = seen.last().unwrap().status.clone().unwrap();
    assert_eq!(st.reason.as_deref(), Some("DeadlineExceeded"));
    assert_eq!(
        st.message.as_deref(),
        Some("Pod was active on the node longer than the specified deadline")
    );
}

#[tokio::test]
async fn a_ghost_answers_for_a_powered_off_source() {
    let plan = plan();
    let r = rehearsal(&plan, |s| {
        s.faults.push(Fault {
            kind: FaultKind::GhostHolder,
            vm: "shop-db-01".into(),
            mode: FaultMode::Once,
            factor: None,
        })
    })
    .await;
    let world = &r.controllers.world;
    let src = world.find("shop-db-01").expect("source");
    world
        .set_power(&src.moid, PowerState::Off)
        .expect("powered off");
    let ghost = ghost_mac("shop-db-01");
    let req = ProbeRequest {
        arp: vec![DB_IP.parse().unwrap()],
        ..Default::default()
    };
    let pod = probe_pod(&plan, &spec("probe-guard", "sim-node-1", &req)).expect("pod");
    let seen = run_watched(&r.client(), &pod).await;
    assert_eq!(
        macs(&result_of(seen.last().unwrap()), "arp", DB_IP),
        vec![ghost.clone()]
    );
    let answer = world.probe(DB_IP, None);
    assert_eq!(answer.result, "reachable");
    assert_eq!(answer.holders, vec![format!("ghost/shop-db-01 ({ghost})")]);
}

#[tokio::test]
async fn pod_security_baseline_refuses_net_raw() {
    let plan = plan();
    let r = rehearsal(&plan, |_| {}).await;
    let client = r.client();
    let label = |level: &str| {
        Patch::Merge(json!({ "metadata": { "labels": {
            "pod-security.kubernetes.io/enforce": level } } }))
    };
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .patch(NS, &PatchParams::default(), &label("baseline"))
        .await
        .expect("labelled");
    let req = ProbeRequest {
        gateway: vec![GATEWAY.parse().unwrap()],
        ..Default::default()
    };
    let pod = probe_pod(&plan, &spec("probe-psa", "sim-node-1", &req)).expect("pod");
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let expected = "pods \"probe-psa\" is forbidden: violates PodSecurity \"baseline:latest\": non-default capabilities (container \"probe\" must not include \"NET_RAW\" in securityContext.capabilities.add)";
    for dry_run in [true, false] {
        let pp = PostParams {
            dry_run,
            ..PostParams::default()
        };
        match pods.create(&pp, &pod).await {
            Err(kube::Error::Api(e)) => {
                assert_eq!(e.code, 403, "{e:?}");
                assert_eq!(e.reason, "Forbidden");
                assert_eq!(e.message, expected);
            }
            other => panic!("dry run {dry_run}: admitted: {other:?}"),
        }
    }
    namespaces
        .patch(NS, &PatchParams::default(), &label("privileged"))
        .await
        .expect("labelled");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("privileged admits NET_RAW");
}

#[tokio::test]
async fn a_vm_with_not_in_affinity_never_lands_on_those_nodes() {
    let plan = plan();
    let r = rehearsal(&plan, |_| {}).await;
    let client = r.client();
    let dvs: Api<DataVolume> = Api::namespaced(client.clone(), NS);
    let vms: Api<VirtualMachine> = Api::namespaced(client.clone(), NS);
    let vmis: Api<VirtualMachineInstance> = Api::namespaced(client.clone(), NS);
    for v in &plan.vms {
        for dv in build::data_volumes(&plan, v) {
            dvs.create(&PostParams::default(), &dv).await.expect("DV");
        }
        let mut vm = serde_json::to_value(build::virtual_machine(&plan, v)).expect("json");
        vm["spec"]["template"]["spec"]["affinity"] = json!({ "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": { "nodeSelectorTerms": [
                { "matchExpressions": [{ "key": "kubernetes.io/hostname", "operator": "NotIn",
                                         "values": ["sim-node-2", "sim-node-3"] }] }
            ] } } });
        let vm: VirtualMachine = serde_json::from_value(vm).expect("vm");
        vms.create(&PostParams::default(), &vm).await.expect("VM");
    }
    for v in &plan.vms {
        let name = v.name.as_str();
        // The disks import, then the VM starts.
        for dv in build::data_volumes(&plan, v) {
            let dv_name = dv.name_any();
            let done = await_condition(dvs.clone(), &dv_name, |d: Option<&DataVolume>| {
                d.and_then(|d| d.status.as_ref())
                    .and_then(|s| s.phase.as_ref())
                    .is_some_and(|p| p.as_str() == "Succeeded")
            });
            tokio::time::timeout(LIMIT, done)
                .await
                .expect("imported in time")
                .expect("watch");
        }
        put(&client, NS, name, VmAction::Start, false)
            .await
            .expect("start");
        let running = await_condition(vmis.clone(), name, |v: Option<&VirtualMachineInstance>| {
            v.and_then(|v| v.status.as_ref())
                .and_then(|s| s.phase.as_ref())
                .is_some_and(|p| p.as_str() == "Running")
        });
        let vmi = tokio::time::timeout(LIMIT, running)
            .await
            .expect("running in time")
            .expect("watch")
            .expect("VMI");
        let node = vmi.status.and_then(|s| s.node_name);
        // (Unconstrained, all three hash to sim-node-3.)
        assert_eq!(node.as_deref(), Some("sim-node-1"), "{name}");
    }
}

/// The probe pod of `req` on sim-node-1, its attachment with the static address `ips`.
fn static_pod(plan: &Plan, name: &str, req: &ProbeRequest, ips: Option<&str>) -> Pod {
    let pod = probe_pod(plan, &spec(name, "sim-node-1", req)).expect("pod");
    let mut v = serde_json::to_value(pod).expect("json");
    let mut net = json!({ "name": "vlan-210", "namespace": NS, "interface": "net1" });
    if let Some(ip) = ips {
        net["ips"] = json!([ip]);
    }
    v["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"] = json!(json!([net]).to_string());
    serde_json::from_value(v).expect("pod")
}

#[tokio::test]
async fn icmp_and_tcp_need_an_address_and_bad_arguments_fail_the_pod() {
    let plan = plan();
    let r = rehearsal(&plan, |_| {}).await;
    let req = ProbeRequest {
        icmp: vec![DB_IP.parse().unwrap()],
        tcp: vec![
            format!("{DB_IP}:5432").parse().unwrap(),
            format!("{DB_IP}:9").parse().unwrap(),
        ],
        ..Default::default()
    };
    let with = static_pod(&plan, "probe-static", &req, Some("192.0.2.250/24"));
    let seen = run_watched(&r.client(), &with).await;
    let result = result_of(seen.last().unwrap());
    let entry = |k: &str, t: &str| {
        result
            .r
            .iter()
            .find(|p| p.k == k && p.t == t)
            .cloned()
            .unwrap_or_else(|| panic!("{k} {t}: {result:?}"))
    };
    assert_eq!(entry("icmp", DB_IP).ok, Some(true));
    assert_eq!(entry("tcp", &format!("{DB_IP}:5432")).ok, Some(true));
    let closed = entry("tcp", &format!("{DB_IP}:9"));
    assert_eq!(closed.ok, Some(false));
    assert!(closed.e.unwrap_or_default().contains("refused"));

    let without = static_pod(&plan, "probe-dhcp", &req, None);
    let seen = run_watched(&r.client(), &without).await;
    let result = result_of(seen.last().unwrap());
    let icmp = result.r.iter().find(|p| p.k == "icmp").expect("icmp");
    assert_eq!(icmp.ok, Some(false));
    assert!(
        icmp.e
            .as_deref()
            .unwrap_or_default()
            .contains("net1 has no address"),
        "{icmp:?}"
    );

    let mut bad = serde_json::to_value(static_pod(&plan, "probe-bad", &req, None)).expect("json");
    bad["spec"]["containers"][0]["args"] = json!(["probe", "--interface", "net1", "--arp", "x"]);
    let bad: Pod = serde_json::from_value(bad).expect("pod");
    let seen = run_watched(&r.client(), &bad).await;
    let last = seen.last().unwrap();
    assert_eq!(phase(last), "Failed");
    let term = last
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0]
        .state
        .as_ref()
        .and_then(|s| s.terminated.clone())
        .expect("terminated");
    assert_eq!(term.exit_code, 2);
    assert!(
        term.message.unwrap_or_default().contains("--arp x"),
        "the message says which argument"
    );
}

#[tokio::test]
async fn a_pod_without_a_node_is_bound_where_its_node_selector_says() {
    let plan = plan();
    let r = rehearsal(&plan, |_| {}).await;
    let req = ProbeRequest {
        gateway: vec![GATEWAY.parse().unwrap()],
        ..Default::default()
    };
    let mut s = spec("probe-anywhere", "unused", &req);
    s.node = None;
    let mut pod = serde_json::to_value(probe_pod(&plan, &s).expect("pod")).expect("json");
    pod["spec"]["nodeSelector"] = json!({ "kubernetes.io/hostname": "sim-node-2" });
    let pod: Pod = serde_json::from_value(pod).expect("pod");
    let seen = run_watched(&r.client(), &pod).await;
    let last = seen.last().unwrap();
    assert_eq!(phase(last), "Succeeded");
    assert_eq!(
        last.spec.as_ref().and_then(|s| s.node_name.as_deref()),
        Some("sim-node-2")
    );
}

/// Waits until the world's simulated clock reaches `secs` (a condition on the sim clock,
/// bounded by [`LIMIT`]).
async fn sim_time_reaches(r: &Rehearsal, secs: f64) {
    let world = r.controllers.world.clone();
    let reached = tokio::time::timeout(LIMIT, async move {
        while world.now() < secs {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    assert!(reached.is_ok(), "simulated time never reached {secs}s");
}

fn terminated_of(p: &Pod) -> Option<k8s_openapi::api::core::v1::ContainerStateTerminated> {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.terminated.clone())
}

/// Runs a `--watch DB_IP` pod (static address on the probe NAD): waits until it is
/// Running, lets 2 simulated seconds pass, calls `midway`, lets 2 more pass, deletes it
/// with a 5 s grace period, and returns every state the watch showed after the delete
/// (the last one is the DELETED object).
async fn watch_then_delete(
    r: &Rehearsal,
    plan: &Plan,
    name: &str,
    midway: impl FnOnce(),
) -> Vec<Pod> {
    let req = ProbeRequest {
        watch: Some(DB_IP.parse().unwrap()),
        watch_for: Some(Duration::from_secs(600)),
        ..Default::default()
    };
    let pod = static_pod(plan, name, &req, Some("192.0.2.250/24"));
    let api: Api<Pod> = Api::namespaced(r.client(), NS);
    let mut stream = watcher::watcher(api.clone(), watcher::Config::default()).boxed();
    let opened = tokio::time::timeout(LIMIT, async {
        while let Some(ev) = stream.next().await {
            if matches!(ev, Ok(Event::InitDone)) {
                return;
            }
        }
    })
    .await;
    assert!(opened.is_ok(), "the pod watch did not open");
    api.create(&PostParams::default(), &pod)
        .await
        .expect("pod created");
    let running = tokio::time::timeout(LIMIT, async {
        while let Some(ev) = stream.next().await {
            if let Ok(Event::Apply(p)) = ev {
                if p.name_any() == name && phase(&p) == "Running" {
                    return;
                }
            }
        }
    })
    .await;
    assert!(running.is_ok(), "pod {name} never ran");
    let t0 = r.controllers.world.now();
    sim_time_reaches(r, t0 + 2.0).await;
    midway();
    sim_time_reaches(r, t0 + 4.0).await;
    let dp = DeleteParams {
        grace_period_seconds: Some(5),
        ..Default::default()
    };
    let answer = api.delete(name, &dp).await.expect("delete");
    let marked = answer
        .left()
        .expect("the pod itself, not a Status: it stays for its grace period");
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert_eq!(marked.metadata.deletion_grace_period_seconds, Some(5));
    let seen = tokio::time::timeout(LIMIT, async {
        let mut seen = Vec::new();
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(Event::Apply(p)) if p.name_any() == name => seen.push(p),
                Ok(Event::Delete(p)) if p.name_any() == name => {
                    seen.push(p);
                    break;
                }
                _ => {}
            }
        }
        seen
    })
    .await
    .unwrap_or_else(|_| panic!("pod {name} was not removed within {LIMIT:?}"));
    assert!(api.get_opt(name).await.expect("get").is_none(), "gone");
    seen
}

/// The `watch` entry of the last status the watch showed before the pod went away, after
/// checking the order: marked and still running, then ended with the result, then gone.
fn watch_entry(seen: &[Pod]) -> wavelift::checks::probe::pod::PodProbe {
    let first = seen.first().expect("a MODIFIED after the delete");
    assert!(first.metadata.deletion_timestamp.is_some());
    assert_eq!(
        phase(first),
        "Running",
        "marked first, container still running"
    );
    let before_removal = &seen[seen.len() - 2];
    assert!(before_removal.metadata.deletion_timestamp.is_some());
    assert_eq!(phase(before_removal), "Succeeded");
    let t = terminated_of(before_removal).expect("terminated");
    assert_eq!((t.exit_code, t.reason.as_deref()), (0, Some("Completed")));
    let result = decode(t.message.as_deref().unwrap_or_default()).expect("probe result");
    let watch = result.r.last().cloned().expect("entries");
    assert_eq!((watch.k.as_str(), watch.t.as_str()), ("watch", DB_IP));
    // The DELETED object is that last state.
    assert_eq!(terminated_of(seen.last().unwrap()), Some(t));
    watch
}

#[tokio::test]
async fn a_watch_pod_deleted_gracefully_reports_what_it_saw_then_goes() {
    let plan = plan();
    let r = rehearsal(&plan, |_| {}).await;
    let seen = watch_then_delete(&r, &plan, "probe-watch-up", || {}).await;
    let w = watch_entry(&seen);
    // 4 simulated seconds at 100 ms: about 40 probes, none lost.
    assert!(w.n.unwrap_or(0) >= 30, "{w:?}");
    assert_eq!(w.lost, Some(0), "{w:?}");
    assert_eq!(w.gap, None);
    assert_eq!(w.e, None);
}

#[tokio::test]
async fn a_source_powered_off_midway_shows_as_lost_probes() {
    let plan = plan();
    let r = rehearsal(&plan, |_| {}).await;
    let world = r.controllers.world.clone();
    let seen = watch_then_delete(&r, &plan, "probe-watch-down", || {
        let src = world.find("shop-db-01").expect("source");
        world
            .set_power(&src.moid, PowerState::Off)
            .expect("powered off");
    })
    .await;
    let w = watch_entry(&seen);
    let (n, lost) = (w.n.unwrap_or(0), w.lost.unwrap_or(0));
    assert!(lost >= 10 && lost < n, "{w:?}");
    // Still down when it stopped: the gap runs from the last answer to the end.
    assert!(w.gap.unwrap_or(0) >= 1000, "{w:?}");
}

#[tokio::test]
async fn grace_zero_and_pods_not_running_are_removed_at_once() {
    let plan = plan();
    let r = rehearsal(&plan, |_| {}).await;
    let api: Api<Pod> = Api::namespaced(r.client(), NS);
    let now = DeleteParams {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    let graceful = DeleteParams {
        grace_period_seconds: Some(30),
        ..Default::default()
    };

    // A running pod deleted with grace 0 (`kubectl delete --grace-period=0 --force`).
    let req = ProbeRequest {
        watch: Some(DB_IP.parse().unwrap()),
        ..Default::default()
    };
    let pod = static_pod(&plan, "probe-force", &req, Some("192.0.2.250/24"));
    api.create(&PostParams::default(), &pod).await.expect("pod");
    let running = tokio::time::timeout(
        LIMIT,
        await_condition(api.clone(), "probe-force", |p: Option<&Pod>| {
            p.is_some_and(|p| phase(p) == "Running")
        }),
    )
    .await;
    assert!(running.is_ok(), "probe-force never ran");
    api.delete("probe-force", &now).await.expect("delete");
    assert!(api.get_opt("probe-force").await.expect("get").is_none());

    // A pod bound to no node (its node selector matches none): nothing runs it.
    let mut s = spec("probe-nowhere", "unused", &ProbeRequest::default());
    s.node = None;
    let mut pod = serde_json::to_value(probe_pod(&plan, &s).expect("pod")).expect("json");
    pod["spec"]["nodeSelector"] = json!({ "kubernetes.io/hostname": "no-such-node" });
    let pod: Pod = serde_json::from_value(pod).expect("pod");
    api.create(&PostParams::default(), &pod).await.expect("pod");
    let unschedulable = tokio::time::timeout(
        LIMIT,
        await_condition(api.clone(), "probe-nowhere", |p: Option<&Pod>| {
            p.and_then(|p| p.status.as_ref())
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| {
                    c.iter()
                        .any(|c| c.reason.as_deref() == Some("Unschedulable"))
                })
        }),
    )
    .await;
    assert!(
        unschedulable.is_ok(),
        "probe-nowhere was never found unschedulable"
    );
    api.delete("probe-nowhere", &graceful)
        .await
        .expect("delete");
    assert!(api.get_opt("probe-nowhere").await.expect("get").is_none());

    // A pod that ended.
    let req = ProbeRequest {
        gateway: vec![GATEWAY.parse().unwrap()],
        ..Default::default()
    };
    let pod = probe_pod(&plan, &spec("probe-done", "sim-node-1", &req)).expect("pod");
    let seen = run_watched(&r.client(), &pod).await;
    assert_eq!(phase(seen.last().unwrap()), "Succeeded");
    api.delete("probe-done", &graceful).await.expect("delete");
    assert!(api.get_opt("probe-done").await.expect("get").is_none());
}

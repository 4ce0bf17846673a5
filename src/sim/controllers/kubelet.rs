//! The simulated kubelet (with the scheduler's part for pods without a node): every pod
//! that has not ended is bound to a node, gets its sandbox (its Multus attachments), runs,
//! and ends. A container whose arguments begin with `probe` runs `wavelift probe` against
//! the simulated world (ARP on its attachment's VLAN as the node's trunk carries it, ICMP
//! and TCP from the attachment's static address) and leaves its result in the termination
//! message, as [`crate::cli::probe`] does; any other container runs until it is deleted
//! or its deadline passes.
//!
//! Modelled on:
//! - kubernetes `pkg/kubelet/active_deadline.go` (`activeDeadlineHandler`: a pod whose
//!   `activeDeadlineSeconds` have passed since `status.startTime` ends `Failed`, reason
//!   `DeadlineExceeded`, "Pod was active on the node longer than the specified deadline");
//! - kubernetes `pkg/kubelet/kubelet_pods.go` (`generateAPIPodStatus`, `getPhase`: `Pending`
//!   while a container waits — `ContainerCreating` until the sandbox exists —, `Running`,
//!   then `Succeeded` when every container of a `Never` pod exited 0, `Failed` otherwise)
//!   and `pkg/kubelet/kuberuntime/kuberuntime_container.go` (the termination message from
//!   `terminationMessagePath`);
//! - kubernetes `pkg/scheduler/framework/plugins/nodeaffinity/node_affinity.go` for the
//!   choice of node ([`super::placement`]) and `pkg/scheduler/schedule_one.go` for the
//!   `Unschedulable` condition;
//! - k8snetworkplumbingwg/multus-cni `pkg/k8sclient/k8sclient.go`
//!   (`parsePodNetworkAnnotation`: the JSON list or `ns/name@if` text) and
//!   `pkg/multus/multus.go` (`cmdAdd`: a delegate's error fails the sandbox as
//!   `[NS/POD/UID:NET]: error adding container to network "NET": …`);
//! - kubernetes `pkg/kubelet/kuberuntime/kuberuntime_container.go` (`killContainer`:
//!   SIGTERM, SIGKILL once the deletion's grace period has passed) and
//!   `pkg/kubelet/status/status_manager.go` (`syncPod`, `canBeDeleted`: a pod with a
//!   deletionTimestamp is deleted, grace 0 and its UID as precondition, once its terminal
//!   status is in the API). `wavelift` runs as PID 1 (the image's entrypoint) and handles
//!   SIGTERM only while `--watch` runs: a SIGTERM before that is ignored (signal(7),
//!   pid_namespaces(7)) and the container is killed (137) at the end of the grace period;
//! - containernetworking/plugins `plugins/main/bridge/bridge.go` (`bridgeByName`:
//!   `could not lookup "BR": Link not found`). The real plugin creates a missing bridge
//!   itself (`ensureBridge`); the sim's `bridgeless_nodes` model a node whose bridge cannot
//!   be set up, so the sandbox never comes.

use super::kubevirt::cni_vlan;
use super::scenario::Scenario;
use super::world::World;
use super::{placement, SimClock};
use crate::checks::continuous::Tracker;
use crate::checks::probe::pod::{encode, PodProbe, PodResult, ProbeRequest};
use crate::cluster::resources::NetworkAttachmentDefinition;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use kube::runtime::watcher;
use kube::runtime::WatchStreamExt;
use kube::{Client, ResourceExt};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// `active_deadline.go`: the pod's status reason and message when its deadline passed.
pub const DEADLINE_REASON: &str = "DeadlineExceeded";
pub const DEADLINE_MESSAGE: &str = "Pod was active on the node longer than the specified deadline";

/// Multus's annotation naming a pod's extra networks.
pub const NETWORKS_ANNOTATION: &str = "k8s.v1.cni.cncf.io/networks";

/// `wavelift probe`'s ARP: 3 probes 1 s apart, then 2 s of listening (RFC 5227; the
/// `--arp-interval`/`--arp-wait` defaults), plus the container's start.
const ARP_SECONDS: f64 = 4.5;
/// Its `--timeout` for one ICMP or TCP probe.
const REACH_TIMEOUT_SECONDS: f64 = 2.0;
/// `--watch`: one ICMP probe every 100 ms (`cli/probe.rs` `watch`).
const WATCH_INTERVAL_MS: u64 = 100;
/// `--watch-for`'s default (`cli::ProbeArgs`).
const WATCH_FOR_DEFAULT_SECONDS: f64 = 3600.0;
/// Exit code of a container killed by SIGKILL (128 + 9).
const EXIT_SIGKILL: i32 = 137;

/// What the kubelet tasks share.
#[derive(Clone)]
struct Ctx {
    client: Client,
    scenario: Arc<Scenario>,
    world: Arc<World>,
    clock: SimClock,
}

/// Runs the simulated kubelets of every node: a watch of all pods; each pod that has not
/// ended is run once, by its own task.
pub async fn run(client: Client, scenario: Arc<Scenario>, world: Arc<World>, clock: SimClock) {
    let ctx = Ctx {
        client: client.clone(),
        scenario,
        world,
        clock,
    };
    let api: Api<Pod> = Api::all(client);
    let mut seen: HashSet<String> = HashSet::new();
    // Each running pod's "SIGTERM": the grace period of its deletion, once it has one.
    let mut terms: HashMap<String, watch::Sender<Option<i64>>> = HashMap::new();
    let mut removing: HashSet<String> = HashSet::new();
    let mut stream = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .boxed();
    while let Some(item) = stream.next().await {
        let Ok(pod) = item else { continue };
        let uid = pod.uid().unwrap_or_else(|| {
            format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any())
        });
        if pod.metadata.deletion_timestamp.is_some() {
            // Graceful deletion (`pkg/kubelet/pod_workers.go` `UpdatePod`: a pod with a
            // deletionTimestamp is terminating; `kubelet.go` `SyncTerminatingPod` kills its
            // containers with the deletion's grace period).
            let grace = pod.metadata.deletion_grace_period_seconds.unwrap_or(0);
            match terms.get(&uid) {
                Some(tx) if !ended(&pod) => {
                    tx.send_replace(Some(grace));
                }
                _ if ended(&pod) || !seen.contains(&uid) => {
                    // `pkg/kubelet/status/status_manager.go` `syncPod`: once the terminal
                    // status is in the API (`canBeDeleted`: deletionTimestamp set, phase
                    // terminal), the pod is deleted with grace 0 and its UID as a
                    // precondition. A pod this kubelet never started has nothing to stop.
                    seen.insert(uid.clone());
                    terms.remove(&uid);
                    if removing.insert(uid.clone()) {
                        let client = ctx.client.clone();
                        tokio::spawn(async move { remove(&client, &pod).await });
                    }
                }
                // Not running here (a node no kubelet serves): it stays terminating.
                _ => {}
            }
            continue;
        }
        if ended(&pod) || !seen.insert(uid.clone()) {
            continue;
        }
        let (tx, rx) = watch::channel(None);
        terms.insert(uid, tx);
        let ctx = ctx.clone();
        tokio::spawn(async move {
            // A pod deleted meanwhile ends its task with a 404: nothing to report.
            let mut term = Term { rx, at: None };
            if let Err(e) = run_pod(&ctx, pod, &mut term).await {
                tracing::debug!(error = %e, "sim kubelet: pod task ended");
            }
        });
    }
}

/// The status manager's final deletion of a pod (grace 0, UID precondition: never a new pod
/// of the same name).
async fn remove(client: &Client, pod: &Pod) {
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: pod.uid(),
            resource_version: None,
        }),
        ..Default::default()
    };
    if let Err(e) = api.delete(&pod.name_any(), &dp).await {
        tracing::debug!(error = %e, pod = %pod.name_any(), "sim kubelet: pod not deleted");
    }
}

/// A pod's view of its deletion: SIGTERM when the deletion is seen, SIGKILL when its grace
/// period (which a later deletion may shorten) has passed since then
/// (`pkg/kubelet/kuberuntime/kuberuntime_container.go` `killContainer`: the runtime's
/// `StopContainer` with the grace period as timeout, i.e. SIGTERM, then SIGKILL).
struct Term {
    rx: watch::Receiver<Option<i64>>,
    /// Simulated time the SIGTERM was sent.
    at: Option<f64>,
}

impl Term {
    /// Whether the pod is being deleted (SIGTERM sent).
    fn sent(&mut self, ctx: &Ctx) -> bool {
        if self.at.is_none() && self.rx.borrow_and_update().is_some() {
            self.at = Some(ctx.world.now());
        }
        self.at.is_some()
    }

    /// Waits for SIGTERM.
    async fn sigterm(&mut self, ctx: &Ctx) {
        while !self.sent(ctx) {
            if self.rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Waits for SIGKILL: SIGTERM, then its grace period.
    async fn sigkill(&mut self, ctx: &Ctx) {
        self.sigterm(ctx).await;
        loop {
            let grace = self.rx.borrow_and_update().unwrap_or(0) as f64;
            let left = self.at.unwrap_or_default() + grace - ctx.world.now();
            if left <= 0.0 {
                return;
            }
            tokio::select! {
                _ = ctx.clock.sleep(left) => return,
                changed = self.rx.changed() => {
                    if changed.is_err() {
                        ctx.clock.sleep(left).await;
                        return;
                    }
                }
            }
        }
    }
}

/// Sleeps until simulated time `at` (forever for `None`).
async fn until(ctx: &Ctx, at: Option<f64>) {
    match at {
        Some(t) => ctx.clock.sleep((t - ctx.world.now()).max(0.0)).await,
        None => std::future::pending().await,
    }
}

fn ended(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

fn now() -> String {
    crate::sim::store::now_rfc3339()
}

/// One Multus attachment of a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub name: String,
    pub namespace: String,
    pub interface: Option<String>,
    /// Static addresses (`ips`, CIDR form) for a static-IPAM network.
    pub ips: Vec<String>,
}

/// The pod's Multus attachments (`parsePodNetworkAnnotation`): a JSON list of
/// `NetworkSelectionElement`s, or `[ns/]name[@interface]` entries separated by commas.
pub fn attachments(pod_ns: &str, annotation: &str) -> Vec<Attachment> {
    let text = annotation.trim();
    if text.starts_with('[') {
        let list: Vec<Value> = serde_json::from_str(text).unwrap_or_default();
        return list
            .iter()
            .map(|e| {
                let s = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_string);
                Attachment {
                    name: s("name").unwrap_or_default(),
                    namespace: s("namespace").unwrap_or_else(|| pod_ns.to_string()),
                    interface: s("interface"),
                    ips: e
                        .get("ips")
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(Value::as_str)
                                .map(str::to_string)
                                .collect()
                        })
                        .unwrap_or_default(),
                }
            })
            .collect();
    }
    text.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            let (net, iface) = t
                .split_once('@')
                .map_or((t, None), |(n, i)| (n, Some(i.to_string())));
            let (ns, name) = net.split_once('/').unwrap_or((pod_ns, net));
            Attachment {
                name: name.to_string(),
                namespace: ns.to_string(),
                interface: iface,
                ips: Vec::new(),
            }
        })
        .collect()
}

/// An attachment as its NAD's CNI config makes it.
struct Wire {
    attachment: Attachment,
    /// The interface name in the pod (`net1`, `net2`, … unless named).
    interface: String,
    vlan: Option<u16>,
}

/// A status patch of the pod.
fn status(v: Value) -> Patch<Value> {
    Patch::Merge(json!({ "status": v }))
}

fn condition(kind: &str, ok: bool, reason: Option<&str>) -> Value {
    let mut c = json!({ "type": kind, "status": if ok { "True" } else { "False" },
                        "lastTransitionTime": now() });
    if let Some(r) = reason {
        c["reason"] = json!(r);
    }
    c
}

async fn run_pod(ctx: &Ctx, pod: Pod, term: &mut Term) -> Result<(), kube::Error> {
    let ns = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let uid = pod.uid().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let pp = PatchParams::default();
    let spec = serde_json::to_value(&pod.spec).unwrap_or(Value::Null);
    let nodes: Vec<String> = Api::<Node>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .map(|n| n.name_any())
        .collect();
    let pinned = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .filter(|n| !n.is_empty());
    let node = match pinned {
        Some(n) => n,
        None => {
            let fit: Vec<&str> = nodes
                .iter()
                .map(String::as_str)
                .filter(|n| placement::allowed(&spec, n))
                .collect();
            let Some(n) = placement::pick(ctx.scenario.seed, &name, &fit) else {
                // `schedule_one.go`: the pod stays Pending, PodScheduled False.
                let total = nodes.len();
                let mut c = condition("PodScheduled", false, Some("Unschedulable"));
                c["message"] = json!(format!(
                    "0/{total} nodes are available: {total} node(s) didn't match Pod's node affinity/selector. preemption: 0/{total} nodes are available: {total} Preemption is not helpful for scheduling."
                ));
                api.patch_status(&name, &pp, &status(json!({ "conditions": [c] })))
                    .await?;
                return Ok(());
            };
            // The scheduler binds through `pods/binding`; the sim serves no binding
            // subresource, so the bind is a merge patch of `spec.nodeName`.
            api.patch(
                &name,
                &pp,
                &Patch::Merge(json!({ "spec": { "nodeName": n } })),
            )
            .await?;
            n.to_string()
        }
    };
    // Pinned to a node that does not exist: no kubelet ever runs it.
    if !nodes.contains(&node) {
        return Ok(());
    }
    let start_time = now();
    let deadline = pod
        .spec
        .as_ref()
        .and_then(|s| s.active_deadline_seconds)
        .map(|d| d as f64);
    let container = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .cloned()
        .unwrap_or_default();
    let cstatus = |state: Value, ready: bool, started: bool| {
        json!([{ "name": container.name, "image": container.image.clone().unwrap_or_default(),
                 "imageID": "", "restartCount": 0, "ready": ready, "started": started,
                 "state": state }])
    };
    let scheduled = condition("PodScheduled", true, None);
    api.patch_status(
        &name,
        &pp,
        &status(json!({
            "phase": "Pending", "startTime": start_time,
            "conditions": [
                condition("Initialized", true, None),
                condition("Ready", false, Some("ContainersNotReady")),
                condition("ContainersReady", false, Some("ContainersNotReady")),
                scheduled,
            ],
            "containerStatuses": cstatus(json!({ "waiting": { "reason": "ContainerCreating" } }), false, false),
        })),
    )
    .await?;

    // The sandbox: every Multus attachment through its NAD's CNI plugin.
    let annotation = pod
        .annotations()
        .get(NETWORKS_ANNOTATION)
        .cloned()
        .unwrap_or_default();
    let mut wires = Vec::new();
    let mut sandbox_error = None;
    for (i, a) in attachments(&ns, &annotation).into_iter().enumerate() {
        let nads: Api<NetworkAttachmentDefinition> =
            Api::namespaced(ctx.client.clone(), &a.namespace);
        let delegate_err = |e: String| {
            format!(
                "Failed to create pod sandbox: rpc error: code = Unknown desc = failed to create pod network sandbox k8s_{name}_{ns}_{uid}_0: error adding pod {ns}_{name} to CNI network \"multus-cni-network\": plugin type=\"multus-shim\" name=\"multus-cni-network\" failed (add): [{ns}/{name}/{uid}:{}]: error adding container to network \"{}\": {e}",
                a.name, a.name
            )
        };
        let Some(nad) = nads.get_opt(&a.name).await? else {
            sandbox_error = Some(format!(
                "Failed to create pod sandbox: rpc error: code = Unknown desc = failed to create pod network sandbox k8s_{name}_{ns}_{uid}_0: error adding pod {ns}_{name} to CNI network \"multus-cni-network\": plugin type=\"multus-shim\" name=\"multus-cni-network\" failed (add): Multus: [{ns}/{name}/{uid}]: error loading k8s delegates k8s args: TryLoadPodDelegates: error in getting k8s network for pod: GetNetworkDelegates: failed getting the delegate: getKubernetesDelegate: cannot find a network-attachment-definition ({}) in namespace ({}): network-attachment-definitions.k8s.cni.cncf.io \"{}\" not found",
                a.name, a.namespace, a.name
            ));
            break;
        };
        let cfg: Value = serde_json::from_str(&nad.spec.config).unwrap_or(Value::Null);
        let plugin = cfg
            .get("plugins")
            .and_then(Value::as_array)
            .and_then(|p| p.first())
            .unwrap_or(&cfg);
        if plugin.get("type").and_then(Value::as_str) == Some("bridge")
            && ctx.scenario.is_bridgeless(&node)
        {
            // bridge.go `NetConf.BrName` defaults to `cni0`.
            let br = plugin
                .get("bridge")
                .and_then(Value::as_str)
                .unwrap_or("cni0");
            sandbox_error = Some(delegate_err(format!(
                "could not lookup \"{br}\": Link not found"
            )));
            break;
        }
        wires.push(Wire {
            interface: a
                .interface
                .clone()
                .unwrap_or_else(|| format!("net{}", i + 1)),
            vlan: cni_vlan(&cfg),
            attachment: a,
        });
    }
    if let Some(message) = sandbox_error {
        api.patch_status(
            &name,
            &pp,
            &status(json!({ "containerStatuses": cstatus(
                json!({ "waiting": { "reason": "ContainerCreating", "message": message } }),
                false, false) })),
        )
        .await?;
        // The kubelet retries the sandbox until the deadline ends the pod, or its deletion.
        // (The deadline counts from here: see the probes' accounting below.)
        let from = ctx.world.now();
        return until_deadline(ctx, &api, (&name, &uid), from, deadline, None, term).await;
    }
    if term.sent(ctx) {
        // Deleted before its container started: nothing to stop, nothing to report.
        remove(&ctx.client, &pod).await;
        return Ok(());
    }

    let running_since = now();
    let h = name
        .bytes()
        .chain(ns.bytes())
        .fold(17u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    let pod_ip = format!("10.244.{}.{}", (h >> 8) % 250 + 1, h % 250 + 2);
    api.patch_status(
        &name,
        &pp,
        &status(json!({
            "phase": "Running", "podIP": pod_ip, "podIPs": [{ "ip": pod_ip }],
            "conditions": [
                condition("Initialized", true, None),
                condition("Ready", true, None),
                condition("ContainersReady", true, None),
                condition("PodScheduled", true, None),
            ],
            "containerStatuses": cstatus(json!({ "running": { "startedAt": running_since } }), true, true),
        })),
    )
    .await?;

    let args: Vec<String> = container.args.clone().unwrap_or_default();
    if args.first().map(String::as_str) != Some("probe") {
        // Not `wavelift probe`: it runs until deleted or its deadline.
        return until_deadline(
            ctx,
            &api,
            (&name, &uid),
            ctx.world.now(),
            deadline,
            Some(&running_since),
            term,
        )
        .await;
    }
    let terminated = |code: i32, reason: &str, message: String| {
        cstatus(
            json!({ "terminated": { "exitCode": code, "reason": reason, "message": message,
                                    "startedAt": running_since, "finishedAt": now() } }),
            false,
            false,
        )
    };
    let done = |phase: &str, statuses: Value| {
        status(json!({
            "phase": phase,
            "conditions": [
                condition("Initialized", true, Some("PodCompleted")),
                condition("Ready", false, Some("PodCompleted")),
                condition("ContainersReady", false, Some("PodCompleted")),
                condition("PodScheduled", true, None),
            ],
            "containerStatuses": statuses,
        }))
    };
    let req = match ProbeRequest::from_args(&args) {
        Ok(r) => r,
        Err(why) => {
            // clap refuses the arguments: exit 2 before any result is written.
            let st = terminated(2, "Error", format!("error: {why}"));
            api.patch_status(&name, &pp, &done("Failed", st)).await?;
            return Ok(());
        }
    };
    let iface = args
        .windows(2)
        .find(|w| w[0] == "--interface")
        .map_or("net1".to_string(), |w| w[1].clone());
    let wire = wires.iter().find(|w| w.interface == iface);
    let plan = ProbeRun {
        ctx,
        node: &node,
        iface: &iface,
        wire,
    };
    let seconds = plan.seconds(&req);
    // The deadline counts the pod's modelled activity (the sandbox, the probes, the watch)
    // from here, not the wall time the simulated controllers took to get here: their API
    // round trips, milliseconds like a real kubelet's, would otherwise count × the speed
    // (30 ms at 4000× is 2 simulated minutes, a whole probe pod's deadline).
    let deadline_at = deadline.map(|d| ctx.world.now() + d);
    let ids = (name.as_str(), uid.as_str());
    // The ARP, ICMP and TCP probes. `wavelift` is the image's entrypoint, so PID 1 of its
    // PID namespace: a SIGTERM it has no handler for is ignored (signal(7), and
    // pid_namespaces(7): init only gets the signals it handles), so until the watch
    // installs its handler the deletion has to wait for SIGKILL.
    tokio::select! {
        _ = ctx.clock.sleep(seconds) => {}
        _ = term.sigkill(ctx) => return killed(&api, ids, Some(&running_since), None).await,
        _ = until(ctx, deadline_at) => {
            return killed(&api, ids, Some(&running_since), Some(DEADLINE_REASON)).await;
        }
    }
    if !alive(&api, &name, &uid).await? {
        return Ok(());
    }
    let mut result = plan.result(&req);
    if let Some(ip) = req.watch {
        let limit = req
            .watch_for
            .map_or(WATCH_FOR_DEFAULT_SECONDS, |d| d.as_secs_f64());
        // What is left of the deadline after the probes (same accounting as above).
        let deadline_at = deadline.map(|d| ctx.world.now() + (d - seconds).max(0.0));
        match plan.watch(ip, limit, deadline_at, term).await {
            WatchEnd::Done(entry) => result.r.push(entry),
            WatchEnd::Killed => return killed(&api, ids, Some(&running_since), None).await,
            WatchEnd::Deadline => {
                return killed(&api, ids, Some(&running_since), Some(DEADLINE_REASON)).await;
            }
        }
        if !alive(&api, &name, &uid).await? {
            return Ok(());
        }
    }
    let st = terminated(0, "Completed", encode(&result));
    api.patch_status(&name, &pp, &done("Succeeded", st)).await?;
    Ok(())
}

/// Whether the pod `name` is still the one with `uid`.
async fn alive(api: &Api<Pod>, name: &str, uid: &str) -> Result<bool, kube::Error> {
    Ok(api
        .get_opt(name)
        .await?
        .is_some_and(|p| p.uid().as_deref() == Some(uid) && !ended(&p)))
}

/// Waits for the pod's deadline (forever without one) and fails it
/// (`active_deadline.go`), or for its deletion: a running container is killed (its
/// program is not known to handle SIGTERM: SIGKILL after the grace period); a container
/// that never started leaves nothing to report and the pod is removed at once.
#[allow(clippy::too_many_arguments)]
async fn until_deadline(
    ctx: &Ctx,
    api: &Api<Pod>,
    ids: (&str, &str),
    started: f64,
    deadline: Option<f64>,
    running_since: Option<&str>,
    term: &mut Term,
) -> Result<(), kube::Error> {
    let deadline_at = deadline.map(|d| started + d);
    match running_since {
        None => tokio::select! {
            _ = until(ctx, deadline_at) => killed(api, ids, None, Some(DEADLINE_REASON)).await,
            _ = term.sigterm(ctx) => {
                if let Some(pod) = api.get_opt(ids.0).await? {
                    if pod.uid().as_deref() == Some(ids.1) {
                        remove(&ctx.client, &pod).await;
                    }
                }
                Ok(())
            }
        },
        Some(_) => tokio::select! {
            _ = until(ctx, deadline_at) => {
                killed(api, ids, running_since, Some(DEADLINE_REASON)).await
            }
            _ = term.sigkill(ctx) => killed(api, ids, running_since, None).await,
        },
    }
}

/// Ends the pod `Failed`: its running container (if it started) killed by SIGKILL, exit
/// 137, no termination message (the program never wrote it). `reason`: the pod's reason
/// (`DeadlineExceeded`, with `active_deadline.go`'s message), or `None` for a deletion
/// whose grace period ran out (`kubelet_pods.go` `getPhase`: a terminal pod with a
/// container that exited non-zero is `Failed`).
async fn killed(
    api: &Api<Pod>,
    (name, uid): (&str, &str),
    running_since: Option<&str>,
    reason: Option<&str>,
) -> Result<(), kube::Error> {
    let current = api.get_opt(name).await?;
    let Some(pod) = current.filter(|p| p.uid().as_deref() == Some(uid) && !ended(p)) else {
        return Ok(());
    };
    let mut st = json!({ "phase": "Failed" });
    if let Some(r) = reason {
        st["reason"] = json!(r);
        st["message"] = json!(DEADLINE_MESSAGE);
    }
    if let Some(since) = running_since {
        let mut statuses = serde_json::to_value(
            pod.status
                .as_ref()
                .and_then(|s| s.container_statuses.clone())
                .unwrap_or_default(),
        )
        .unwrap_or(Value::Null);
        if let Some(c) = statuses.get_mut(0) {
            // The kubelet kills the container (SIGKILL after the grace period).
            c["state"] = json!({ "terminated": { "exitCode": EXIT_SIGKILL, "reason": "Error",
                                                 "startedAt": since, "finishedAt": now() } });
            c["ready"] = json!(false);
            c["started"] = json!(false);
        }
        st["containerStatuses"] = statuses;
    }
    api.patch_status(name, &PatchParams::default(), &status(st))
        .await?;
    Ok(())
}

/// How `wavelift probe --watch` ended.
enum WatchEnd {
    /// SIGTERM (handled) or `--watch-for`: the `watch` entry, and the program exits 0.
    Done(PodProbe),
    /// SIGKILL: a SIGTERM that came before the handler was lost.
    Killed,
    /// The pod's active deadline.
    Deadline,
}

/// One run of `wavelift probe` on `node`, from interface `iface`.
struct ProbeRun<'a> {
    ctx: &'a Ctx,
    node: &'a str,
    iface: &'a str,
    wire: Option<&'a Wire>,
}

impl ProbeRun<'_> {
    /// The VLAN the interface is on, when the node's trunk carries it (`None`: cut off).
    fn vlan(&self) -> Option<Option<u16>> {
        let w = self.wire?;
        self.ctx
            .scenario
            .node_carries(self.node, w.vlan)
            .then_some(w.vlan)
    }

    /// Whether the interface has an address (a static-IPAM attachment's `ips`).
    fn has_address(&self) -> bool {
        self.wire.is_some_and(|w| !w.attachment.ips.is_empty())
    }

    /// The address the probes leave from: the interface's own (the network's `probe_ip`
    /// the pod was given, CIDR form in the attachment), which the target's policies see.
    /// Only called once [`Self::has_address`] holds; the workstation address otherwise.
    fn source(&self) -> std::net::IpAddr {
        self.wire
            .and_then(|w| w.attachment.ips.first())
            .and_then(|a| a.split('/').next())
            .and_then(|a| a.trim().parse().ok())
            .unwrap_or(crate::sim::WORKSTATION_IP)
    }

    /// Whether `ip` answers from the interface's VLAN.
    fn answers(&self, ip: &str) -> bool {
        self.vlan()
            .is_some_and(|v| !self.ctx.world.arp(ip, v).is_empty())
    }

    /// Simulated seconds the program runs: the ARP probes in parallel with the ICMP and TCP
    /// probes one after another (each answered at once, or after its timeout).
    fn seconds(&self, req: &ProbeRequest) -> f64 {
        let arp = if req.arp.is_empty() && req.gateway.is_empty() {
            0.5
        } else {
            ARP_SECONDS
        };
        let reach: f64 = req
            .icmp
            .iter()
            .map(|ip| ip.to_string())
            .chain(req.tcp.iter().map(|a| a.ip().to_string()))
            .map(|ip| {
                if self.has_address() && self.answers(&ip) {
                    0.01
                } else {
                    REACH_TIMEOUT_SECONDS
                }
            })
            .sum();
        arp.max(reach + 0.5)
    }

    fn arp(&self, kind: &str, ip: std::net::Ipv4Addr) -> PodProbe {
        let t = ip.to_string();
        if self.wire.is_none() {
            // `arp::probe`'s `if_nametoindex` fails: ENODEV.
            return PodProbe {
                k: kind.into(),
                t,
                e: Some(format!(
                    "interface {}: No such device (os error 19)",
                    self.iface
                )),
                ..Default::default()
            };
        }
        let m = match self.vlan() {
            Some(v) => self.ctx.world.arp(&t, v),
            None => Vec::new(),
        };
        PodProbe {
            k: kind.into(),
            t,
            m,
            ..Default::default()
        }
    }

    /// An ICMP or TCP probe (`cli/probe.rs` `reach`): `ok`, `ms`, and `e` when it failed.
    fn reach(&self, kind: &str, ip: std::net::IpAddr, port: Option<u16>) -> PodProbe {
        let t = port.map_or_else(|| ip.to_string(), |p| format!("{ip}:{p}"));
        let timeout = format!("{:.1} ms", REACH_TIMEOUT_SECONDS * 1000.0);
        let silent = match port {
            None => format!("no echo reply within {timeout}"),
            Some(_) => format!("no answer within {timeout}"),
        };
        let fail = |e: String, ms: Option<u64>| PodProbe {
            k: kind.into(),
            t: t.clone(),
            ok: Some(false),
            ms,
            e: Some(e),
            ..Default::default()
        };
        if !self.has_address() {
            // No address on the interface: the request leaves through the pod network,
            // where nothing on the VLAN answers.
            return fail(
                format!(
                    "{silent} ({} has no address: the network has no probe_ip)",
                    self.iface
                ),
                None,
            );
        }
        let ip_text = ip.to_string();
        if !self.answers(&ip_text) {
            return fail(silent, None);
        }
        let answer = self.ctx.world.probe_from(&ip_text, port, self.source());
        match answer.result {
            // Dropped by the target's policy: nothing comes back.
            _ if !answer.blocked_by.is_empty() => fail(silent, None),
            "reachable" | "conflict" => PodProbe {
                k: kind.into(),
                t,
                ok: Some(true),
                ms: Some(1),
                ..Default::default()
            },
            _ if port.is_some() && !answer.holders.is_empty() => fail(
                "connection refused (host answered, port closed)".into(),
                Some(1),
            ),
            _ => fail(silent, None),
        }
    }

    /// One ICMP echo of the continuous probe: answered when the interface has an address
    /// and `ip` answers from its VLAN (as [`Self::reach`] decides it).
    fn echo(&self, ip: &str) -> bool {
        self.has_address()
            && self.answers(ip)
            && matches!(
                self.ctx.world.probe_from(ip, None, self.source()).result,
                "reachable" | "conflict"
            )
    }

    /// `wavelift probe --watch IP` (`cli/probe.rs` `watch`, `checks/continuous.rs` `run`):
    /// an echo every 100 ms of simulated time, from its start until SIGTERM (its handler
    /// is installed as it starts: a SIGTERM that came before was ignored, and only SIGKILL
    /// ends it), `limit` simulated seconds, or the pod's deadline. The world is sampled
    /// every 100 ms of simulated time but never more often than every millisecond of real
    /// time; every 100 ms slot that passed since the last sample counts with that
    /// sample's outcome (sent, lost, and the longest gap as [`Tracker`] measures it).
    async fn watch(
        &self,
        ip: std::net::IpAddr,
        limit: f64,
        deadline_at: Option<f64>,
        term: &mut Term,
    ) -> WatchEnd {
        let target = ip.to_string();
        let handled = term.at.is_none();
        let start = self.ctx.world.now();
        let step_real = (WATCH_INTERVAL_MS as f64 / 1000.0 / self.ctx.clock.speed).max(0.001);
        let limit_ms = (limit * 1000.0) as u64;
        // Probes sent by `elapsed_ms`: one at 0, 100, 200 ms, … before the limit.
        let sent_by = |elapsed_ms: u64| {
            (elapsed_ms / WATCH_INTERVAL_MS + 1).min(limit_ms.div_ceil(WATCH_INTERVAL_MS))
        };
        let mut tracker = Tracker::default();
        let mut slots = 0u64;
        let mut stopping = false;
        loop {
            let elapsed_ms = (((self.ctx.world.now() - start) * 1000.0) as u64).min(limit_ms);
            let ok = self.echo(&target);
            let due = sent_by(elapsed_ms);
            for slot in slots..due {
                tracker.record(Duration::from_millis(slot * WATCH_INTERVAL_MS), ok);
            }
            slots = slots.max(due);
            if stopping || elapsed_ms >= limit_ms {
                let s = tracker.summary(Duration::from_millis(elapsed_ms));
                return WatchEnd::Done(PodProbe {
                    k: "watch".into(),
                    t: target,
                    n: Some(s.sent),
                    lost: Some(s.lost),
                    gap: s.longest_gap.map(|g| g.as_millis() as u64),
                    // The real program gives no reason; without an address every echo
                    // leaves through the pod network, and the entry says so.
                    e: (!self.has_address()).then(|| {
                        format!(
                            "no echo reply: {} has no address: the network has no probe_ip",
                            self.iface
                        )
                    }),
                    ..Default::default()
                });
            }
            tokio::select! {
                _ = self.ctx.clock.sleep_real(step_real) => {}
                signal = async {
                    if handled {
                        term.sigterm(self.ctx).await;
                        false
                    } else {
                        term.sigkill(self.ctx).await;
                        true
                    }
                } => {
                    if signal {
                        return WatchEnd::Killed;
                    }
                    stopping = true;
                }
                _ = until(self.ctx, deadline_at) => return WatchEnd::Deadline,
            }
        }
    }

    /// The result document, in `cli/probe.rs`'s order: ARP entries, then ICMP, then TCP.
    fn result(&self, req: &ProbeRequest) -> PodResult {
        let mut r: Vec<PodProbe> = req
            .arp
            .iter()
            .map(|ip| self.arp("arp", *ip))
            .chain(req.gateway.iter().map(|ip| self.arp("gateway", *ip)))
            .collect();
        r.extend(req.icmp.iter().map(|ip| self.reach("icmp", *ip, None)));
        r.extend(
            req.tcp
                .iter()
                .map(|a| self.reach("tcp", a.ip(), Some(a.port()))),
        );
        PodResult { v: 1, r }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multus_annotations_in_both_forms() {
        let a = attachments(
            "mig",
            r#"[{"name":"vlan-210","namespace":"net","interface":"net1","ips":["192.0.2.250/24"]}]"#,
        );
        assert_eq!(a[0].namespace, "net");
        assert_eq!(a[0].interface.as_deref(), Some("net1"));
        assert_eq!(a[0].ips, vec!["192.0.2.250/24"]);
        let b = attachments("mig", "vlan-210, other/vlan-211@eth9");
        assert_eq!(b[0].namespace, "mig");
        assert_eq!(b[1].namespace, "other");
        assert_eq!(b[1].name, "vlan-211");
        assert_eq!(b[1].interface.as_deref(), Some("eth9"));
    }
}

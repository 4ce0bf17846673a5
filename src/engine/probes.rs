//! In-cluster probes (`checks_from = "cluster"`, issue 14): what the engine asks probe pods
//! on the VMs' VLANs, and what their answers mean.
//!
//! - **Pod Security**, once per run in preflight: a dry-run create of a probe pod; a refusal
//!   names the namespace's `pod-security.kubernetes.io/enforce` level and what to change.
//! - **Per-node L2 proof**, once per network in preflight: one pod pinned to each
//!   schedulable node ARPs the gateway (or `l2_probe_target`). A node where nobody answers
//!   does not get the VLAN; a pod that never starts there cannot attach (for a bridge
//!   network: the bridge is missing). Those nodes are named, and the VMs kept off them
//!   ([`ClusterProbes::avoided_nodes`]); with `l2_path = "required"` preflight fails.
//! - **Duplicate-IP guard**: an ARP probe of the VM's IPs before the cutover; any answer
//!   names the MAC that still holds the IP.
//! - **Checks**: an ARP probe after boot (`ip-preserved`/`mac-preserved` need exactly the
//!   planned MAC), plus icmp and tcp from the pod when the network has a `probe_ip`.
//!
//! At most one probe pod per network per purpose runs at a time (the guard and the checks
//! of different VMs on one network take turns), plus the per-node proof's pods, one per
//! node and network, in preflight. Pods are deleted once their result is read; a run's
//! start and end delete any left over (a run killed while one ran).

use super::decide::IpGuard;
use super::events::{Emitter, EventKind, LogLevel};
use crate::checks::evaluate::{ArpAnswers, VmiInterface};
use crate::checks::probe::pod::{PodProbe, ProbeRequest};
use crate::checks::probe::{DnsQuery, Probe, ProbeFuture, Prober};
use crate::checks::runner::{RunSettings, VmiSource};
use crate::cluster::build;
use crate::cluster::labels;
use crate::cluster::probe_pod::{pod_name, probe_pod, ProbeSpec, PROBE_LABEL};
use crate::cluster::probe_run::{self, PodEnd};
use crate::cluster::resources::NetworkAttachmentDefinition;
use crate::plan::check::CheckKind;
use crate::plan::{ChecksFrom, L2Path, Network, NetworkModel, Plan, Provider, Vm};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::Client;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OnceCell, Semaphore, SemaphorePermit};

/// The label Pod Security admission reads (`k8s.io/pod-security-admission/api`).
pub const ENFORCE_LABEL: &str = "pod-security.kubernetes.io/enforce";

/// A probe pod's `activeDeadlineSeconds`: long enough for an image pull, then the kubelet
/// ends it (a pod that cannot attach fails by this deadline).
const POD_DEADLINE: Duration = Duration::from_secs(120);

/// How long the engine waits for a pod's end beyond its deadline (real time).
const WAIT_MARGIN: Duration = Duration::from_secs(60);

/// The per-node proof of one network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct L2Proof {
    /// Nodes the VLAN does not reach, each with the cause.
    pub bad_nodes: BTreeMap<String, String>,
    /// Why the proof was not made (no target, dry run, …).
    pub skipped: Option<String>,
    /// Nodes proved.
    pub proved: usize,
}

/// What one VM's check pods saw, per planned IP.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterEvidence {
    /// IP → every MAC that answered its ARP probe (`Err`: why the probe could not be made).
    pub arp: ArpAnswers,
    /// icmp and tcp entries by target (`192.0.2.15`, `192.0.2.15:5432`).
    pub reach: BTreeMap<String, PodProbe>,
}

/// The run's probe pods.
pub struct ClusterProbes {
    plan: Arc<Plan>,
    client: Client,
    dry_run: bool,
    events: Emitter,
    /// One pod per network per purpose at a time.
    turns: HashMap<(String, &'static str), Semaphore>,
    l2: HashMap<String, OnceCell<L2Proof>>,
    pod_security: OnceCell<Result<(), String>>,
}

impl ClusterProbes {
    /// `None` unless the plan checks from the cluster.
    pub fn for_plan(
        plan: Arc<Plan>,
        client: Client,
        dry_run: bool,
        events: Emitter,
    ) -> Option<Arc<Self>> {
        if plan.meta.checks_from.value != ChecksFrom::Cluster {
            return None;
        }
        let mut turns = HashMap::new();
        let mut l2 = HashMap::new();
        for n in &plan.networks {
            for purpose in ["guard", "checks"] {
                turns.insert((n.name.value.clone(), purpose), Semaphore::new(1));
            }
            l2.insert(n.name.value.clone(), OnceCell::new());
        }
        Some(Arc::new(ClusterProbes {
            plan,
            client,
            dry_run,
            events,
            turns,
            l2,
            pod_security: OnceCell::new(),
        }))
    }

    fn ns(&self) -> &str {
        self.plan.meta.namespace.as_str()
    }

    /// The label selector of this plan's probe pods.
    pub fn selector(plan: &Plan) -> String {
        format!(
            "{},{PROBE_LABEL}",
            labels::plan_selector(plan.meta.name.as_str())
        )
    }

    /// Deletes the plan's probe pods left by a run that was killed while they ran (at the
    /// start of a run) or by this one (at its end); says how many there were.
    pub async fn sweep(&self, when: &str) {
        if self.dry_run {
            return;
        }
        match probe_run::sweep(&self.client, self.ns(), &Self::selector(&self.plan)).await {
            Ok(0) => {}
            Ok(n) => {
                self.events
                    .log(
                        LogLevel::Info,
                        format!("{when}: deleted {n} probe pod(s) left over"),
                    )
                    .await
            }
            Err(e) => {
                self.events
                    .log(LogLevel::Warn, format!("{when}: probe pods: {e}"))
                    .await
            }
        }
    }

    fn spec(&self, purpose: &str, subject: &str, network: &Network) -> ProbeSpec {
        ProbeSpec {
            name: pod_name(purpose, subject),
            network: network.name.value.clone(),
            ips: vec![],
            node: None,
            // The VLAN does not reach these: a probe there would see nothing.
            avoid: self
                .l2
                .get(network.name.as_str())
                .and_then(|c| c.get())
                .map(|p| p.bad_nodes.keys().cloned().collect())
                .unwrap_or_default(),
            purpose: purpose.to_string(),
            args: vec![],
            deadline: POD_DEADLINE,
        }
    }

    /// Runs one probe pod for `vm` (journalled under it: its creation, then its deletion
    /// with how it ended).
    async fn run(&self, vm: &Vm, spec: &ProbeSpec) -> Result<PodEnd, String> {
        let Some(pod) = probe_pod(&self.plan, spec) else {
            return Err("the plan has no probe_image".into());
        };
        let created = probe_run::create(&self.client, &pod).await;
        let text = match &created {
            Ok(true) => "created".to_string(),
            Ok(false) => "exists already (a run killed while it ran): its result serves".into(),
            Err(e) => format!("error: {e}"),
        };
        self.journal(vm, "create", "Pod", &spec.name, text).await;
        created?;
        let end = probe_run::finish(
            &self.client,
            self.ns(),
            &spec.name,
            POD_DEADLINE + WAIT_MARGIN,
        )
        .await;
        let result = match &end {
            Ok(PodEnd::Result(_)) => "deleted (result read)".to_string(),
            Ok(PodEnd::NotStarted(why)) => format!("deleted (it never started: {why})"),
            Ok(PodEnd::Failed(why)) => format!("deleted (it failed: {why})"),
            Err(e) => format!("deleted (no result: {e})"),
        };
        self.journal(vm, "delete", "Pod", &spec.name, result).await;
        end
    }

    async fn journal(&self, vm: &Vm, verb: &str, kind: &str, name: &str, result: String) {
        self.events
            .vm(
                vm,
                EventKind::Mutation {
                    verb: verb.into(),
                    kind: kind.into(),
                    name: name.into(),
                    dry_run: self.dry_run,
                    result,
                },
            )
            .await;
    }

    /// Applies the network's attachments (its NAD and probe NAD) before its first probe
    /// pod: the pods attach to them.
    async fn apply_networks(&self, vm: &Vm, net: &Network) -> Result<(), String> {
        let api: Api<NetworkAttachmentDefinition> = Api::namespaced(self.client.clone(), self.ns());
        let pp = PatchParams::apply(labels::FIELD_MANAGER).force();
        for nad in build::network_attachments_of(&self.plan, net) {
            let name = nad.metadata.name.clone().unwrap_or_default();
            let patch = Patch::Apply(&nad);
            let r = crate::cluster::call::call("apply NetworkAttachmentDefinition", || {
                api.patch(&name, &pp, &patch)
            })
            .await;
            let text = match &r {
                Ok(_) => "applied (for the per-node L2 proof)".to_string(),
                Err(e) => format!("error: {e}"),
            };
            self.journal(vm, "apply", "NetworkAttachmentDefinition", &name, text)
                .await;
            r.map_err(|e| format!("apply NetworkAttachmentDefinition {name}: {e}"))?;
        }
        Ok(())
    }

    /// Pod Security, once per run: a dry-run create of a probe pod. `Err` names the
    /// namespace's enforce level and what to change.
    pub async fn pod_security(&self) -> Result<(), String> {
        self.pod_security
            .get_or_init(|| async { self.check_pod_security().await })
            .await
            .clone()
    }

    async fn check_pod_security(&self) -> Result<(), String> {
        let Some(net) = self.plan.networks.first() else {
            return Ok(());
        };
        let mut spec = self.spec("preflight", "pod-security", net);
        spec.args = ProbeRequest::default().to_args();
        let Some(pod) = probe_pod(&self.plan, &spec) else {
            return Err("checks_from = \"cluster\" needs [plan] probe_image".into());
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), self.ns());
        let dry = PostParams {
            dry_run: true,
            field_manager: Some(labels::FIELD_MANAGER.to_string()),
        };
        let e = match crate::cluster::call::call("dry-run probe Pod", || api.create(&dry, &pod))
            .await
        {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => return Ok(()),
            Err(e) => e,
        };
        let level = self.enforce_level().await;
        let why = match &e {
            kube::Error::Api(s) => s.message.clone(),
            e => e.to_string(),
        };
        Err(format!(
            "pod-security: a probe pod cannot be created in namespace {} ({why}); the namespace enforces Pod Security level `{level}`, and probe pods add NET_RAW, which only `privileged` allows: label the namespace `{ENFORCE_LABEL}=privileged` (or exempt wavelift's probe pods), or check from the workstation (`checks_from = \"workstation\"`)",
            self.ns()
        ))
    }

    async fn enforce_level(&self) -> String {
        let api: Api<Namespace> = Api::all(self.client.clone());
        match api.get_opt(self.ns()).await {
            Ok(Some(ns)) => ns
                .metadata
                .labels
                .and_then(|l| l.get(ENFORCE_LABEL).cloned())
                .unwrap_or_else(|| "privileged (no label)".into()),
            Ok(None) => "unknown (no such namespace)".into(),
            Err(e) => format!("unknown ({e})"),
        }
    }

    /// The per-node L2 proof of network `name`, made once per run (journalled under `vm`,
    /// the first VM whose preflight asks).
    pub async fn l2_proof(&self, vm: &Vm, name: &str) -> L2Proof {
        let Some(cell) = self.l2.get(name) else {
            return L2Proof::default();
        };
        cell.get_or_init(|| async {
            let proof = self.prove(vm, name).await;
            self.tell(name, &proof).await;
            proof
        })
        .await
        .clone()
    }

    /// The proofs made so far: nodes a VM on `vm`'s networks must avoid.
    pub fn avoided_nodes(&self, vm: &Vm) -> Vec<String> {
        let mut nodes: Vec<String> = vm
            .nics
            .iter()
            .filter_map(|n| self.l2.get(n.network.as_str()))
            .filter_map(|c| c.get())
            .flat_map(|p| p.bad_nodes.keys().cloned())
            .collect();
        nodes.sort();
        nodes.dedup();
        nodes
    }

    async fn prove(&self, vm: &Vm, name: &str) -> L2Proof {
        let Some(net) = self.plan.network(name) else {
            return L2Proof::default();
        };
        let target = net
            .l2_probe_target
            .as_ref()
            .or(net.gateway.as_ref())
            .map(|t| t.value);
        let Some(IpAddr::V4(target)) = target else {
            return L2Proof {
                skipped: Some(format!(
                    "network {name} has no IPv4 gateway or l2_probe_target: the per-node L2 proof is skipped"
                )),
                ..Default::default()
            };
        };
        if self.dry_run {
            return L2Proof {
                skipped: Some(
                    "a dry run creates no probe pods: the per-node L2 proof is skipped".into(),
                ),
                ..Default::default()
            };
        }
        let nodes = match self.schedulable_nodes().await {
            Ok(n) => n,
            Err(e) => {
                return L2Proof {
                    skipped: Some(format!(
                        "nodes cannot be listed ({e}): the per-node L2 proof is skipped"
                    )),
                    ..Default::default()
                }
            }
        };
        if let Err(e) = self.apply_networks(vm, net).await {
            return L2Proof {
                skipped: Some(format!("{e}: the per-node L2 proof is skipped")),
                ..Default::default()
            };
        }
        let runs = nodes.iter().map(|node| async move {
            let mut spec = self.spec("l2", &format!("{name}-{node}"), net);
            spec.node = Some(node.clone());
            spec.args = ProbeRequest {
                gateway: vec![target],
                ..Default::default()
            }
            .to_args();
            (node.clone(), self.run(vm, &spec).await)
        });
        let ends = futures::future::join_all(runs).await;
        let mut proof = L2Proof::default();
        for (node, end) in ends {
            let cause =
                match end {
                    Ok(PodEnd::Result(r)) => match r.r.iter().find(|p| p.k == "gateway") {
                        Some(p) if !p.m.is_empty() => None,
                        Some(p) if p.e.is_some() => Some(format!(
                            "the ARP probe of {target} could not be made: {}",
                            p.e.clone().unwrap_or_default()
                        )),
                        _ => Some(format!(
                        "no answer to an ARP probe of {target}: VLAN {} does not reach this node",
                        net.vlan.as_ref().map_or("-".into(), |v| v.value.to_string())
                    )),
                    },
                    Ok(PodEnd::NotStarted(why)) => Some(match (&net.provider.value, &net.bridge) {
                        (Provider::Bridge, Some(b)) => format!(
                        "the probe pod could not start ({why}): bridge {} is missing on this node",
                        b.value
                    ),
                        _ => format!("the probe pod could not attach to {name} ({why})"),
                    }),
                    Ok(PodEnd::Failed(why)) | Err(why) => {
                        Some(format!("the probe could not be made: {why}"))
                    }
                };
            match cause {
                Some(c) => {
                    proof.bad_nodes.insert(node, c);
                }
                None => proof.proved += 1,
            }
        }
        proof
    }

    async fn schedulable_nodes(&self) -> Result<Vec<String>, String> {
        let api: Api<Node> = Api::all(self.client.clone());
        let lp = ListParams::default();
        let list = crate::cluster::call::call("list Nodes", || api.list(&lp))
            .await
            .map_err(|e| e.to_string())?;
        Ok(list
            .items
            .into_iter()
            .filter(|n| n.spec.as_ref().and_then(|s| s.unschedulable) != Some(true))
            .filter_map(|n| n.metadata.name)
            .collect())
    }

    /// Says what a proof found, once per network.
    async fn tell(&self, name: &str, proof: &L2Proof) {
        let (level, text) = if let Some(why) = &proof.skipped {
            (LogLevel::Warn, why.clone())
        } else if proof.bad_nodes.is_empty() {
            (
                LogLevel::Info,
                format!(
                    "l2-path: network {name} reaches all {} schedulable nodes (ARP from a probe pod on each)",
                    proof.proved
                ),
            )
        } else {
            (
                LogLevel::Warn,
                format!(
                    "l2-path: network {name} does not reach {}; its VMs are kept off them (node affinity NotIn)",
                    describe_nodes(proof)
                ),
            )
        };
        self.events.log(level, text).await;
    }

    /// Whether a failing proof of `net` stops the wave (`l2_path = "required"`), and the
    /// problem text.
    pub fn required_problem(net: &Network, proof: &L2Proof) -> Option<String> {
        (net.l2_path == L2Path::Required && !proof.bad_nodes.is_empty()).then(|| {
            format!(
                "l2-path: VLAN of network {} does not reach {} (l2_path = \"required\")",
                net.name.value,
                describe_nodes(proof)
            )
        })
    }

    /// The VM's L2 IPs grouped by network.
    fn l2_ips<'a>(&self, vm: &'a Vm) -> Vec<(&'a str, Vec<Ipv4Addr>)> {
        if self.plan.model_of(vm) != NetworkModel::L2 {
            return vec![];
        }
        let mut by_net: BTreeMap<&str, Vec<Ipv4Addr>> = BTreeMap::new();
        for nic in &vm.nics {
            if let Some(IpAddr::V4(ip)) = nic.ip.as_ref().map(|i| i.value) {
                by_net.entry(nic.network.as_str()).or_default().push(ip);
            }
        }
        by_net.into_iter().collect()
    }

    /// The duplicate-IP guard from the VLAN: `None` when the VM has no L2 IPv4 address (the
    /// workstation's guard applies).
    pub async fn guard(&self, vm: &Vm) -> Option<IpGuard> {
        let groups = self.l2_ips(vm);
        if groups.is_empty() {
            return None;
        }
        for (name, ips) in groups {
            let Some(net) = self.plan.network(name) else {
                continue;
            };
            let mut spec = self.spec("guard", vm.name.as_str(), net);
            spec.args = ProbeRequest {
                arp: ips.clone(),
                ..Default::default()
            }
            .to_args();
            let _turn = self.turn(name, "guard").await;
            let end = self.run(vm, &spec).await;
            let r = match end {
                Ok(PodEnd::Result(r)) => r,
                Ok(PodEnd::NotStarted(why)) | Ok(PodEnd::Failed(why)) | Err(why) => {
                    return Some(IpGuard::Answering(format!(
                        "the probe pod on {name} gave no answer ({why}): the IP cannot be proved free"
                    )))
                }
            };
            for p in r.r.iter().filter(|p| p.k == "arp") {
                if let Some(e) = &p.e {
                    return Some(IpGuard::Answering(format!(
                        "the ARP probe of {} on {name} could not be made ({e}): the IP cannot be proved free",
                        p.t
                    )));
                }
                if !p.m.is_empty() {
                    return Some(IpGuard::Answering(format!(
                        "{} is still held on {name} by MAC {} (ARP from a probe pod)",
                        p.t,
                        p.m.join(", ")
                    )));
                }
            }
        }
        Some(IpGuard::Silent)
    }

    /// One pod per L2 network of the VM after boot: ARP of its IPs, and icmp/tcp to them
    /// from the network's `probe_ip` when it has one.
    pub async fn evidence(&self, vm: &Vm, ports: &[u16], icmp: bool) -> ClusterEvidence {
        let mut ev = ClusterEvidence::default();
        for (name, ips) in self.l2_ips(vm) {
            let Some(net) = self.plan.network(name) else {
                continue;
            };
            let mut spec = self.spec("checks", vm.name.as_str(), net);
            let mut req = ProbeRequest {
                arp: ips.clone(),
                ..Default::default()
            };
            if let (Some(pip), Some(cidr)) = (&net.probe_ip, &net.cidr) {
                spec.network = build::probe_network_name(name);
                spec.ips = vec![format!("{}/{}", pip.value, cidr.value.prefix_len())];
                for ip in &ips {
                    if icmp {
                        req.icmp.push(IpAddr::V4(*ip));
                    }
                    req.tcp
                        .extend(ports.iter().map(|p| SocketAddr::new(IpAddr::V4(*ip), *p)));
                }
            }
            spec.args = req.to_args();
            let _turn = self.turn(name, "checks").await;
            match self.run(vm, &spec).await {
                Ok(PodEnd::Result(r)) => {
                    for p in r.r {
                        match p.k.as_str() {
                            "arp" => {
                                if let Ok(ip) = p.t.parse::<IpAddr>() {
                                    let v = match &p.e {
                                        Some(e) => Err(e.clone()),
                                        None => Ok(p.m.clone()),
                                    };
                                    ev.arp.insert(ip, v);
                                }
                            }
                            _ => {
                                ev.reach.insert(p.t.clone(), p);
                            }
                        }
                    }
                }
                Ok(PodEnd::NotStarted(why)) | Ok(PodEnd::Failed(why)) | Err(why) => {
                    for ip in ips {
                        ev.arp.insert(
                            IpAddr::V4(ip),
                            Err(format!("the probe pod on {name} gave no answer: {why}")),
                        );
                    }
                }
            }
        }
        ev
    }

    /// [`Self::evidence`] for the VM's checks, gathered again while an IP gets no ARP
    /// answer (the guest may still be bringing its address up), at most `retries + 1`
    /// times.
    pub async fn checked_evidence(&self, vm: &Vm, settings: &RunSettings) -> ClusterEvidence {
        let checks = self.plan.checks_for(vm);
        let ports: Vec<u16> = checks
            .iter()
            .filter_map(|c| match c.kind {
                CheckKind::Tcp { port } => Some(port),
                _ => None,
            })
            .collect();
        let icmp = checks.iter().any(|c| c.kind == CheckKind::Icmp);
        let mut ev = self.evidence(vm, &ports, icmp).await;
        for _ in 0..settings.retries {
            let silent = ev
                .arp
                .values()
                .any(|a| a.as_ref().is_ok_and(|m| m.is_empty()));
            if !silent {
                break;
            }
            ev = self.evidence(vm, &ports, icmp).await;
        }
        ev
    }

    /// Waits for the network's turn for `purpose` (released when the permit drops).
    async fn turn(&self, network: &str, purpose: &'static str) -> Option<SemaphorePermit<'_>> {
        self.turns
            .get(&(network.to_string(), purpose))?
            .acquire()
            .await
            .ok()
    }
}

/// A live migration's continuous probe from a pod on the VM's VLAN (`checks_from =
/// "cluster"` and a `probe_ip` on the network of the VM's first L2 NIC with an IPv4
/// address): ICMP every 100 ms from where the VM's clients are.
pub struct WatchPod {
    client: Client,
    ns: String,
    pub name: String,
}

/// How long the watch pod may take to start, and to stop after its deletion.
const WATCH_START: Duration = Duration::from_secs(120);
const WATCH_GRACE: Duration = Duration::from_secs(5);

impl WatchPod {
    /// `None`: the plan probes from the workstation for this VM. `Some(Err)`: the pod could
    /// not be made to run (the text says why).
    pub async fn start(
        client: &Client,
        plan: &Plan,
        vm: &Vm,
        limit: Duration,
    ) -> Option<Result<WatchPod, String>> {
        if plan.meta.checks_from.value != ChecksFrom::Cluster
            || plan.model_of(vm) != NetworkModel::L2
        {
            return None;
        }
        let (net, ip) = vm.nics.iter().find_map(|n| {
            let ip = n.ip.as_ref()?.value;
            Some((plan.network(n.network.as_str())?, ip))
        })?;
        let (pip, cidr) = (net.probe_ip.as_ref()?, net.cidr.as_ref()?);
        let spec = ProbeSpec {
            name: pod_name("watch", vm.name.as_str()),
            network: build::probe_network_name(net.name.as_str()),
            ips: vec![format!("{}/{}", pip.value, cidr.value.prefix_len())],
            node: None,
            avoid: vec![],
            purpose: "watch".into(),
            args: ProbeRequest {
                watch: Some(ip),
                watch_for: Some(limit),
                ..Default::default()
            }
            .to_args(),
            deadline: limit + WATCH_START + WATCH_GRACE,
        };
        let pod = probe_pod(plan, &spec)?;
        let ns = plan.meta.namespace.value.clone();
        Some(
            async {
                probe_run::create(client, &pod).await?;
                probe_run::running(client, &ns, &spec.name, WATCH_START).await?;
                Ok(WatchPod {
                    client: client.clone(),
                    ns,
                    name: spec.name,
                })
            }
            .await,
        )
    }

    /// Stops the probe (the pod's graceful deletion: SIGTERM) and reads what it counted:
    /// `(sent, lost, longest gap)`.
    pub async fn stop(self) -> Result<(u64, u64, Option<Duration>), String> {
        let end = probe_run::stop(
            &self.client,
            &self.ns,
            &self.name,
            WATCH_GRACE,
            WATCH_GRACE + WAIT_MARGIN,
        )
        .await?;
        let r = match end {
            PodEnd::Result(r) => r,
            PodEnd::NotStarted(why) | PodEnd::Failed(why) => return Err(why),
        };
        let w =
            r.r.iter()
                .find(|p| p.k == "watch")
                .ok_or_else(|| "the probe pod's result has no watch entry".to_string())?;
        if let Some(e) = &w.e {
            return Err(e.clone());
        }
        Ok((
            w.n.unwrap_or(0),
            w.lost.unwrap_or(0),
            w.gap.map(Duration::from_millis),
        ))
    }
}

/// The checks' VMI source with the ARP answers of the VM's probe pods.
pub struct WithArp<'a> {
    pub inner: &'a dyn VmiSource,
    pub vm: &'a str,
    pub evidence: &'a ClusterEvidence,
}

impl VmiSource for WithArp<'_> {
    fn vmi_interfaces(&self, vm: &str) -> Option<Vec<VmiInterface>> {
        self.inner.vmi_interfaces(vm)
    }

    fn arp(&self, vm: &str) -> Option<ArpAnswers> {
        (vm == self.vm && !self.evidence.arp.is_empty()).then(|| self.evidence.arp.clone())
    }
}

/// The checks' prober with the icmp and tcp answers of the VM's probe pods; what the pods
/// did not probe (a network without `probe_ip`, http, dns) goes to the workstation prober.
pub struct PodReach<'a> {
    pub inner: &'a dyn Prober,
    pub evidence: &'a ClusterEvidence,
}

impl PodReach<'_> {
    fn answer(&self, kind: &str, target: String) -> Option<Probe> {
        let p = self.evidence.reach.get(&target).filter(|p| p.k == kind)?;
        let from = "from a probe pod on the VLAN";
        Some(match (p.ok, &p.e) {
            (Some(true), _) => Probe::pass(
                format!("{target} answers {kind} {from}"),
                Duration::from_millis(p.ms.unwrap_or(0)),
            ),
            (_, Some(e)) if p.ok.is_none() => Probe::error(format!("{kind} {target} {from}: {e}")),
            (_, e) => Probe::fail(format!(
                "{target} does not answer {kind} {from}{}",
                e.as_ref().map_or(String::new(), |e| format!(": {e}"))
            )),
        })
    }
}

impl Prober for PodReach<'_> {
    fn icmp(&self, ip: IpAddr, timeout: Duration) -> ProbeFuture<'_> {
        match self.answer("icmp", ip.to_string()) {
            Some(p) => Box::pin(async move { p }),
            None => self.inner.icmp(ip, timeout),
        }
    }

    fn tcp(&self, addr: SocketAddr, timeout: Duration) -> ProbeFuture<'_> {
        match self.answer("tcp", addr.to_string()) {
            Some(p) => Box::pin(async move { p }),
            None => self.inner.tcp(addr, timeout),
        }
    }

    fn http<'a>(&'a self, url: &'a str, expect: &'a [u16], timeout: Duration) -> ProbeFuture<'a> {
        self.inner.http(url, expect, timeout)
    }

    fn dns<'a>(&'a self, query: DnsQuery<'a>, timeout: Duration) -> ProbeFuture<'a> {
        self.inner.dns(query, timeout)
    }

    fn disk_consistent<'a>(
        &'a self,
        vm: &'a str,
        disks: usize,
        timeout: Duration,
    ) -> ProbeFuture<'a> {
        self.inner.disk_consistent(vm, disks, timeout)
    }
}

/// `sim-node-3 (cause); sim-node-4 (cause)`.
pub fn describe_nodes(proof: &L2Proof) -> String {
    proof
        .bad_nodes
        .iter()
        .map(|(n, c)| format!("{n} ({c})"))
        .collect::<Vec<_>>()
        .join("; ")
}

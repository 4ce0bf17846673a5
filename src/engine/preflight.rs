//! Preflight for a real cluster: everything a wave needs is checked and reported by name,
//! all at once, before anything is created. Plan-wide facts are asked of the cluster once
//! per run ([`ClusterFacts`]), the source VMs once per wave; each VM then adds its own
//! checks and a server-side dry run of every object it needs.
//!
//! What is checked, and where a 403 is only a warning (a cluster-scoped read an operator
//! with namespace rights may not have):
//! - the CRDs (discovery), the namespace, the credentials Secret and the two keys CDI reads
//!   (`accessKeyId`, `secretKey`);
//! - a VDDK image: the plan's `vddk_init_image`, or CDI's `v2v-vmware` ConfigMap in `cdi` or
//!   `openshift-cnv` (403: warning);
//! - every verb the run needs, by SelfSubjectAccessReview ([`REQUIRED_ACCESS`]; the
//!   cluster-scoped reads are warnings);
//! - each StorageClass exists (403: warning), and its binding mode;
//! - for each bridge network whose NAD requests `bridge.network.kubevirt.io/<bridge>`,
//!   every schedulable node advertises it (bridge-marker);
//! - the VM's name (VirtualMachine, DataVolumes) is not taken by an object that is not
//!   wavelift's for this plan and VM;
//! - the VM's MACs are not used by any other VirtualMachine in the cluster (kubemacpool or
//!   an earlier migration may hold them; a cluster-wide list, 403: warning);
//! - the source VM in vCenter (when wavelift powers it off);
//! - no PVC holds a DataVolume's name unless a DataVolume controls it (CDI's webhook
//!   refuses "Destination PVC … already exists"; one list per run);
//! - a server-side dry run (`dryRun=All`) of the NADs (once per run), the VirtualMachine,
//!   and the DataVolumes once per shape ([`dv_shape`]).

mod dv_shape;
pub mod forklift;

use super::decide::{Gate, Power};
use super::error::{api_message as api_msg, is_code, Error};
use super::events::{Emitter, LogLevel};
use super::probes::ClusterProbes;
use crate::cluster::build::{self, BRIDGE_RESOURCE};
use crate::cluster::call::call;
use crate::cluster::labels;
use crate::cluster::resources::{DataVolume, NetworkAttachmentDefinition, VirtualMachine};
use crate::plan::{NetworkModel, Plan, PowerOff, Provider, SourceKind, Vm};
use crate::source::{SourceOps, SourcePower};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Secret};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::Client;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use tokio::sync::OnceCell;

/// One permission a run needs: (verb, API group, resource, namespaced). Namespaced entries
/// are asked for the plan's namespace; the others cluster-wide, and a denial of those is a
/// warning (what needs them degrades: StorageClass and node checks, the MAC check).
pub const REQUIRED_ACCESS: &[(&str, &str, &str, bool)] = &[
    ("get", "", "namespaces", false),
    ("get", "", "secrets", true),
    ("get", "storage.k8s.io", "storageclasses", false),
    ("list", "", "nodes", false),
    ("list", "kubevirt.io", "virtualmachines", false),
    ("list", "", "persistentvolumeclaims", true),
    (
        "get",
        "k8s.cni.cncf.io",
        "network-attachment-definitions",
        true,
    ),
    (
        "list",
        "k8s.cni.cncf.io",
        "network-attachment-definitions",
        true,
    ),
    (
        "watch",
        "k8s.cni.cncf.io",
        "network-attachment-definitions",
        true,
    ),
    (
        "patch",
        "k8s.cni.cncf.io",
        "network-attachment-definitions",
        true,
    ),
    (
        "create",
        "k8s.cni.cncf.io",
        "network-attachment-definitions",
        true,
    ),
    ("get", "cdi.kubevirt.io", "datavolumes", true),
    ("list", "cdi.kubevirt.io", "datavolumes", true),
    ("watch", "cdi.kubevirt.io", "datavolumes", true),
    ("create", "cdi.kubevirt.io", "datavolumes", true),
    ("delete", "cdi.kubevirt.io", "datavolumes", true),
    ("get", "kubevirt.io", "virtualmachines", true),
    ("list", "kubevirt.io", "virtualmachines", true),
    ("watch", "kubevirt.io", "virtualmachines", true),
    ("create", "kubevirt.io", "virtualmachines", true),
    ("delete", "kubevirt.io", "virtualmachines", true),
    (
        "update",
        "subresources.kubevirt.io",
        "virtualmachines/start",
        true,
    ),
    ("get", "kubevirt.io", "virtualmachineinstances", true),
    ("list", "kubevirt.io", "virtualmachineinstances", true),
    ("watch", "kubevirt.io", "virtualmachineinstances", true),
    (
        "create",
        "kubevirt.io",
        "virtualmachineinstancemigrations",
        true,
    ),
    (
        "list",
        "kubevirt.io",
        "virtualmachineinstancemigrations",
        true,
    ),
    (
        "watch",
        "kubevirt.io",
        "virtualmachineinstancemigrations",
        true,
    ),
    ("get", "coordination.k8s.io", "leases", true),
    ("create", "coordination.k8s.io", "leases", true),
    ("update", "coordination.k8s.io", "leases", true),
];

/// What probe pods need besides (`checks_from = "cluster"`): create them, watch each to its
/// end, delete them; list nodes for the per-node proof (in [`REQUIRED_ACCESS`] already).
pub const PROBE_ACCESS: &[(&str, &str, &str, bool)] = &[
    ("create", "", "pods", true),
    ("get", "", "pods", true),
    ("list", "", "pods", true),
    ("watch", "", "pods", true),
    ("delete", "", "pods", true),
];

/// The server's verdict on a DataVolume shape's dry run, once it gave one.
type ShapeVerdict = OnceCell<Result<(), String>>;

/// Each source VM's power state as vCenter reported it, or why it could not.
type SourceFacts = HashMap<String, Result<Power, String>>;

/// Plan-wide preflight answers, asked once per run.
#[derive(Debug, Clone, Default)]
struct ClusterFacts {
    /// Problems that stop every VM (CRDs, namespace, credentials, VDDK image, RBAC).
    global: Vec<String>,
    /// StorageClass → problem, for the VMs that use it.
    bad_classes: BTreeMap<String, String>,
    /// Plan network → problem (nodes without its bridge), for the VMs that use it.
    bad_networks: BTreeMap<String, String>,
    /// Names in the plan's namespace held by objects that are not this plan's:
    /// `kind/name` → who holds it.
    foreign_names: BTreeMap<String, String>,
    /// MAC (lower case) → the VirtualMachine (`ns/name`) outside this plan that uses it.
    foreign_macs: BTreeMap<String, String>,
    /// The namespace's PVCs were listed (their names are in `foreign_names`): the one
    /// per-object rule of CDI's webhook that reads the cluster is checked for every disk,
    /// so DataVolumes may be dry-run once per shape.
    pvcs_listed: bool,
}

/// The preflight of a run: its caches and what it needs to ask.
pub struct Preflight {
    plan: Arc<Plan>,
    client: Client,
    source: Option<Arc<dyn SourceOps>>,
    events: Emitter,
    /// Missing CRDs found by discovery at start, or why discovery failed.
    missing_crds: Result<Vec<String>, Error>,
    cluster_facts: OnceCell<ClusterFacts>,
    /// Per wave: each source VM's power state, asked of vCenter in batches once.
    source_facts: HashMap<String, OnceCell<SourceFacts>>,
    network_checks: HashMap<String, OnceCell<Result<(), String>>>,
    /// Probe pods (`checks_from = "cluster"`): Pod Security and the per-node L2 proof.
    probes: Option<Arc<ClusterProbes>>,
    /// The Forklift backend: how Forklift reaches vCenter (`None`: `forklift_provider`
    /// names an existing Provider, or none is known).
    pub forklift_source: Option<(
        crate::source::Credentials,
        crate::cluster::forklift::SourceConn,
    )>,
    /// Per wave: Forklift's preflight of the wave's Plans, once.
    forklift_reports: HashMap<String, OnceCell<forklift::Report>>,
    /// The Forklift Plans (empty with CDI).
    forklift_groups: Vec<crate::cluster::forklift::PlanGroup>,
    /// How long preflight waits for Forklift's verdicts.
    pub forklift_timeout: std::time::Duration,
    /// The run is a server-side dry run (Forklift's Plans are not created).
    pub run_dry: bool,
    /// DataVolume shape → the server's verdict on its dry run ([`dv_shape`]). A plain
    /// mutex: held only to find or add a cell, never across an await.
    dv_shapes: std::sync::Mutex<HashMap<String, Arc<ShapeVerdict>>>,
}

impl Preflight {
    pub fn new(
        plan: Arc<Plan>,
        client: Client,
        source: Option<Arc<dyn SourceOps>>,
        events: Emitter,
        missing_crds: Result<Vec<String>, Error>,
        probes: Option<Arc<ClusterProbes>>,
    ) -> Preflight {
        let forklift = plan.meta.backend.value == crate::plan::Backend::Forklift;
        Preflight {
            forklift_source: None,
            forklift_reports: plan
                .waves
                .iter()
                .map(|w| (w.name.value.clone(), OnceCell::new()))
                .collect(),
            forklift_groups: if forklift {
                crate::cluster::forklift::plan_groups(&plan)
            } else {
                Vec::new()
            },
            forklift_timeout: std::time::Duration::from_secs(120),
            run_dry: false,
            dv_shapes: Default::default(),
            probes,
            network_checks: plan
                .networks
                .iter()
                .map(|n| (n.name.value.clone(), OnceCell::new()))
                .collect(),
            source_facts: plan
                .waves
                .iter()
                .map(|w| (w.name.value.clone(), OnceCell::new()))
                .collect(),
            plan,
            client,
            source,
            events,
            missing_crds,
            cluster_facts: OnceCell::new(),
        }
    }

    fn ns(&self) -> &str {
        self.plan.meta.namespace.as_str()
    }

    /// Preflight for one VM: the plan-wide facts, the source VM in vCenter (when wavelift
    /// powers it off: it must exist, and its power state tells a resumed run whether an
    /// earlier one already powered it off), the VM's own names and MACs, then a server-side
    /// dry run of every object the VM needs (each shared network once per run). All
    /// problems in one answer.
    /// Why warm migration is refused for `vm`, each by name: no VI/JSON (vCenter older than
    /// 8.0 U1), CBT off without `enable_cbt`, snapshots that are not wavelift's.
    async fn warm_problems(&self, vm: &Vm, ctx: &super::decide::warm::WarmCtx) -> Vec<String> {
        let Some(w) = self.source.as_ref().and_then(|s| s.warm()) else {
            return vec![
                "warm-no-api: warm migration needs the vSphere API (credentials for vCenter)"
                    .into(),
            ];
        };
        if let Err(e) = w.vim_release().await {
            return vec![format!(
                "warm-no-vim-json: {e}; migrate this VM cold (`migration = \"cold\"`), which needs only the Automation REST API"
            )];
        }
        let uuid = vm.source_id.as_ref().map(|u| u.as_str());
        let view = match w.warm_view(vm.name.as_str(), uuid).await {
            Ok(v) => v,
            Err(e) => return vec![format!("source VM: {e}")],
        };
        let mut out = Vec::new();
        if !view.cbt_enabled && !ctx.enable_cbt {
            out.push("warm-cbt-off: changed block tracking is off on the source VM; set `enable_cbt = true` in [source] to let wavelift turn it on, or migrate it cold".to_string());
        }
        let theirs = super::decide::warm::WarmSource::from_view(&view, ctx).foreign;
        if !theirs.is_empty() {
            out.push(format!(
                "warm-has-snapshots: the source VM has snapshots ({}): remove them (a warm import reads the base disk and the snapshots wavelift takes), or migrate it cold",
                theirs.join(", ")
            ));
        }
        out
    }

    pub async fn vm(&self, vm: &Vm) -> (Gate, Option<Power>) {
        let facts = self.cluster_facts().await;
        let mut problems = facts.global.clone();
        let mut power = None;
        match self.source_facts(vm.wave.as_str()).await {
            None => {}
            Some(Err(e)) => problems.push(format!("source VMs: {e}")),
            Some(Ok(facts)) => match facts.get(vm.name.as_str()) {
                Some(Ok(p)) => power = Some(*p),
                Some(Err(e)) => problems.push(format!("source VM: {e}")),
                None => {}
            },
        }
        // With Forklift, its own Plan validation checks CBT and snapshots.
        if let Some(ctx) =
            super::decide::warm::ctx_for(&self.plan, vm).filter(|_| !self.is_forklift())
        {
            problems.extend(self.warm_problems(vm, &ctx).await);
        }
        let classes: BTreeSet<&str> = vm
            .disks
            .iter()
            .filter_map(|d| storage_class(&self.plan, d))
            .collect();
        problems.extend(
            classes
                .iter()
                .filter_map(|c| facts.bad_classes.get(*c).cloned()),
        );
        if self.plan.model_of(vm) == NetworkModel::L2 {
            let nets: BTreeSet<&str> = vm.nics.iter().map(|n| n.network.as_str()).collect();
            problems.extend(
                nets.iter()
                    .filter_map(|n| facts.bad_networks.get(*n).cloned()),
            );
        }
        let mut names = vec![format!("VirtualMachine/{}", vm.name.value)];
        names.extend((0..vm.disks.len()).map(|i| {
            format!(
                "DataVolume/{}",
                labels::data_volume_name(vm.name.as_str(), i)
            )
        }));
        for i in 0..vm.disks.len() {
            let pvc = labels::data_volume_name(vm.name.as_str(), i);
            if facts
                .foreign_names
                .contains_key(&format!("PersistentVolumeClaim/{pvc}"))
            {
                // CDI's webhook words it so (`datavolume-validate.go` `Admit`).
                problems.push(format!(
                    "Destination PVC {}/{pvc} already exists and no DataVolume controls it: CDI refuses a DataVolume of its name; remove the PVC or rename the VM",
                    self.ns()
                ));
            }
        }
        for n in names {
            if let Some(holder) = facts.foreign_names.get(&n) {
                problems.push(format!(
                    "{n} already exists in namespace {} and is not this plan's ({holder}): rename the VM or remove the object",
                    self.ns()
                ));
            }
        }
        for nic in &vm.nics {
            let mac = nic.mac.value.to_string().to_ascii_lowercase();
            if let Some(holder) = facts.foreign_macs.get(&mac) {
                problems.push(format!(
                    "MAC {mac} is already used by VirtualMachine {holder} (kubemacpool or an earlier migration): two VMs with one MAC break the VLAN"
                ));
            }
        }
        if self.is_forklift() && problems.is_empty() {
            problems.extend(self.forklift_problems(vm).await);
        }
        if problems.is_empty() {
            self.dry_run(vm, facts.pvcs_listed, &mut problems).await;
        }
        if problems.is_empty() {
            self.probe_problems(vm, &mut problems).await;
        }
        let gate = if problems.is_empty() {
            Gate::Passed
        } else {
            Gate::Failed(problems.join("; "))
        };
        (gate, power)
    }

    fn is_forklift(&self) -> bool {
        self.plan.meta.backend.value == crate::plan::Backend::Forklift
    }

    /// The Forklift backend: Forklift's preflight of the VM's wave (once per wave: CRD
    /// schemas, Providers and maps Ready, the wave's Plans created without a Migration and
    /// validated by Forklift), the problems of the VM's Plan by name.
    async fn forklift_problems(&self, vm: &Vm) -> Vec<String> {
        let Some(cell) = self.forklift_reports.get(vm.wave.as_str()) else {
            return vec![];
        };
        let report = cell
            .get_or_init(|| async {
                let mut ids = HashMap::new();
                let mut missing = Vec::new();
                if let Some(src) = &self.source {
                    for v in self.plan.vms_in_wave(vm.wave.as_str()) {
                        let uuid = v.source_id.as_ref().map(|u| u.value.to_string());
                        match src.vm_id(v.name.as_str(), uuid.as_deref()).await {
                            Ok(id) => {
                                ids.insert(v.name.value.clone(), id);
                            }
                            Err(e) => missing.push(format!("source VM {}: {e}", v.name.value)),
                        }
                    }
                } else {
                    missing.push("the Forklift backend needs the vSphere API to read each VM's managed object id (credentials for vCenter)".into());
                }
                if !missing.is_empty() {
                    return forklift::Report {
                        global: missing,
                        ..Default::default()
                    };
                }
                let source = self.forklift_source.as_ref().map(|(c, s)| (c, s));
                let r = forklift::preflight_wave(
                    &self.client,
                    &self.plan,
                    Some(vm.wave.as_str()),
                    source,
                    &ids,
                    self.run_dry,
                    self.forklift_timeout,
                )
                .await;
                for n in &r.notes {
                    self.events
                        .log(LogLevel::Warn, format!("preflight: {n}"))
                        .await;
                }
                r
            })
            .await;
        report.problems_of(&self.forklift_groups, vm.name.as_str())
    }

    /// `checks_from = "cluster"`: probe pods are allowed (Pod Security), and each of the
    /// VM's L2 networks reaches the nodes (the per-node proof, once per network). A node
    /// without the VLAN is a warning (the VM is kept off it) unless `l2_path = "required"`.
    async fn probe_problems(&self, vm: &Vm, problems: &mut Vec<String>) {
        let Some(probes) = &self.probes else {
            return;
        };
        if let Err(e) = probes.pod_security().await {
            problems.push(e);
            return;
        }
        if self.plan.model_of(vm) != NetworkModel::L2 {
            return;
        }
        let nets: BTreeSet<&str> = vm.nics.iter().map(|n| n.network.as_str()).collect();
        for name in nets {
            let Some(net) = self.plan.network(name) else {
                continue;
            };
            let proof = probes.l2_proof(vm, name).await;
            if let Some(p) = ClusterProbes::required_problem(net, &proof) {
                problems.push(p);
            }
        }
    }

    /// Server-side dry run of every object the VM needs (nothing is persisted).
    async fn dry_run(&self, vm: &Vm, by_shape: bool, problems: &mut Vec<String>) {
        let ns = self.ns().to_string();
        let dry = PostParams {
            dry_run: true,
            field_manager: Some(labels::FIELD_MANAGER.to_string()),
        };
        if self.plan.model_of(vm) == NetworkModel::L2 {
            let nets: BTreeSet<&str> = vm.nics.iter().map(|n| n.network.as_str()).collect();
            for name in nets {
                if let Some(Err(why)) = self.network_dry_run(name).await {
                    problems.push(why);
                }
            }
        }
        if self.is_forklift() {
            // Forklift creates the DataVolumes and the VirtualMachine.
            return;
        }
        let dvs: Api<DataVolume> = Api::namespaced(self.client.clone(), &ns);
        // `None`: the DataVolume exists (a resumed run), so the webhook gave no verdict.
        let dry_run_one = |dv: &DataVolume| {
            let (dvs, dry) = (&dvs, &dry);
            let dv = dv.clone();
            async move {
                match call("dry-run DataVolume", || dvs.create(dry, &dv)).await {
                    Ok(_) => Some(Ok(())),
                    Err(e) if is_code(&e, 409) => None,
                    Err(e) => Some(Err(format!(
                        "DataVolume {}: {}",
                        dv.metadata.name.clone().unwrap_or_default(),
                        api_msg(&e)
                    ))),
                }
            }
        };
        for dv in build::data_volumes(&self.plan, vm) {
            if by_shape {
                let cell = self
                    .dv_shapes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(dv_shape::shape(&dv))
                    .or_default()
                    .clone();
                let mut mine = false;
                let verdict = cell
                    .get_or_try_init(|| async {
                        mine = true;
                        dry_run_one(&dv).await.ok_or(())
                    })
                    .await;
                match verdict {
                    Ok(Ok(())) => continue,
                    // This VM's own DataVolume was refused.
                    Ok(Err(why)) if mine => {
                        problems.push(why.clone());
                        continue;
                    }
                    // Another VM's of this shape was refused (or exists): judge this one's own.
                    Ok(Err(_)) | Err(()) => {}
                }
                if mine {
                    continue; // it exists: nothing to judge
                }
            }
            if let Some(Err(why)) = dry_run_one(&dv).await {
                problems.push(why);
            }
        }
        let vms: Api<VirtualMachine> = Api::namespaced(self.client.clone(), &ns);
        let obj = build::virtual_machine(&self.plan, vm);
        match call("dry-run VirtualMachine", || vms.create(&dry, &obj)).await {
            Ok(_) => {}
            Err(e) if is_code(&e, 409) => {}
            Err(e) => problems.push(format!("VirtualMachine {}: {}", vm.name.value, api_msg(&e))),
        }
    }

    /// Server-side dry run of a plan network's NetworkAttachmentDefinition, once per run.
    async fn network_dry_run(&self, name: &str) -> Option<Result<(), String>> {
        let net = self.plan.network(name)?;
        let cell = self.network_checks.get(name)?;
        Some(
            cell.get_or_init(|| async {
                let api: Api<NetworkAttachmentDefinition> =
                    Api::namespaced(self.client.clone(), self.ns());
                let nad = build::network_attachment(&self.plan, net);
                let pp = PatchParams::apply(labels::FIELD_MANAGER).force().dry_run();
                let patch = Patch::Apply(&nad);
                call("dry-run NetworkAttachmentDefinition", || {
                    api.patch(name, &pp, &patch)
                })
                .await
                .map(|_| ())
                .map_err(|e| format!("NetworkAttachmentDefinition {name}: {}", api_msg(&e)))
            })
            .await
            .clone(),
        )
    }

    /// Plan-wide preflight facts, asked of the cluster once per run and shared by every
    /// VM's preflight. Warnings (what could not be checked) go to the log once.
    async fn cluster_facts(&self) -> &ClusterFacts {
        self.cluster_facts
            .get_or_init(|| async {
                let mut warnings = Vec::new();
                let mut facts = ClusterFacts::default();
                self.crds_namespace_credentials(&mut facts.global).await;
                self.vddk_image(&mut facts.global, &mut warnings).await;
                self.access(&mut facts.global, &mut warnings).await;
                self.storage_classes(&mut facts.bad_classes, &mut warnings)
                    .await;
                self.node_bridges(&mut facts.bad_networks, &mut warnings)
                    .await;
                self.foreign_objects(&mut facts, &mut warnings).await;
                for w in warnings {
                    self.events
                        .log(LogLevel::Warn, format!("preflight: {w}"))
                        .await;
                }
                facts
            })
            .await
    }

    async fn crds_namespace_credentials(&self, global: &mut Vec<String>) {
        match &self.missing_crds {
            Ok(missing) => {
                global.extend(missing.iter().map(|c| format!("CRD {c} is not installed")))
            }
            Err(e) => global.push(format!("cannot tell which CRDs are installed: {e}")),
        }
        let ns = self.ns().to_string();
        let nss: Api<Namespace> = Api::all(self.client.clone());
        match call("get Namespace", || nss.get_opt(&ns)).await {
            Ok(Some(_)) => {}
            Ok(None) => global.push(format!("namespace {ns} does not exist")),
            Err(e) => global.push(format!("namespace {ns}: {}", api_msg(&e))),
        }
        let Some(sec) = &self.plan.source.credentials_secret else {
            return;
        };
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &ns);
        match call("get Secret", || secrets.get_opt(sec.as_str())).await {
            Ok(Some(s)) => {
                // CDI's importer reads only these two keys (containerized-data-importer
                // `pkg/controller/import-controller.go`, `makeImporterPodSpec`).
                if self.plan.source.kind == SourceKind::Vsphere && !self.is_forklift() {
                    let data = s.data.unwrap_or_default();
                    let string_data = s.string_data.unwrap_or_default();
                    let missing: Vec<&str> = ["accessKeyId", "secretKey"]
                        .into_iter()
                        .filter(|k| !data.contains_key(*k) && !string_data.contains_key(*k))
                        .collect();
                    if !missing.is_empty() {
                        let has: Vec<&String> = data.keys().collect();
                        global.push(format!(
                            "Secret {ns}/{} lacks {} (CDI reads only `accessKeyId` and `secretKey`; it has {has:?})",
                            sec.value,
                            missing.join(" and ")
                        ));
                    }
                }
            }
            Ok(None) => global.push(format!("Secret {ns}/{} does not exist", sec.value)),
            Err(e) => global.push(format!("Secret {}: {}", sec.value, api_msg(&e))),
        }
    }

    /// A VDDK image: the plan's, or CDI's `v2v-vmware` ConfigMap.
    async fn vddk_image(&self, global: &mut Vec<String>, warnings: &mut Vec<String>) {
        if self.plan.source.kind != SourceKind::Vsphere
            || self.plan.source.vddk_init_image.is_some()
            || self.is_forklift()
        {
            return;
        }
        let mut forbidden = Vec::new();
        for ns in ["cdi", "openshift-cnv"] {
            let cms: Api<ConfigMap> = Api::namespaced(self.client.clone(), ns);
            match call("get ConfigMap", || cms.get_opt("v2v-vmware")).await {
                Ok(Some(cm)) => {
                    if cm
                        .data
                        .as_ref()
                        .and_then(|d| d.get("vddk-init-image"))
                        .is_some_and(|v| !v.is_empty())
                    {
                        return;
                    }
                }
                Ok(None) => {}
                Err(e) if is_code(&e, 403) => forbidden.push(ns),
                Err(e) => warnings.push(format!("ConfigMap {ns}/v2v-vmware: {}", api_msg(&e))),
            }
        }
        if forbidden.is_empty() {
            global.push("no VDDK image: the plan has no `vddk_init_image` and CDI has no v2v-vmware ConfigMap (namespaces cdi, openshift-cnv); imports would wait forever (AwaitingVDDK)".into());
        } else {
            warnings.push(format!(
                "cannot read ConfigMap v2v-vmware in {} (forbidden): set `vddk_init_image` in the plan, or make sure CDI has a VDDK image",
                forbidden.join(", ")
            ));
        }
    }

    /// Every verb the run needs, by SelfSubjectAccessReview.
    async fn access(&self, global: &mut Vec<String>, warnings: &mut Vec<String>) {
        let api: Api<SelfSubjectAccessReview> = Api::all(self.client.clone());
        let mut denied = Vec::new();
        let mut denied_cluster = Vec::new();
        let probe_access = if self.probes.is_some() {
            PROBE_ACCESS
        } else {
            &[]
        };
        for &(verb, group, resource, namespaced) in REQUIRED_ACCESS.iter().chain(probe_access) {
            let (resource, subresource) = match resource.split_once('/') {
                Some((r, s)) => (r, Some(s.to_string())),
                None => (resource, None),
            };
            let review = SelfSubjectAccessReview {
                spec: SelfSubjectAccessReviewSpec {
                    resource_attributes: Some(ResourceAttributes {
                        verb: Some(verb.to_string()),
                        group: Some(group.to_string()),
                        resource: Some(resource.to_string()),
                        subresource: subresource.clone(),
                        namespace: namespaced.then(|| self.ns().to_string()),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ..Default::default()
            };
            let what = format!(
                "{verb} {resource}{}{}",
                subresource.map(|s| format!("/{s}")).unwrap_or_default(),
                if group.is_empty() {
                    String::new()
                } else {
                    format!(".{group}")
                }
            );
            let pp = PostParams::default();
            match call("create SelfSubjectAccessReview", || {
                api.create(&pp, &review)
            })
            .await
            {
                Ok(r) if r.status.as_ref().is_some_and(|s| s.allowed) => {}
                Ok(_) if namespaced => denied.push(what),
                Ok(_) => denied_cluster.push(what),
                Err(e) => {
                    warnings.push(format!(
                        "cannot review permissions ({}): RBAC not checked",
                        api_msg(&e)
                    ));
                    return;
                }
            }
        }
        if !denied.is_empty() {
            global.push(format!(
                "missing permissions in namespace {}: {} (see the README's RBAC list)",
                self.ns(),
                denied.join(", ")
            ));
        }
        if !denied_cluster.is_empty() {
            warnings.push(format!(
                "missing cluster-wide permissions: {} (the checks that need them are skipped)",
                denied_cluster.join(", ")
            ));
        }
    }

    /// Each StorageClass exists; its binding mode is reported.
    async fn storage_classes(
        &self,
        bad: &mut BTreeMap<String, String>,
        warnings: &mut Vec<String>,
    ) {
        let scs: Api<StorageClass> = Api::all(self.client.clone());
        let classes: BTreeSet<&str> = self
            .plan
            .vms
            .iter()
            .flat_map(|vm| vm.disks.iter())
            .filter_map(|d| storage_class(&self.plan, d))
            .collect();
        for sc in classes {
            match call("get StorageClass", || scs.get_opt(sc)).await {
                Ok(Some(class)) => {
                    if class.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer") {
                        self.events
                            .log(
                                LogLevel::Info,
                                format!("preflight: StorageClass {sc} binds WaitForFirstConsumer; wavelift's DataVolumes request immediate binding"),
                            )
                            .await;
                    }
                }
                Ok(None) => {
                    bad.insert(sc.to_string(), format!("StorageClass {sc} does not exist"));
                }
                Err(e) if is_code(&e, 403) => warnings.push(format!(
                    "cannot read StorageClass {sc} (forbidden: get storageclasses.storage.k8s.io is cluster-wide): not checked"
                )),
                Err(e) => {
                    bad.insert(sc.to_string(), format!("StorageClass {sc}: {}", api_msg(&e)));
                }
            }
        }
    }

    /// For each bridge network whose NAD requests the bridge-marker resource, every
    /// schedulable node must advertise it; otherwise a VM scheduled there has no VLAN.
    async fn node_bridges(&self, bad: &mut BTreeMap<String, String>, warnings: &mut Vec<String>) {
        let wanted: Vec<(&str, String)> = self
            .plan
            .networks
            .iter()
            .filter(|n| n.provider.value == Provider::Bridge && n.bridge_marker)
            .filter_map(|n| {
                n.bridge
                    .as_ref()
                    .map(|b| (n.name.as_str(), format!("{BRIDGE_RESOURCE}{}", b.value)))
            })
            .collect();
        if wanted.is_empty() {
            return;
        }
        let nodes: Api<Node> = Api::all(self.client.clone());
        let lp = ListParams::default();
        let list = match call("list Node", || nodes.list(&lp)).await {
            Ok(l) => l.items,
            Err(e) if is_code(&e, 403) => {
                warnings.push("cannot list nodes (forbidden: list nodes is cluster-wide): the nodes' bridges are not checked".into());
                return;
            }
            Err(e) => {
                warnings.push(format!("list nodes: {}: bridges not checked", api_msg(&e)));
                return;
            }
        };
        let schedulable: Vec<&Node> = list
            .iter()
            .filter(|n| {
                n.spec
                    .as_ref()
                    .is_none_or(|s| s.unschedulable != Some(true))
            })
            .collect();
        for (net, resource) in wanted {
            let missing: Vec<String> = schedulable
                .iter()
                .filter(|n| {
                    !n.status
                        .as_ref()
                        .and_then(|s| s.allocatable.as_ref())
                        .is_some_and(|a| a.contains_key(&resource))
                })
                .filter_map(|n| n.metadata.name.clone())
                .collect();
            if !missing.is_empty() {
                bad.insert(
                    net.to_string(),
                    format!(
                        "network {net}: node(s) {} do not advertise {resource} (is bridge-marker running, and the bridge present on every node?); or set `bridge_marker = false` on the network",
                        missing.join(", ")
                    ),
                );
            }
        }
    }

    /// Names in the plan's namespace that objects not of this plan hold, and MACs that
    /// VirtualMachines outside this plan use anywhere in the cluster.
    async fn foreign_objects(&self, facts: &mut ClusterFacts, warnings: &mut Vec<String>) {
        let plan_name = self.plan.meta.name.as_str();
        let ours = |l: &Option<BTreeMap<String, String>>| {
            l.as_ref()
                .and_then(|l| l.get(labels::PLAN))
                .is_some_and(|p| p == plan_name)
        };
        let lp = ListParams::default();
        let dvs: Api<DataVolume> = Api::namespaced(self.client.clone(), self.ns());
        match call("list DataVolumes", || dvs.list(&lp)).await {
            Ok(list) => {
                for dv in list.items.iter().filter(|d| !ours(&d.metadata.labels)) {
                    let name = dv.metadata.name.clone().unwrap_or_default();
                    facts
                        .foreign_names
                        .insert(format!("DataVolume/{name}"), holder(&dv.metadata.labels));
                }
            }
            Err(e) => warnings.push(format!(
                "list DataVolumes: {}: names not checked",
                api_msg(&e)
            )),
        }
        // CDI's webhook refuses a DataVolume where a PVC of its name exists that no
        // DataVolume controls (`datavolume-validate.go` `Admit`).
        let pvcs: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> =
            Api::namespaced(self.client.clone(), self.ns());
        match call("list PersistentVolumeClaims", || pvcs.list(&lp)).await {
            Ok(list) => {
                facts.pvcs_listed = true;
                for pvc in &list.items {
                    let by_dv = pvc
                        .metadata
                        .owner_references
                        .iter()
                        .flatten()
                        .any(|o| o.controller == Some(true) && o.kind == "DataVolume");
                    if !by_dv {
                        let name = pvc.metadata.name.clone().unwrap_or_default();
                        facts.foreign_names.insert(
                            format!("PersistentVolumeClaim/{name}"),
                            holder(&pvc.metadata.labels),
                        );
                    }
                }
            }
            Err(e) => warnings.push(format!(
                "list PersistentVolumeClaims: {}: every DataVolume is dry-run on its own",
                api_msg(&e)
            )),
        }
        let all: Api<VirtualMachine> = Api::all(self.client.clone());
        let vms = match call("list VirtualMachines", || all.list(&lp)).await {
            Ok(list) => list.items,
            Err(e) if is_code(&e, 403) => {
                warnings.push("cannot list virtualmachines.kubevirt.io in all namespaces (forbidden): MACs are not checked against other VMs".into());
                let here: Api<VirtualMachine> = Api::namespaced(self.client.clone(), self.ns());
                match call("list VirtualMachines", || here.list(&lp)).await {
                    Ok(list) => list.items,
                    Err(e) => {
                        warnings.push(format!(
                            "list VirtualMachines: {}: names not checked",
                            api_msg(&e)
                        ));
                        Vec::new()
                    }
                }
            }
            Err(e) => {
                warnings.push(format!(
                    "list VirtualMachines: {}: names and MACs not checked",
                    api_msg(&e)
                ));
                Vec::new()
            }
        };
        for vm in vms.iter().filter(|v| !ours(&v.metadata.labels)) {
            let name = vm.metadata.name.clone().unwrap_or_default();
            let ns = vm.metadata.namespace.clone().unwrap_or_default();
            if ns == self.ns() {
                facts.foreign_names.insert(
                    format!("VirtualMachine/{name}"),
                    holder(&vm.metadata.labels),
                );
            }
            let macs = vm
                .spec
                .template
                .pointer("/spec/domain/devices/interfaces")
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
                .filter_map(|i| i.get("macAddress").and_then(|m| m.as_str()));
            for mac in macs {
                facts
                    .foreign_macs
                    .insert(mac.to_ascii_lowercase(), format!("{ns}/{name}"));
            }
        }
    }

    /// The wave's source VMs as vCenter sees them (only with `power_off = "vsphere-api"`):
    /// one batched query per wave, remembered; a failed query is not remembered (the next
    /// preflight asks again).
    async fn source_facts(&self, wave: &str) -> Option<Result<&SourceFacts, String>> {
        if self.plan.source.power_off != PowerOff::VsphereApi {
            return None;
        }
        let src = self.source.as_ref()?;
        let cell = self.source_facts.get(wave)?;
        Some(
            cell.get_or_try_init(|| async {
                let vms: Vec<(String, Option<String>)> = self
                    .plan
                    .vms_in_wave(wave)
                    .map(|v| {
                        (
                            v.name.value.clone(),
                            v.source_id.as_ref().map(|u| u.value.to_string()),
                        )
                    })
                    .collect();
                let states = src.power_states(&vms).await.map_err(|e| e.to_string())?;
                Ok(vms
                    .into_iter()
                    .zip(states)
                    .map(|((name, _), r)| {
                        let r = r
                            .map(|p| match p {
                                SourcePower::On => Power::On,
                                SourcePower::Off => Power::Off,
                            })
                            .map_err(|e| e.to_string());
                        (name, r)
                    })
                    .collect())
            })
            .await,
        )
    }
}

/// Who holds an object, by its wavelift labels (or "not wavelift's").
fn holder(l: &Option<BTreeMap<String, String>>) -> String {
    match l.as_ref().and_then(|l| l.get(labels::PLAN)) {
        Some(p) => format!("wavelift plan `{p}`"),
        None => "not created by wavelift".into(),
    }
}

fn storage_class<'p>(plan: &'p Plan, d: &'p crate::plan::Disk) -> Option<&'p str> {
    d.storage_class
        .as_ref()
        .or(plan.defaults.storage_class.as_ref())
        .map(|s| s.as_str())
}

/// CRDs the engine needs, found through discovery; returns those missing.
pub async fn missing_crds(client: &Client) -> Result<Vec<String>, Error> {
    let need = [
        ("kubevirt.io", "v1", "virtualmachines"),
        ("kubevirt.io", "v1", "virtualmachineinstances"),
        ("kubevirt.io", "v1", "virtualmachineinstancemigrations"),
        ("cdi.kubevirt.io", "v1beta1", "datavolumes"),
        ("k8s.cni.cncf.io", "v1", "network-attachment-definitions"),
    ];
    let mut missing = Vec::new();
    for (group, version, plural) in need {
        let gv = format!("{group}/{version}");
        match call("discovery", || client.list_api_group_resources(&gv)).await {
            Ok(list) if list.resources.iter().any(|r| r.name == plural) => {}
            Ok(_) => missing.push(format!("{plural}.{group}")),
            Err(e) if is_code(&e, 404) => missing.push(format!("{plural}.{group}")),
            Err(e) => return Err(Error::api(format!("discovery of {gv}"), &e)),
        }
    }
    Ok(missing)
}

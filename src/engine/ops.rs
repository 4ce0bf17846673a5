//! Carrying out [`Command`]s against the cluster, the source platform and the network.
//! Every mutating API call is reported as a `Mutation` event (the audit journal); every
//! create tolerates `AlreadyExists`, so a command re-issued after a crash is harmless.

use super::decide::{Command, Gate, IpGuard, Power};
use super::error::{api_message as api_msg, is_code, Error};
use super::events::{Emitter, EventKind};
use super::schedule::Update;
use crate::checks::probe::Prober;
use crate::checks::runner::{self, Observations, RunSettings, VmiSource};
use crate::cluster::build;
use crate::cluster::call::call;
use crate::cluster::labels;
use crate::cluster::resources::{
    DataVolume, DvPhase, NetworkAttachmentDefinition, VirtualMachine, VirtualMachineInstance,
};
use crate::plan::{NetworkModel, Plan, PowerOff, Vm};
use crate::source::{SourceOps, SourcePower};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::Client;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use tokio::sync::OnceCell;

/// Everything a command needs.
pub struct Ops {
    pub plan: Arc<Plan>,
    pub client: Client,
    pub source: Option<Arc<dyn SourceOps>>,
    pub prober: Arc<dyn Prober>,
    pub dry_run: bool,
    pub events: Emitter,
    /// Missing CRDs found by discovery at start (empty: all present), or why discovery
    /// failed.
    pub missing_crds: Result<Vec<String>, Error>,
    /// The engine's view of VMIs (checks read the guest agent's report from it).
    pub vmis: Option<Store<VirtualMachineInstance>>,
    cluster_facts: OnceCell<ClusterFacts>,
    /// Per wave: each source VM's power state (or why it is unknown), asked of vCenter in
    /// batches once, at the wave's first preflight.
    source_facts: HashMap<String, OnceCell<SourceFacts>>,
    network_checks: HashMap<String, OnceCell<Result<(), String>>>,
    networks_applied: HashMap<String, OnceCell<()>>,
}

/// Each source VM's power state as vCenter reported it, or why it could not.
type SourceFacts = HashMap<String, Result<Power, String>>;

/// Plan-wide preflight answers.
#[derive(Debug, Clone, Default)]
struct ClusterFacts {
    /// Problems that stop every VM (CRDs, namespace, credentials).
    global: Vec<String>,
    /// StorageClass → problem, for the VMs that use it.
    bad_classes: std::collections::BTreeMap<String, String>,
}

impl Ops {
    #[allow(clippy::too_many_arguments)] // one place builds it: the runtime
    pub fn new(
        plan: Arc<Plan>,
        client: Client,
        source: Option<Arc<dyn SourceOps>>,
        prober: Arc<dyn Prober>,
        dry_run: bool,
        events: Emitter,
        missing_crds: Result<Vec<String>, Error>,
        vmis: Option<Store<VirtualMachineInstance>>,
    ) -> Ops {
        let names: Vec<String> = plan.networks.iter().map(|n| n.name.value.clone()).collect();
        let plan_for_waves = plan.clone();
        Ops {
            network_checks: names.iter().map(|n| (n.clone(), OnceCell::new())).collect(),
            networks_applied: names.into_iter().map(|n| (n, OnceCell::new())).collect(),
            plan,
            client,
            source,
            prober,
            dry_run,
            events,
            missing_crds,
            vmis,
            cluster_facts: OnceCell::new(),
            source_facts: plan_waves(&plan_for_waves)
                .into_iter()
                .map(|w| (w, OnceCell::new()))
                .collect(),
        }
    }
}

impl Ops {
    fn ns(&self) -> &str {
        self.plan.meta.namespace.as_str()
    }

    async fn journal(&self, vm: &Vm, verb: &str, kind: &str, name: &str, result: &str) {
        self.events
            .vm(
                vm,
                EventKind::Mutation {
                    verb: verb.to_string(),
                    kind: kind.to_string(),
                    name: name.to_string(),
                    dry_run: self.dry_run,
                    result: result.to_string(),
                },
            )
            .await;
    }

    /// Journals a failed mutating call and returns the VM's failure for it
    /// (`"VERB KIND NAME: message (code)"`).
    async fn journal_error(
        &self,
        vm: &Vm,
        verb: &'static str,
        kind: &'static str,
        name: &str,
        e: &kube::Error,
    ) -> Error {
        let message = api_msg(e);
        self.journal(vm, verb, kind, name, &format!("error: {message}"))
            .await;
        Error::Refused {
            verb,
            kind,
            name: name.to_string(),
            message,
        }
    }

    fn post(&self) -> PostParams {
        PostParams {
            dry_run: self.dry_run,
            field_manager: Some(labels::FIELD_MANAGER.to_string()),
        }
    }

    fn apply(&self) -> PatchParams {
        let p = PatchParams::apply(labels::FIELD_MANAGER).force();
        if self.dry_run {
            p.dry_run()
        } else {
            p
        }
    }

    /// Creates an object; `AlreadyExists` counts as done.
    async fn create<K>(
        &self,
        vm: &Vm,
        api: &Api<K>,
        obj: &K,
        kind: &'static str,
        name: &str,
    ) -> Result<(), Error>
    where
        K: kube::Resource
            + Clone
            + serde::Serialize
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let pp = self.post();
        match call(&format!("create {kind} {name}"), || api.create(&pp, obj)).await {
            Ok(_) => {
                self.journal(vm, "create", kind, name, "created").await;
                Ok(())
            }
            Err(e) if is_code(&e, 409) => {
                self.journal(vm, "create", kind, name, "already exists")
                    .await;
                Ok(())
            }
            Err(e) => Err(self.journal_error(vm, "create", kind, name, &e).await),
        }
    }

    pub async fn execute(&self, vm: &Vm, cmd: &Command) -> Result<Update, Error> {
        let ns = self.ns().to_string();
        match cmd {
            Command::RunPreflight => {
                let (gate, power) = self.preflight(vm).await;
                Ok(Update::Preflight(gate, power))
            }
            Command::ApplyNetworks => {
                if self.plan.model_of(vm) == NetworkModel::L3 {
                    return Ok(Update::Nothing);
                }
                let nets: BTreeSet<&str> = vm.nics.iter().map(|n| n.network.as_str()).collect();
                for name in nets {
                    self.apply_network(vm, name).await?;
                }
                Ok(Update::Nothing)
            }
            Command::CreateDataVolume { disk } => {
                let Some(dv) = build::data_volume(&self.plan, vm, *disk) else {
                    return Err(Error::NoDisk(*disk));
                };
                let name = labels::data_volume_name(vm.name.as_str(), *disk);
                let api: Api<DataVolume> = Api::namespaced(self.client.clone(), &ns);
                self.create(vm, &api, &dv, "DataVolume", &name)
                    .await
                    .map(|_| Update::Nothing)
            }
            Command::PowerOffSource | Command::PowerOnSource => {
                let on = *cmd == Command::PowerOnSource;
                let Some(src) = &self.source else {
                    return Err(Error::NoSourceApi);
                };
                let uuid = vm.source_id.as_ref().map(|u| u.as_str());
                let verb = if on { "power-on" } else { "power-off" };
                if self.dry_run {
                    self.journal(vm, verb, "SourceVM", vm.name.as_str(), "skipped (dry run)")
                        .await;
                    return Ok(Update::Nothing);
                }
                let r = if on {
                    src.power_on(vm.name.as_str(), uuid).await
                } else {
                    src.power_off(vm.name.as_str(), uuid).await
                };
                match r {
                    Ok(()) => {
                        self.journal(vm, verb, "SourceVM", vm.name.as_str(), "done")
                            .await;
                        Ok(Update::Power(if on { Power::On } else { Power::Off }))
                    }
                    Err(e) => {
                        self.journal(
                            vm,
                            verb,
                            "SourceVM",
                            vm.name.as_str(),
                            &format!("error: {e}"),
                        )
                        .await;
                        Err(e.into())
                    }
                }
            }
            Command::AskPowerOff => Ok(Update::Nothing),
            Command::ProbeOriginalIp => Ok(Update::IpGuard(self.ip_guard(vm).await)),
            Command::CreateVm => {
                let obj = build::virtual_machine(&self.plan, vm);
                let api: Api<VirtualMachine> = Api::namespaced(self.client.clone(), &ns);
                self.create(vm, &api, &obj, "VirtualMachine", vm.name.as_str())
                    .await
                    .map(|_| Update::Nothing)
            }
            Command::StartVm => self.start_vm(vm).await.map(|_| Update::Nothing),
            Command::RunChecks => Ok(self.checks(vm).await),
            Command::DeleteVm => {
                let api: Api<VirtualMachine> = Api::namespaced(self.client.clone(), &ns);
                match call("get VirtualMachine", || api.get_opt(vm.name.as_str()))
                    .await
                    .map_err(|e| Error::api(format!("get VirtualMachine {}", vm.name.value), &e))?
                {
                    Some(obj) if owned_by(&obj.metadata.labels, &self.plan, vm) => {
                        let dp = if self.dry_run {
                            DeleteParams::default().dry_run()
                        } else {
                            DeleteParams::default()
                        };
                        match call("delete VirtualMachine", || {
                            api.delete(vm.name.as_str(), &dp)
                        })
                        .await
                        {
                            Ok(_) => {
                                self.journal(
                                    vm,
                                    "delete",
                                    "VirtualMachine",
                                    vm.name.as_str(),
                                    "deleted",
                                )
                                .await
                            }
                            Err(e) if is_code(&e, 404) => {}
                            Err(e) => {
                                return Err(self
                                    .journal_error(
                                        vm,
                                        "delete",
                                        "VirtualMachine",
                                        vm.name.as_str(),
                                        &e,
                                    )
                                    .await)
                            }
                        }
                        Ok(Update::Nothing)
                    }
                    Some(_) => Err(Error::NotOurs {
                        kind: "VirtualMachine",
                        name: vm.name.value.clone(),
                    }),
                    None => Ok(Update::Nothing),
                }
            }
            Command::DeleteDataVolumes => {
                self.delete_disks(vm, false).await.map(|_| Update::Nothing)
            }
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

    /// Server-side apply of a plan network's NetworkAttachmentDefinition: the VMs of a plan
    /// share it, so it is applied once per run (a failure is not remembered: the next VM
    /// tries again).
    async fn apply_network(&self, vm: &Vm, name: &str) -> Result<(), Error> {
        let (Some(net), Some(cell)) = (self.plan.network(name), self.networks_applied.get(name))
        else {
            return Ok(());
        };
        cell.get_or_try_init(|| async {
            let api: Api<NetworkAttachmentDefinition> =
                Api::namespaced(self.client.clone(), self.ns());
            let nad = build::network_attachment(&self.plan, net);
            let pp = self.apply();
            let patch = Patch::Apply(&nad);
            match call("apply NetworkAttachmentDefinition", || {
                api.patch(name, &pp, &patch)
            })
            .await
            {
                Ok(_) => {
                    self.journal(vm, "apply", "NetworkAttachmentDefinition", name, "applied")
                        .await;
                    Ok(())
                }
                Err(e) => Err(self
                    .journal_error(vm, "apply", "NetworkAttachmentDefinition", name, &e)
                    .await),
            }
        })
        .await
        .map(|_| ())
    }

    /// Deletes the VM's DataVolumes, by label; with `keep_imported`, the ones whose import
    /// succeeded stay (a retry replaces failed, restarting and stalled imports).
    pub async fn delete_disks(&self, vm: &Vm, keep_imported: bool) -> Result<(), Error> {
        let api: Api<DataVolume> = Api::namespaced(self.client.clone(), self.ns());
        let lp = ListParams::default().labels(&labels::vm_selector(
            self.plan.meta.name.as_str(),
            vm.name.as_str(),
        ));
        let list = call("list DataVolumes", || api.list(&lp))
            .await
            .map_err(|e| Error::api("list DataVolumes", &e))?;
        for dv in list.items {
            let imported =
                dv.status.as_ref().and_then(|s| s.phase.as_ref()) == Some(&DvPhase::Succeeded);
            if keep_imported && imported {
                continue;
            }
            let name = dv.metadata.name.clone().unwrap_or_default();
            let dp = if self.dry_run {
                DeleteParams::default().dry_run()
            } else {
                DeleteParams::default()
            };
            match call("delete DataVolume", || api.delete(&name, &dp)).await {
                Ok(_) => {
                    self.journal(vm, "delete", "DataVolume", &name, "deleted")
                        .await
                }
                Err(e) if is_code(&e, 404) => {}
                Err(e) => {
                    return Err(self
                        .journal_error(vm, "delete", "DataVolume", &name, &e)
                        .await)
                }
            }
        }
        Ok(())
    }

    /// `PUT /apis/subresources.kubevirt.io/v1/namespaces/NS/virtualmachines/NAME/start`.
    async fn start_vm(&self, vm: &Vm) -> Result<(), Error> {
        use crate::cluster::subresource::{put, VmAction};
        match call("start VirtualMachine", || {
            put(
                &self.client,
                self.ns(),
                vm.name.as_str(),
                VmAction::Start,
                self.dry_run,
            )
        })
        .await
        {
            Ok(_) => {
                self.journal(vm, "start", "VirtualMachine", vm.name.as_str(), "accepted")
                    .await;
                Ok(())
            }
            // Already running: the start is done.
            Err(e) if is_code(&e, 409) => {
                self.journal(
                    vm,
                    "start",
                    "VirtualMachine",
                    vm.name.as_str(),
                    "already running",
                )
                .await;
                Ok(())
            }
            Err(e) => Err(self
                .journal_error(vm, "start", "VirtualMachine", vm.name.as_str(), &e)
                .await),
        }
    }

    /// The duplicate-IP guard: every original IP must be silent (ICMP, and TCP on the VM's
    /// checked ports).
    async fn ip_guard(&self, vm: &Vm) -> IpGuard {
        let timeout = self.plan.defaults.check_timeout;
        let ports: Vec<u16> = self
            .plan
            .checks_for(vm)
            .iter()
            .filter_map(|c| match c.kind {
                crate::plan::check::CheckKind::Tcp { port } => Some(port),
                _ => None,
            })
            .collect();
        for ip in vm
            .nics
            .iter()
            .filter_map(|n| n.ip.as_ref().map(|i| i.value))
        {
            let p = self.prober.icmp(ip, timeout).await;
            if p.outcome == crate::checks::result::Outcome::Pass {
                return IpGuard::Answering(format!("{ip} answers ICMP ({})", p.detail));
            }
            for port in &ports {
                let p = self
                    .prober
                    .tcp(std::net::SocketAddr::new(ip, *port), timeout)
                    .await;
                if p.outcome == crate::checks::result::Outcome::Pass {
                    return IpGuard::Answering(format!("{ip}:{port} accepts TCP ({})", p.detail));
                }
            }
        }
        IpGuard::Silent
    }

    async fn checks(&self, vm: &Vm) -> Update {
        // The engine's watch holds the VMI (read afresh at every attempt); without one
        // (tests), ask the API once.
        let mut fetched = Observations::new();
        if self.vmis.is_none() {
            let api: Api<VirtualMachineInstance> = Api::namespaced(self.client.clone(), self.ns());
            let vmi = call("get VirtualMachineInstance", || {
                api.get_opt(vm.name.as_str())
            })
            .await
            .ok()
            .flatten();
            if let Some(v) = vmi.and_then(|v| serde_json::to_value(&v).ok()) {
                fetched.insert_vmi(vm.name.value.clone(), &v);
            }
        }
        let watched = self.vmis.as_ref().map(|store| WatchedVmis {
            store,
            ns: self.ns(),
        });
        let obs: &dyn VmiSource = match &watched {
            Some(w) => w,
            None => &fetched,
        };
        let settings = RunSettings::from_plan(&self.plan);
        // Sequential on purpose: a VM has a handful of checks, and a plain loop keeps this
        // future `Send` for the engine's spawned command tasks.
        let mut results = Vec::new();
        for spec in self.plan.checks_for(vm) {
            results.push(
                runner::run_check(&self.plan, vm, &spec, self.prober.as_ref(), obs, &settings)
                    .await,
            );
        }
        let failing: Vec<String> = results
            .iter()
            .filter(|r| r.outcome.is_failure())
            .map(|r| format!("{} {}: {}", r.check, r.outcome, r.detail))
            .collect();
        let gate = if failing.is_empty() {
            Gate::Passed
        } else {
            Gate::Failed(failing.join("; "))
        };
        Update::Checks(gate, results)
    }

    /// Preflight for one VM: CRDs, namespace, StorageClasses, credentials Secret, then a
    /// server-side dry run of every object the VM needs. All problems in one answer.
    /// Plan-wide preflight facts (CRDs, namespace, StorageClasses, credentials Secret),
    /// asked of the cluster once per run and shared by every VM's preflight.
    async fn cluster_facts(&self) -> &ClusterFacts {
        self.cluster_facts
            .get_or_init(|| async {
                let mut global: Vec<String> = match &self.missing_crds {
                    Ok(missing) => missing
                        .iter()
                        .map(|c| format!("CRD {c} is not installed"))
                        .collect(),
                    Err(e) => vec![format!("cannot tell which CRDs are installed: {e}")],
                };
                let ns = self.ns().to_string();
                let nss: Api<Namespace> = Api::all(self.client.clone());
                match call("get Namespace", || nss.get_opt(&ns)).await {
                    Ok(Some(_)) => {}
                    Ok(None) => global.push(format!("namespace {ns} does not exist")),
                    Err(e) => global.push(format!("namespace {ns}: {}", api_msg(&e))),
                }
                if let Some(sec) = &self.plan.source.credentials_secret {
                    let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &ns);
                    match call("get Secret", || secrets.get_opt(sec.as_str())).await {
                        Ok(Some(_)) => {}
                        Ok(None) => {
                            global.push(format!("Secret {ns}/{} does not exist", sec.value))
                        }
                        Err(e) => global.push(format!("Secret {}: {}", sec.value, api_msg(&e))),
                    }
                }
                let scs: Api<StorageClass> = Api::all(self.client.clone());
                let mut bad_classes = std::collections::BTreeMap::new();
                let classes: BTreeSet<&str> = self
                    .plan
                    .vms
                    .iter()
                    .flat_map(|vm| vm.disks.iter())
                    .filter_map(|d| self.storage_class(d))
                    .collect();
                for sc in classes {
                    match call("get StorageClass", || scs.get_opt(sc)).await {
                        Ok(Some(_)) => {}
                        Ok(None) => {
                            bad_classes.insert(
                                sc.to_string(),
                                format!("StorageClass {sc} does not exist"),
                            );
                        }
                        Err(e) => {
                            bad_classes.insert(
                                sc.to_string(),
                                format!("StorageClass {sc}: {}", api_msg(&e)),
                            );
                        }
                    }
                }
                ClusterFacts {
                    global,
                    bad_classes,
                }
            })
            .await
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

    fn storage_class<'p>(&'p self, d: &'p crate::plan::Disk) -> Option<&'p str> {
        d.storage_class
            .as_ref()
            .or(self.plan.defaults.storage_class.as_ref())
            .map(|s| s.as_str())
    }

    /// Preflight for one VM: the plan-wide facts, the source VM in vCenter (when wavelift
    /// powers it off: it must exist, and its power state tells a resumed run whether an
    /// earlier one already powered it off), then a server-side dry run of every object the
    /// VM needs (each shared network once per run). All problems in one answer.
    async fn preflight(&self, vm: &Vm) -> (Gate, Option<Power>) {
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
        let classes: BTreeSet<&str> = vm
            .disks
            .iter()
            .filter_map(|d| self.storage_class(d))
            .collect();
        problems.extend(
            classes
                .iter()
                .filter_map(|c| facts.bad_classes.get(*c).cloned()),
        );
        let ns = self.ns().to_string();
        if problems.is_empty() {
            // Server-side dry run of every object (nothing is persisted).
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
            let dvs: Api<DataVolume> = Api::namespaced(self.client.clone(), &ns);
            for dv in build::data_volumes(&self.plan, vm) {
                match call("dry-run DataVolume", || dvs.create(&dry, &dv)).await {
                    Ok(_) => {}
                    Err(e) if is_code(&e, 409) => {}
                    Err(e) => problems.push(format!(
                        "DataVolume {}: {}",
                        dv.metadata.name.clone().unwrap_or_default(),
                        api_msg(&e)
                    )),
                }
            }
            let vms: Api<VirtualMachine> = Api::namespaced(self.client.clone(), &ns);
            let obj = build::virtual_machine(&self.plan, vm);
            match call("dry-run VirtualMachine", || vms.create(&dry, &obj)).await {
                Ok(_) => {}
                Err(e) if is_code(&e, 409) => {}
                Err(e) => {
                    problems.push(format!("VirtualMachine {}: {}", vm.name.value, api_msg(&e)))
                }
            }
        }
        let gate = if problems.is_empty() {
            Gate::Passed
        } else {
            Gate::Failed(problems.join("; "))
        };
        (gate, power)
    }
}

fn owned_by(
    labels_: &Option<std::collections::BTreeMap<String, String>>,
    plan: &Plan,
    vm: &Vm,
) -> bool {
    labels_.as_ref().is_some_and(|l| {
        l.get(labels::PLAN).map(String::as_str) == Some(plan.meta.name.as_str())
            && l.get(labels::VM).map(String::as_str) == Some(vm.name.as_str())
    })
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

/// The plan's wave names.
fn plan_waves(plan: &Plan) -> Vec<String> {
    plan.waves.iter().map(|w| w.name.value.clone()).collect()
}

/// The engine's watch on VMIs as the checks' source of guest-agent reports.
struct WatchedVmis<'a> {
    store: &'a Store<VirtualMachineInstance>,
    ns: &'a str,
}

impl VmiSource for WatchedVmis<'_> {
    fn vmi_interfaces(&self, vm: &str) -> Option<Vec<crate::checks::evaluate::VmiInterface>> {
        let vmi = self.store.get(&ObjectRef::new(vm).within(self.ns))?;
        let v = serde_json::to_value(&*vmi).ok()?;
        Some(crate::checks::evaluate::interfaces_from_vmi(&v))
    }
}

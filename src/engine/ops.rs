//! Carrying out [`Command`]s against the cluster, the source platform and the network.
//! Every mutating API call is reported as a `Mutation` event (the audit journal); every
//! create tolerates `AlreadyExists`, so a command re-issued after a crash is harmless.

use super::decide::{Command, Gate, IpGuard, Power};
use super::error::{api_message as api_msg, is_code, Error};
use super::events::{Emitter, EventKind};
use super::preflight::Preflight;
use super::probes::{ClusterProbes, PodReach, WithArp};
use super::schedule::Update;
use crate::checks::probe::Prober;
use crate::checks::runner::{self, Observations, RunSettings, VmiSource};
use crate::cluster::build;
use crate::cluster::call::call;
use crate::cluster::labels;
use crate::cluster::resources::{
    DataVolume, DvPhase, NetworkAttachmentDefinition, VirtualMachine, VirtualMachineInstance,
};
use crate::plan::{NetworkModel, Plan, Shutdown, Vm};
use crate::source::{SourceError, SourceOps, SourcePower};
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
    /// The engine's view of VMIs (checks read the guest agent's report from it).
    pub vmis: Option<Store<VirtualMachineInstance>>,
    /// Source-clock seconds per real second (the rehearsal world runs faster): a guest's
    /// `shutdown_timeout` is judged on the source's clock.
    pub source_speed: f64,
    preflight: Preflight,
    networks_applied: HashMap<String, OnceCell<()>>,
    /// Probe pods (`checks_from = "cluster"`).
    probes: Option<Arc<ClusterProbes>>,
    /// Each VM's drafted network policies (`[plan] policy = "apply"`; empty otherwise).
    pub policies: Arc<std::collections::BTreeMap<String, Vec<crate::policy::k8s::PolicyDoc>>>,
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
        let probes = ClusterProbes::for_plan(plan.clone(), client.clone(), dry_run, events.clone());
        let mut preflight = Preflight::new(
            plan.clone(),
            client.clone(),
            source.clone(),
            events.clone(),
            missing_crds,
            probes.clone(),
        );
        preflight.run_dry = dry_run;
        Ops {
            networks_applied: names.into_iter().map(|n| (n, OnceCell::new())).collect(),
            preflight,
            probes,
            plan,
            client,
            source,
            prober,
            dry_run,
            events,
            vmis,
            source_speed: 1.0,
            policies: Arc::default(),
        }
    }
}

impl Ops {
    /// How Forklift reaches vCenter (the source Provider wavelift writes).
    pub fn set_forklift_source(
        &mut self,
        source: Option<(
            crate::source::Credentials,
            crate::cluster::forklift::SourceConn,
        )>,
    ) {
        self.preflight.forklift_source = source;
    }

    /// The run's probe pods (`checks_from = "cluster"`).
    pub(super) fn probes(&self) -> Option<&ClusterProbes> {
        self.probes.as_deref()
    }

    pub(super) fn ns(&self) -> &str {
        self.plan.meta.namespace.as_str()
    }

    pub(super) async fn journal(&self, vm: &Vm, verb: &str, kind: &str, name: &str, result: &str) {
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

    pub(super) fn apply(&self) -> PatchParams {
        let p = PatchParams::apply(labels::FIELD_MANAGER).force();
        if self.dry_run {
            p.dry_run()
        } else {
            p
        }
    }

    /// Creates an object; `AlreadyExists` counts as done.
    pub(super) async fn create<K>(
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

    /// Carries out `cmd` for `vm`. `stamp`: the VM's power-off, when one was requested,
    /// written on the objects its cutover creates after it (see [`labels::POWER_OFF`]).
    pub async fn execute(
        &self,
        vm: &Vm,
        cmd: &Command,
        stamp: Option<labels::PowerOffStamp>,
    ) -> Result<Update, Error> {
        let ns = self.ns().to_string();
        match cmd {
            Command::RunPreflight => {
                let (gate, power) = self.preflight.vm(vm).await;
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
                let Some(mut dv) = build::data_volume(&self.plan, vm, *disk) else {
                    return Err(Error::NoDisk(*disk));
                };
                stamp_power_off(&mut dv.metadata, stamp);
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
                if !on {
                    // A warm VM's DataVolumes exist before its power-off: they get the
                    // stamp first, so a run killed during the shutdown leaves it behind.
                    // (Forklift names and owns its DataVolumes: not on that backend.)
                    let cdi = *self.plan.meta.backend == crate::plan::Backend::Cdi;
                    if let (Some(s), Some(_), true) =
                        (stamp, super::decide::warm::ctx_for(&self.plan, vm), cdi)
                    {
                        self.stamp_data_volumes(vm, s).await;
                    }
                    let off = self.power_off(vm, src.as_ref(), uuid).await?;
                    // Its import starts now: the ESXi host its disks are read through
                    // (`runtime.host`, for the per-host limit; a vCenter without VI/JSON
                    // cannot say, and the plan's `host` stands).
                    let host = match src.warm() {
                        Some(w) => w.host(vm.name.as_str(), uuid).await.ok().flatten(),
                        None => None,
                    };
                    return Ok(match off {
                        Update::PoweredOff { hard, .. } => Update::PoweredOff { hard, host },
                        other => other,
                    });
                }
                match src.power_on(vm.name.as_str(), uuid).await {
                    Ok(()) => {
                        self.journal(vm, verb, "SourceVM", vm.name.as_str(), "done")
                            .await;
                        Ok(Update::Power(Power::On))
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
                let mut obj = build::virtual_machine(&self.plan, vm);
                // Created running: `decide` asks for this only once its cutover guard held
                // in this run (source off, original IP silent), the same gate `StartVm`
                // has, so the separate start request is saved. A VM found created but not
                // started (a resumed run) is still started after the guard.
                obj.spec.run_strategy = Some("Always".to_string());
                stamp_power_off(&mut obj.metadata, stamp);
                if let Some(p) = &self.probes {
                    // Off the nodes the per-node L2 proof found without the VLAN.
                    build::avoid_nodes(&mut obj, &p.avoided_nodes(vm));
                }
                let api: Api<VirtualMachine> = Api::namespaced(self.client.clone(), &ns);
                self.create(vm, &api, &obj, "VirtualMachine", vm.name.as_str())
                    .await
                    .map(|_| Update::Nothing)
            }
            Command::StartVm => self.start_vm(vm).await.map(|_| Update::Nothing),
            Command::RunChecks => Ok(self.checks(vm).await),
            Command::ApplyPolicy => self.apply_policy(vm).await,
            Command::RevertPolicy { .. } => self.delete_policies(vm).await,
            Command::DeleteVm => {
                // Rollback removes the VM's network policies with the VM (found by label,
                // also those an earlier run applied when this one has `policy = "off"`).
                self.delete_policies(vm).await?;
                let api: Api<VirtualMachine> = Api::namespaced(self.client.clone(), &ns);
                match call("get VirtualMachine", || api.get_opt(vm.name.as_str()))
                    .await
                    .map_err(|e| Error::api(format!("get VirtualMachine {}", vm.name.value), &e))?
                {
                    Some(obj)
                        if owned_by(&obj.metadata.labels, &self.plan, vm)
                            || crate::cluster::forklift::forklift_made(
                                &obj.metadata.labels,
                                &self.plan,
                                vm,
                            ) =>
                    {
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
            Command::ReadSource
            | Command::EnableCbt
            | Command::CreateSnapshot { .. }
            | Command::RemoveSnapshot { .. }
            | Command::CreateStageVolume { .. }
            | Command::AddCheckpoint { .. } => self.execute_warm(vm, cmd, stamp).await,
            // Per-Plan requests: the scheduler issues the Plan's command instead.
            Command::StartMigration | Command::SetCutover => Ok(Update::Nothing),
            Command::CreateMigration { .. }
            | Command::PatchCutover { .. }
            | Command::CancelInForklift { .. }
            | Command::AdoptVm => self.execute_forklift(vm, cmd).await,
        }
    }

    /// Writes the power-off stamp on each of the VM's DataVolumes (metadata only, which
    /// CDI's webhook lets change). A failure costs only the downtime figure of a run that
    /// is then killed before the final stage: it is logged, and the power-off goes on.
    async fn stamp_data_volumes(&self, vm: &Vm, stamp: labels::PowerOffStamp) {
        let api: Api<DataVolume> = Api::namespaced(self.client.clone(), self.ns());
        let patch = serde_json::json!({
            "metadata": { "annotations": { labels::POWER_OFF: stamp.to_annotation() } }
        });
        let pp = PatchParams {
            field_manager: Some(labels::FIELD_MANAGER.to_string()),
            ..Default::default()
        };
        for d in 0..vm.disks.len() {
            let name = labels::data_volume_name(vm.name.as_str(), d);
            let mp = Patch::Merge(&patch);
            match call(&format!("patch DataVolume {name}"), || {
                api.patch(&name, &pp, &mp)
            })
            .await
            {
                Ok(_) => {
                    self.journal(vm, "annotate", "DataVolume", &name, "power-off recorded")
                        .await
                }
                Err(e) => {
                    self.journal(
                        vm,
                        "annotate",
                        "DataVolume",
                        &name,
                        &format!("error: {}", api_msg(&e)),
                    )
                    .await
                }
            }
        }
    }

    /// Powers the source off as `[source] shutdown` says: ask the guest (VMware Tools),
    /// wait for `POWERED_OFF` up to `shutdown_timeout` on the source's clock, and stop it
    /// hard only when the plan allows (`guest-then-hard`, the default). Each power
    /// operation is its own journal entry.
    async fn power_off(
        &self,
        vm: &Vm,
        src: &dyn SourceOps,
        uuid: Option<&str>,
    ) -> Result<Update, Error> {
        let name = vm.name.as_str();
        let source = &self.plan.source;
        let hard = |why: String| async move {
            match src.power_off(name, uuid).await {
                Ok(()) => {
                    self.journal(
                        vm,
                        "power-off",
                        "SourceVM",
                        name,
                        &format!("hard stop{why}"),
                    )
                    .await;
                    Ok(Update::PoweredOff {
                        hard: true,
                        host: None,
                    })
                }
                Err(e) => {
                    self.journal(vm, "power-off", "SourceVM", name, &format!("error: {e}"))
                        .await;
                    Err(Error::from(e))
                }
            }
        };
        // Already off (a resumed run asks again): nothing to shut down, and how it went off
        // (clean or hard) stays as the run that powered it off recorded it.
        if let Ok(SourcePower::Off) = src.power_state(name, uuid).await {
            self.journal(vm, "power-off", "SourceVM", name, "already off")
                .await;
            return Ok(Update::Power(Power::Off));
        }
        if source.shutdown == Shutdown::Hard {
            return hard(String::new()).await;
        }
        let fallback = source.shutdown == Shutdown::GuestThenHard;
        let asked = match src.warm() {
            Some(w) => w.shutdown_guest(name, uuid).await,
            None => Err(SourceError::Fault {
                kind: "NotSupported".into(),
                message: "this source cannot ask the guest to shut down".into(),
            }),
        };
        if let Err(e) = asked {
            self.journal(
                vm,
                "shutdown-guest",
                "SourceVM",
                name,
                &format!("error: {e}"),
            )
            .await;
            if fallback {
                return hard(format!(" (the guest could not be asked: {e})")).await;
            }
            return Err(e.into());
        }
        self.journal(vm, "shutdown-guest", "SourceVM", name, "requested")
            .await;
        let timeout = source.shutdown_timeout;
        let speed = self.source_speed.max(1e-6);
        let real = std::time::Duration::from_secs_f64(timeout.as_secs_f64() / speed);
        // Poll every 2 s of source time, at least every 5 ms and at most every 2 s real.
        let every = std::time::Duration::from_secs_f64((2.0 / speed).clamp(0.005, 2.0));
        let deadline = tokio::time::Instant::now() + real;
        loop {
            if let Ok(SourcePower::Off) = src.power_state(name, uuid).await {
                self.journal(vm, "power-off", "SourceVM", name, "guest shut down")
                    .await;
                return Ok(Update::PoweredOff {
                    hard: false,
                    host: None,
                });
            }
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(every).await;
        }
        let waited = crate::plan::time::humanize(timeout);
        self.journal(
            vm,
            "shutdown-guest",
            "SourceVM",
            name,
            &format!("error: not off after {waited}"),
        )
        .await;
        if fallback {
            return hard(format!(" (the guest was not off after {waited})")).await;
        }
        Err(Error::ShutdownTimeout(waited))
    }

    /// Records the VM's cutover on its VirtualMachine (annotation
    /// [`crate::checks::report::ANN_CUTOVER`]), where `verify` reads it.
    pub async fn record_cutover(
        &self,
        vm: &Vm,
        record: &crate::checks::report::CutoverRecord,
    ) -> Result<(), Error> {
        let name = vm.name.as_str();
        let value = serde_json::to_string(record).unwrap_or_default();
        let patch = serde_json::json!({ "metadata": { "annotations": {
            crate::checks::report::ANN_CUTOVER: value } } });
        let api: Api<VirtualMachine> = Api::namespaced(self.client.clone(), self.ns());
        let pp = PatchParams {
            field_manager: Some(labels::FIELD_MANAGER.to_string()),
            ..Default::default()
        };
        let mp = Patch::Merge(&patch);
        match call("annotate VirtualMachine", || api.patch(name, &pp, &mp)).await {
            Ok(_) => {
                self.journal(vm, "annotate", "VirtualMachine", name, "cutover recorded")
                    .await;
                Ok(())
            }
            Err(e) => Err(self
                .journal_error(vm, "annotate", "VirtualMachine", name, &e)
                .await),
        }
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
            for nad in build::network_attachments_of(&self.plan, net) {
                let nad_name = nad.metadata.name.clone().unwrap_or_default();
                let pp = self.apply();
                let patch = Patch::Apply(&nad);
                match call("apply NetworkAttachmentDefinition", || {
                    api.patch(&nad_name, &pp, &patch)
                })
                .await
                {
                    Ok(_) => {
                        self.journal(
                            vm,
                            "apply",
                            "NetworkAttachmentDefinition",
                            &nad_name,
                            "applied",
                        )
                        .await;
                    }
                    Err(e) => {
                        return Err(self
                            .journal_error(
                                vm,
                                "apply",
                                "NetworkAttachmentDefinition",
                                &nad_name,
                                &e,
                            )
                            .await)
                    }
                }
            }
            Ok(())
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
        // From the VLAN (`checks_from = "cluster"`): an ARP probe names the holder's MAC.
        if let Some(p) = &self.probes {
            if let Some(g) = p.guard(vm).await {
                return g;
            }
        }
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
        // From the VLAN (`checks_from = "cluster"`): one probe pod per network gathers the
        // ARP answers (and icmp/tcp from its `probe_ip`) the checks then read.
        let evidence = match &self.probes {
            Some(p) => Some(p.checked_evidence(vm, &settings).await),
            None => None,
        };
        let with_arp = evidence.as_ref().map(|e| WithArp {
            inner: obs,
            vm: vm.name.as_str(),
            evidence: e,
        });
        let obs: &dyn VmiSource = match &with_arp {
            Some(w) => w,
            None => obs,
        };
        let pod_reach = evidence.as_ref().map(|e| PodReach {
            inner: self.prober.as_ref(),
            evidence: e,
        });
        let prober: &dyn Prober = match &pod_reach {
            Some(p) => p,
            None => self.prober.as_ref(),
        };
        // Sequential on purpose: a VM has a handful of checks, and a plain loop keeps this
        // future `Send` for the engine's spawned command tasks.
        let mut results = Vec::new();
        for spec in self.plan.checks_for(vm) {
            results.push(runner::run_check(&self.plan, vm, &spec, prober, obs, &settings).await);
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

/// Writes the VM's power-off stamp on an object its cutover creates after the power-off.
fn stamp_power_off(
    meta: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    stamp: Option<labels::PowerOffStamp>,
) {
    if let Some(s) = stamp {
        meta.annotations
            .get_or_insert_with(Default::default)
            .insert(labels::POWER_OFF.to_string(), s.to_annotation());
    }
}

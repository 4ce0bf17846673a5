//! Carrying out the Forklift backend's [`Command`]s: a Plan's Migration, its cutover, a VM
//! in its `spec.cancel`, and taking over the VirtualMachine Forklift created. Each mutation
//! is a journal entry; each is safe to repeat (Migrations by name, server-side apply).

use super::decide::Command;
use super::error::{api_message, Error};
use super::ops::Ops;
use super::preflight::forklift as pf;
use super::schedule::Update;
use crate::cluster::call::call;
use crate::cluster::forklift as fk;
use crate::cluster::labels;
use crate::cluster::resources::VirtualMachine;
use crate::plan::Vm;
use kube::api::{Api, DynamicObject, Patch, PatchParams, ValidationDirective};
use serde_json::{json, Value};

impl Ops {
    fn forklift_api(&self, kind: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), self.ns(), &pf::resource(kind))
    }

    /// The `(id, name)` of each named VM, from the Forklift Plan's `spec.vms`.
    async fn plan_refs(
        &self,
        plan: &str,
        names: &[String],
    ) -> Result<Vec<(String, String)>, Error> {
        let api = self.forklift_api("Plan");
        let obj = call("get Plan", || api.get(plan))
            .await
            .map_err(|e| Error::api(format!("get Forklift Plan {plan}"), &e))?;
        let v = serde_json::to_value(&obj).unwrap_or(Value::Null);
        let vms = v
            .pointer("/spec/vms")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        Ok(names
            .iter()
            .filter_map(|n| {
                vms.iter()
                    .find(|r| r["name"] == n.as_str() || r["targetName"] == n.as_str())
                    .map(|r| (r["id"].as_str().unwrap_or_default().to_string(), n.clone()))
            })
            .collect())
    }

    pub(super) async fn execute_forklift(&self, vm: &Vm, cmd: &Command) -> Result<Update, Error> {
        match cmd {
            Command::CreateMigration {
                plan,
                attempt,
                cancel,
                cutover,
            } => {
                let Some(group) = fk::plan_groups(&self.plan)
                    .into_iter()
                    .find(|g| g.name == *plan)
                else {
                    return Err(Error::Api {
                        what: format!("Forklift Plan {plan}"),
                        message: "not a Plan of this plan file".into(),
                    });
                };
                let refs = if cancel.is_empty() {
                    Vec::new()
                } else {
                    self.plan_refs(plan, cancel).await?
                };
                let at = cutover
                    .then(|| crate::sim::time::rfc3339(super::events::now_ms() as u64 / 1000));
                let obj = fk::migration(&self.plan, &group, *attempt, at.as_deref(), &refs);
                let name = fk::migration_name(plan, *attempt);
                match pf::apply(&self.client, &obj, self.dry_run).await {
                    Ok(()) => {
                        let what = if refs.is_empty() {
                            "created".to_string()
                        } else {
                            format!(
                                "created; spec.cancel: {}",
                                refs.iter()
                                    .map(|(_, n)| n.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        };
                        self.journal(vm, "create", "Migration", &name, &what).await;
                        Ok(Update::Nothing)
                    }
                    Err(e) => {
                        self.journal(vm, "create", "Migration", &name, &format!("error: {e}"))
                            .await;
                        Err(Error::Refused {
                            verb: "create",
                            kind: "Migration",
                            name,
                            message: e,
                        })
                    }
                }
            }
            Command::PatchCutover { migration, at_ms } => {
                let at = crate::sim::time::rfc3339((*at_ms).max(0) as u64 / 1000);
                let patch = json!({ "spec": { "cutover": at } });
                self.merge_patch(
                    vm,
                    "Migration",
                    migration,
                    &patch,
                    &format!("spec.cutover = {at}"),
                )
                .await
            }
            Command::CancelInForklift { migration } => self.cancel_in(vm, migration).await,
            Command::AdoptVm => {
                let api: Api<VirtualMachine> = Api::namespaced(self.client.clone(), self.ns());
                let name = vm.name.as_str();
                let patch = json!({ "metadata": { "labels": labels::for_vm(
                    self.plan.meta.name.as_str(), vm.wave.as_str(), name) } });
                let pp = self.strict_merge();
                let mp = Patch::Merge(&patch);
                match call("label VirtualMachine", || api.patch(name, &pp, &mp)).await {
                    Ok(_) => {
                        self.journal(
                            vm,
                            "label",
                            "VirtualMachine",
                            name,
                            "wavelift's labels on the VM Forklift created",
                        )
                        .await;
                        Ok(Update::Nothing)
                    }
                    Err(e) => {
                        let message = api_message(&e);
                        self.journal(
                            vm,
                            "label",
                            "VirtualMachine",
                            name,
                            &format!("error: {message}"),
                        )
                        .await;
                        Err(Error::Refused {
                            verb: "label",
                            kind: "VirtualMachine",
                            name: name.to_string(),
                            message,
                        })
                    }
                }
            }
            _ => Ok(Update::Nothing),
        }
    }

    /// A merge patch's parameters: wavelift's field manager, `fieldValidation=Strict` (a
    /// field the CRD does not declare is refused, not pruned with a warning), `dryRun`.
    fn strict_merge(&self) -> PatchParams {
        PatchParams {
            field_manager: Some(labels::FIELD_MANAGER.to_string()),
            dry_run: self.dry_run,
            field_validation: Some(ValidationDirective::Strict),
            ..Default::default()
        }
    }

    /// Adds the VM to its Migration's `spec.cancel`. The list has no
    /// `x-kubernetes-list-type` in Forklift's CRD (operator/config/crd/bases/
    /// forklift.konveyor.io_migrations.yaml, v2.10.4 to v2.12.5): it is atomic, so neither a
    /// merge patch nor a server-side apply can add one item; the whole list is written. A
    /// concurrent writer (the UI, another wavelift cancelling a neighbour) must not be
    /// overwritten: the patch carries the `resourceVersion` read, and a `409 Conflict`
    /// reads again and retries.
    async fn cancel_in(&self, vm: &Vm, migration: &str) -> Result<Update, Error> {
        const ATTEMPTS: usize = 5;
        let api = self.forklift_api("Migration");
        let mut last = String::new();
        for _ in 0..ATTEMPTS {
            let obj = call("get Migration", || api.get(migration))
                .await
                .map_err(|e| Error::api(format!("get Migration {migration}"), &e))?;
            let v = serde_json::to_value(&obj).unwrap_or(Value::Null);
            let rv = obj.metadata.resource_version.clone().unwrap_or_default();
            let mut cancel = v
                .pointer("/spec/cancel")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let plan = v
                .pointer("/spec/plan/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let refs = self
                .plan_refs(&plan, std::slice::from_ref(&vm.name.value))
                .await?;
            for (id, name) in refs {
                if !cancel.iter().any(|c| c["id"] == id.as_str()) {
                    cancel.push(json!({ "id": id, "name": name }));
                }
            }
            let patch = json!({
                "metadata": { "resourceVersion": rv },
                "spec": { "cancel": cancel },
            });
            let what = format!("spec.cancel += {}", vm.name.value);
            match self.try_merge_patch("Migration", migration, &patch).await {
                Ok(()) => {
                    self.journal(vm, "patch", "Migration", migration, &what)
                        .await;
                    return Ok(Update::Nothing);
                }
                Err(kube::Error::Api(e)) if e.code == 409 => last = e.message,
                Err(e) => return self.patch_refused(vm, "Migration", migration, &e).await,
            }
        }
        let message = format!("{last} ({ATTEMPTS} attempts)");
        self.journal(
            vm,
            "patch",
            "Migration",
            migration,
            &format!("error: {message}"),
        )
        .await;
        Err(Error::Refused {
            verb: "patch",
            kind: "Migration",
            name: migration.to_string(),
            message,
        })
    }

    async fn try_merge_patch(
        &self,
        kind: &'static str,
        name: &str,
        patch: &Value,
    ) -> Result<(), kube::Error> {
        let api = self.forklift_api(kind);
        let pp = self.strict_merge();
        let mp = Patch::Merge(patch);
        call("patch Migration", || api.patch(name, &pp, &mp))
            .await
            .map(|_| ())
    }

    async fn patch_refused(
        &self,
        vm: &Vm,
        kind: &'static str,
        name: &str,
        e: &kube::Error,
    ) -> Result<Update, Error> {
        let message = api_message(e);
        self.journal(vm, "patch", kind, name, &format!("error: {message}"))
            .await;
        Err(Error::Refused {
            verb: "patch",
            kind,
            name: name.to_string(),
            message,
        })
    }

    async fn merge_patch(
        &self,
        vm: &Vm,
        kind: &'static str,
        name: &str,
        patch: &Value,
        what: &str,
    ) -> Result<Update, Error> {
        match self.try_merge_patch(kind, name, patch).await {
            Ok(()) => {
                self.journal(vm, "patch", kind, name, what).await;
                Ok(Update::Nothing)
            }
            Err(e) => self.patch_refused(vm, kind, name, &e).await,
        }
    }
}

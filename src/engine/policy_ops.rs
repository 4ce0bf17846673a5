//! Carrying out the network-policy [`Command`]s (`[plan] policy = "apply"`, issue 17): the
//! VM's drafted policies are server-side applied, labelled for the plan and the VM so that
//! rollback (and a resumed run) find them by label, and deleted on revert or rollback.
//! Each mutation is a journal entry.

use super::error::{api_message, Error};
use super::events::{EventKind, LogLevel};
use super::ops::Ops;
use super::schedule::Update;
use crate::cluster::call::call;
use crate::cluster::labels;
use crate::plan::Vm;
use crate::policy::k8s::{MnpVersion, PolicyDoc, PolicyKind, MNP_GROUP, POLICY_FOR};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch};
use serde_json::{json, Value};

/// The API resource a policy is served as.
pub(crate) fn resource(doc: &PolicyDoc) -> ApiResource {
    match &doc.kind {
        PolicyKind::NetworkPolicy => np_resource(),
        PolicyKind::MultiNetworkPolicy { version, .. } => mnp_resource(*version),
    }
}

fn np_resource() -> ApiResource {
    ApiResource {
        group: "networking.k8s.io".into(),
        version: "v1".into(),
        api_version: "networking.k8s.io/v1".into(),
        kind: "NetworkPolicy".into(),
        plural: "networkpolicies".into(),
    }
}

fn mnp_resource(version: MnpVersion) -> ApiResource {
    ApiResource {
        group: MNP_GROUP.into(),
        version: version.as_str().into(),
        api_version: format!("{MNP_GROUP}/{}", version.as_str()),
        kind: "MultiNetworkPolicy".into(),
        plural: "multi-networkpolicies".into(),
    }
}

fn kind_name(doc: &PolicyDoc) -> &'static str {
    match doc.kind {
        PolicyKind::NetworkPolicy => "NetworkPolicy",
        PolicyKind::MultiNetworkPolicy { .. } => "MultiNetworkPolicy",
    }
}

/// The object wavelift applies for `doc`, carrying wavelift's labels for the VM.
pub(crate) fn policy_object(
    doc: &PolicyDoc,
    vm_labels: &std::collections::BTreeMap<String, String>,
) -> Value {
    let ar = resource(doc);
    let mut labels = doc.labels.clone();
    labels.extend(vm_labels.clone());
    let mut meta = json!({
        "name": doc.name,
        "namespace": doc.namespace,
        "labels": labels,
    });
    if let PolicyKind::MultiNetworkPolicy { policy_for, .. } = &doc.kind {
        meta["annotations"] = json!({ POLICY_FOR: policy_for.join(",") });
    }
    json!({
        "apiVersion": ar.api_version,
        "kind": ar.kind,
        "metadata": meta,
        "spec": doc.spec,
    })
}

impl Ops {
    /// Server-side applies every policy drafted for `vm`.
    pub(super) async fn apply_policy(&self, vm: &Vm) -> Result<Update, Error> {
        let Some(docs) = self.policies.get(vm.name.as_str()) else {
            return Ok(Update::Nothing);
        };
        let vm_labels = labels::for_vm(
            self.plan.meta.name.as_str(),
            vm.wave.as_str(),
            vm.name.as_str(),
        );
        for doc in docs {
            let ar = resource(doc);
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.client.clone(), &doc.namespace, &ar);
            let obj = policy_object(doc, &vm_labels);
            let pp = self.apply();
            let patch = Patch::Apply(&obj);
            let applied = call("apply policy", || api.patch(&doc.name, &pp, &patch)).await;
            match applied {
                Ok(_) => {
                    self.journal(vm, "apply", &ar.kind, &doc.name, "applied")
                        .await;
                }
                Err(e) => {
                    let message = api_message(&e);
                    self.journal(
                        vm,
                        "apply",
                        &ar.kind,
                        &doc.name,
                        &format!("failed: {message}"),
                    )
                    .await;
                    return Err(Error::Refused {
                        verb: "apply",
                        kind: kind_name(doc),
                        name: doc.name.clone(),
                        message,
                    });
                }
            }
        }
        Ok(Update::Nothing)
    }

    /// Deletes every policy wavelift applied for `vm`, of both kinds, found by its labels:
    /// a resumed run and a rollback find what an earlier run applied, whatever this run's
    /// `policy` says. A kind (or MultiNetworkPolicy version) the cluster does not serve
    /// holds nothing; both MultiNetworkPolicy versions share one storage, so the first
    /// served is listed. A run that applies no policy for `vm` may lack the right to list
    /// them: that is a warning, not a failed rollback.
    pub(super) async fn delete_policies(&self, vm: &Vm) -> Result<Update, Error> {
        let selector = labels::vm_selector(self.plan.meta.name.as_str(), vm.name.as_str());
        let ours = self.policies.contains_key(vm.name.as_str());
        let mut mnp_listed = false;
        for ar in [
            np_resource(),
            mnp_resource(MnpVersion::V1beta2),
            mnp_resource(MnpVersion::V1beta1),
        ] {
            let mnp = ar.kind == "MultiNetworkPolicy";
            if mnp && mnp_listed {
                continue;
            }
            let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), self.ns(), &ar);
            let lp = ListParams::default().labels(&selector);
            let list = match call("list policies", || api.list(&lp)).await {
                Ok(l) => l,
                Err(kube::Error::Api(s)) if s.code == 404 => continue,
                Err(kube::Error::Api(s)) if s.code == 403 && !ours => {
                    let message = format!(
                        "cannot list {} in {} ({}): any an earlier run applied for {} stay",
                        ar.plural,
                        self.ns(),
                        s.message,
                        vm.name.value
                    );
                    self.events
                        .vm(
                            vm,
                            EventKind::Log {
                                level: LogLevel::Warn,
                                message,
                            },
                        )
                        .await;
                    mnp_listed |= mnp;
                    continue;
                }
                Err(e) => {
                    return Err(Error::api(
                        format!("list {} of {}", ar.kind, vm.name.value),
                        &e,
                    ))
                }
            };
            mnp_listed |= mnp;
            for obj in list.items {
                let name = obj.metadata.name.clone().unwrap_or_default();
                let dp = if self.dry_run {
                    DeleteParams::default().dry_run()
                } else {
                    DeleteParams::default()
                };
                match call("delete policy", || api.delete(&name, &dp)).await {
                    Ok(_) => self.journal(vm, "delete", &ar.kind, &name, "deleted").await,
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => {
                        self.journal(
                            vm,
                            "delete",
                            &ar.kind,
                            &name,
                            &format!("failed: {}", api_message(&e)),
                        )
                        .await;
                        return Err(Error::api(format!("delete {} {name}", ar.kind), &e));
                    }
                }
            }
        }
        Ok(Update::Nothing)
    }
}

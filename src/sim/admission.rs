//! Validating admission on create and update: the webhooks KubeVirt's virt-api and CDI's
//! cdi-apiserver register, run by the sim's API server before it persists an object (dry
//! runs included), the way a real API server calls a `ValidatingWebhookConfiguration`'s
//! webhooks.
//!
//! KubeVirt and CDI register their webhooks when they are installed, so the sim runs them
//! only when it simulates an installed KubeVirt and CDI
//! ([`crate::sim::SimOptions::kubevirt_webhooks`], set by every rehearsal). A bare sim is an
//! API server with the CRDs and no webhook configuration: it admits every schema-valid
//! object.
//!
//! Modelled webhook: `migration-create-validator.kubevirt.io` (CREATE of
//! `virtualmachineinstancemigrations`; kubevirt
//! `pkg/virt-operator/resource/generate/components/webhooks.go`), following
//! `pkg/virt-api/webhooks/validating-webhook/admitters/migration-create-admitter.go`.
//!
//! Modelled webhook: `datavolume-validate.cdi.kubevirt.io` (CREATE and UPDATE of
//! `datavolumes`, not of `datavolumes/status`; containerized-data-importer
//! `pkg/operator/resources/cluster/apiserver.go`), its rules from
//! `pkg/apiserver/webhooks/datavolume-validate.go` `Admit`:
//! - update: a DataVolume's spec may not change, except `checkpoints` and
//!   `finalCheckpoint` of a multi-stage import (the new spec has checkpoints and a `vddk`
//!   or `imageio` source);
//! - create and update: a name longer than 253 characters (`validateNameLength`);
//! - create: a PVC of the DataVolume's name exists that no DataVolume controls
//!   ("Destination PVC ns/name already exists"; the claim-adoption feature gate, off by
//!   default, is not modelled);
//! - create: of `validateDataVolumeSpec`, the VDDK source's required fields
//!   (`util.go` `validateVDDKSource`, `checkSourceURL`) and the storage size
//!   (`validateStorageSize`).
//!
//! A refusal is `toRejectedAdmissionResponse` (`pkg/apiserver/webhooks/handler.go`): 422,
//! the causes' messages each after a space.
//!
//! A refusal reaches the client as the API server words it: kubernetes
//! `staging/src/k8s.io/apiserver/pkg/admission/plugin/webhook/errors/statuserror.go`
//! (`ToStatusErr`).

use serde_json::Value;

use super::resources::ResourceDef;
use super::status::{ApiError, Cause};

/// Read access to the stored objects while a create is admitted (the store's lock is held).
pub trait Objects {
    /// One object.
    fn get(&self, res: &ResourceDef, ns: &str, name: &str) -> Option<Value>;
    /// The objects of a resource in a namespace.
    fn list(&self, res: &ResourceDef, ns: &str) -> Vec<Value>;
}

/// A validating admission step: gets the object about to be created or stored by an update
/// (name generated, defaulted and schema-validated) and, for an update, the stored object;
/// it may refuse.
pub type Admission =
    fn(&dyn Objects, &ResourceDef, &str, &Value, Option<&Value>) -> Result<(), ApiError>;

/// Name of KubeVirt's migration create webhook.
pub const MIGRATION_CREATE_VALIDATOR: &str = "migration-create-validator.kubevirt.io";
/// `v1.VirtualMachineInstanceIsMigratable` (kubevirt `staging/src/kubevirt.io/api/core/v1/types.go`).
pub const LIVE_MIGRATABLE: &str = "LiveMigratable";
/// `v1.VirtualMachineInstanceReasonDisksNotMigratable`.
pub const DISKS_NOT_LIVE_MIGRATABLE: &str = "DisksNotLiveMigratable";
/// `v1.MigrationSelectorLabel`.
pub const MIGRATION_SELECTOR_LABEL: &str = "kubevirt.io/vmi-name";
/// Name of CDI's DataVolume webhook.
pub const DATAVOLUME_VALIDATOR: &str = "datavolume-validate.cdi.kubevirt.io";

/// What a webhook answers when it refuses (`admissionv1.AdmissionResponse.Result`).
struct Denial {
    code: u16,
    reason: &'static str,
    message: String,
    causes: Vec<Cause>,
}

impl Denial {
    /// `webhookutils.ToAdmissionResponseError(err)`: code 400, message only
    /// (kubevirt `pkg/util/webhooks/webhooks.go`).
    fn error(message: impl Into<String>) -> Self {
        Denial {
            code: 400,
            reason: "",
            message: message.into(),
            causes: Vec::new(),
        }
    }

    /// `webhookutils.ToAdmissionResponse(causes)`: 422 Invalid, the causes' messages joined.
    fn causes(causes: Vec<Cause>) -> Self {
        let message = causes
            .iter()
            .take(10)
            .map(|c| c.message.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        Denial {
            code: 422,
            reason: "Invalid",
            message,
            causes,
        }
    }
}

/// The API server's error for a webhook's refusal (`ToStatusErr`): the webhook's code and
/// reason (`Forbidden` when it gave none), `RESOURCE.GROUP "NAME" is forbidden: admission
/// webhook "WEBHOOK" denied the request: MESSAGE`, and details naming the object unless the
/// webhook sent causes.
fn to_status_err(res: &ResourceDef, name: &str, webhook: &str, d: Denial) -> ApiError {
    let name = if name.is_empty() { "Unknown" } else { name };
    let message = format!(
        "{}.{} \"{name}\" is forbidden: admission webhook \"{webhook}\" denied the request: {}",
        res.plural, res.group, d.message
    );
    let reason = if d.reason.is_empty() {
        "Forbidden"
    } else {
        d.reason
    };
    let err = ApiError::new(d.code, reason, message);
    if d.causes.is_empty() {
        err.with_details(name, res.group, res.plural)
    } else {
        err.with_causes(d.causes)
    }
}

/// The validating webhooks of an installed KubeVirt and CDI.
pub fn installed(
    objs: &dyn Objects,
    res: &ResourceDef,
    ns: &str,
    obj: &Value,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    match old {
        None => {
            kubevirt(objs, res, ns, obj)?;
            cdi_create(objs, res, ns, obj)
        }
        Some(old) => cdi_update(res, obj, old),
    }
}

/// CDI's DataVolume webhook on create (`datavolume-validate.go` `Admit`, in its order:
/// name length, destination PVC, then the spec).
fn cdi_create(objs: &dyn Objects, res: &ResourceDef, ns: &str, dv: &Value) -> Result<(), ApiError> {
    if res.group != "cdi.kubevirt.io" || res.kind != "DataVolume" {
        return Ok(());
    }
    let name = str_at(dv, "/metadata/name");
    let refuse = |field: &str, reason: &str, message: String| {
        to_status_err(
            res,
            name,
            DATAVOLUME_VALIDATOR,
            cdi_rejected(vec![Cause {
                field: field.into(),
                reason: reason.into(),
                message,
            }]),
        )
    };
    // `validateNameLength(dv.Name, kvalidation.DNS1123SubdomainMaxLength)`.
    if name.len() > 253 {
        return Err(refuse(
            "",
            "FieldValueInvalid",
            "Name cannot be longer than 253 characters".into(),
        ));
    }
    let pvc_res = super::resources::find("", "v1", "persistentvolumeclaims");
    if let Some(pvc) = pvc_res.and_then(|r| objs.get(r, ns, name)) {
        let controller_kind = pvc
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|o| o.get("controller") == Some(&Value::Bool(true)))
            .map(|o| str_at(o, "/kind"));
        if controller_kind != Some("DataVolume") {
            return Err(refuse(
                "DataVolume.Name",
                "FieldValueDuplicate",
                format!("Destination PVC {ns}/{name} already exists"),
            ));
        }
    }
    // `validateVDDKSource` and `checkSourceURL` (`util.go`).
    if let Some(vddk) = dv.pointer("/spec/source/vddk").filter(|v| !v.is_null()) {
        let empty = |k: &str| str_at(vddk, &format!("/{k}")).is_empty();
        if ["secretRef", "uuid", "backingFile", "thumbprint"]
            .iter()
            .any(|k| empty(k))
        {
            return Err(refuse(
                "spec.source.VDDK",
                "FieldValueInvalid",
                "spec.source.VDDK source VDDK is not valid".into(),
            ));
        }
        let url = str_at(vddk, "/url");
        let bad = if url.is_empty() {
            Some("source URL is empty".to_string())
        } else {
            match url.split_once("://") {
                Some((scheme, rest))
                    if matches!(scheme, "http" | "https" | "gs") && !rest.is_empty() =>
                {
                    None
                }
                Some((_, rest)) if !rest.is_empty() => {
                    Some(format!("Invalid source URL scheme: {url}"))
                }
                _ => Some(format!("Invalid source URL: {url}")),
            }
        };
        if let Some(why) = bad {
            return Err(refuse(
                "spec.source.VDDK.url",
                "FieldValueInvalid",
                format!("spec.source {why}"),
            ));
        }
    }
    // `validateStorageSize`: the `storage` API (what wavelift sends); a clone may omit it.
    let size = dv
        .pointer("/spec/storage/resources/requests/storage")
        .or_else(|| dv.pointer("/spec/pvc/resources/requests/storage"));
    let which = if dv.pointer("/spec/pvc").is_some_and(|p| !p.is_null()) {
        "PVC"
    } else {
        "Storage"
    };
    let field = format!("spec.{which}.resources.requests.size");
    match size.and_then(Value::as_str) {
        Some(q) => {
            let bytes = crate::plan::quantity::Quantity::parse(q).map(|q| q.bytes);
            match bytes {
                Ok(0) => {
                    return Err(refuse(
                        &field,
                        "FieldValueInvalid",
                        format!("{which} size can't be equal or less than zero"),
                    ))
                }
                Ok(b) if b < 1 << 20 => {
                    return Err(refuse(
                        &field,
                        "FieldValueInvalid",
                        format!("{which} size should be at least 1MiB"),
                    ))
                }
                _ => {}
            }
        }
        None => {
            let clone = dv.pointer("/spec/sourceRef").is_some_and(|v| !v.is_null())
                || ["pvc", "snapshot"].iter().any(|k| {
                    dv.pointer(&format!("/spec/source/{k}"))
                        .is_some_and(|v| !v.is_null())
                });
            if which == "PVC" || !clone {
                return Err(refuse(
                    &field,
                    "FieldValueInvalid",
                    format!("{which} size is missing"),
                ));
            }
        }
    }
    Ok(())
}

/// `toRejectedAdmissionResponse` (CDI `pkg/apiserver/webhooks/handler.go`): 422, the
/// message every cause's after a space.
fn cdi_rejected(causes: Vec<Cause>) -> Denial {
    let message = causes.iter().map(|c| format!(" {}", c.message)).collect();
    Denial {
        code: 422,
        reason: "",
        message,
        causes,
    }
}

/// CDI's DataVolume webhook on update (`datavolume-validate.go` `Admit`).
fn cdi_update(res: &ResourceDef, new: &Value, old: &Value) -> Result<(), ApiError> {
    if res.group != "cdi.kubevirt.io" || res.kind != "DataVolume" {
        return Ok(());
    }
    let spec = |v: &Value, strip: bool| {
        let mut s = v.get("spec").cloned().unwrap_or(Value::Null);
        if let Some(o) = s.as_object_mut() {
            // Go's zero values equal absent fields under `apiequality.Semantic.DeepEqual`.
            o.retain(|_, x| !x.is_null());
            if o.get("checkpoints")
                .and_then(Value::as_array)
                .is_some_and(Vec::is_empty)
            {
                o.remove("checkpoints");
            }
            if o.get("finalCheckpoint") == Some(&Value::Bool(false)) {
                o.remove("finalCheckpoint");
            }
            if strip {
                o.remove("checkpoints");
                o.remove("finalCheckpoint");
            }
        }
        s
    };
    let has_checkpoints = new
        .pointer("/spec/checkpoints")
        .and_then(Value::as_array)
        .is_some_and(|c| !c.is_empty());
    let source = new.pointer("/spec/source");
    let multi_stage = has_checkpoints
        && ["vddk", "imageio"]
            .iter()
            .any(|k| source.and_then(|s| s.get(*k)).is_some_and(|x| !x.is_null()));
    let admitted = multi_stage && spec(new, true) == spec(old, true);
    if admitted || spec(new, false) == spec(old, false) {
        return Ok(());
    }
    let name = str_at(new, "/metadata/name");
    Err(to_status_err(
        res,
        name,
        DATAVOLUME_VALIDATOR,
        cdi_rejected(vec![Cause {
            field: "DataVolume.Spec".into(),
            reason: "FieldValueDuplicate".into(),
            message: "Cannot update DataVolume Spec".into(),
        }]),
    ))
}

/// KubeVirt's validating webhooks on create.
pub fn kubevirt(
    objs: &dyn Objects,
    res: &ResourceDef,
    ns: &str,
    obj: &Value,
) -> Result<(), ApiError> {
    if res.group != "kubevirt.io" || res.kind != "VirtualMachineInstanceMigration" {
        return Ok(());
    }
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    admit_migration(objs, ns, obj)
        .map_err(|d| to_status_err(res, name, MIGRATION_CREATE_VALIDATOR, d))
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

/// `MigrationCreateAdmitter.Admit` (migration-create-admitter.go), in its order.
fn admit_migration(objs: &dyn Objects, ns: &str, m: &Value) -> Result<(), Denial> {
    let vmi_name = str_at(m, "/spec/vmiName");
    // ValidateVirtualMachineInstanceMigrationSpec.
    if vmi_name.is_empty() {
        return Err(Denial::causes(vec![Cause {
            field: "spec.vmiName".into(),
            reason: "FieldValueRequired".into(),
            message: "vmiName is missing".into(),
        }]));
    }
    // Only virt-controller's service account may set a priority; no request through the
    // sim's API is virt-controller's (its simulated controllers never create migrations).
    if m.pointer("/spec/priority").is_some_and(|p| !p.is_null()) {
        return Err(Denial::causes(vec![Cause {
            field: "spec.migrationPriority".into(),
            reason: "FieldValueForbidden".into(),
            message:
                "Migration priority queue, only virt-controller is allowed to set priority field"
                    .into(),
        }]));
    }
    let vmi_res = super::resources::find("kubevirt.io", "v1", "virtualmachineinstances");
    let Some(vmi) = vmi_res.and_then(|r| objs.get(r, ns, vmi_name)) else {
        return Err(Denial::error(format!(
            "the VMI \"{ns}/{vmi_name}\" does not exist"
        )));
    };
    // vmi.IsFinal().
    if matches!(str_at(&vmi, "/status/phase"), "Succeeded" | "Failed") {
        return Err(Denial::error("Cannot migrate VMI in finalized state."));
    }
    // isMigratable: a LiveMigratable=False condition refuses, except non-migratable disks
    // on a decentralized (cross-namespace/cluster) migration.
    let spec_set = |k: &str| {
        m.pointer(&format!("/spec/{k}"))
            .is_some_and(|v| !v.is_null())
    };
    let decentralized = spec_set("sendTo") != spec_set("receive");
    let conditions = vmi
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for c in &conditions {
        if str_at(c, "/type") == LIVE_MIGRATABLE && str_at(c, "/status") == "False" {
            let reason = str_at(c, "/reason");
            if reason == DISKS_NOT_LIVE_MIGRATABLE && decentralized {
                continue;
            }
            return Err(Denial::error(format!(
                "Cannot migrate VMI, Reason: {reason}, Message: {}",
                str_at(c, "/message")
            )));
        }
    }
    // ensureNoMigrationConflict: no other migration of this VMI may be in flight (the
    // label is the one virt-controller puts on every migration).
    let vmim_res = super::resources::find("kubevirt.io", "v1", "virtualmachineinstancemigrations");
    if let Some(r) = vmim_res {
        for other in objs.list(r, ns) {
            let label = other
                .pointer("/metadata/labels")
                .and_then(|l| l.get(MIGRATION_SELECTOR_LABEL))
                .and_then(Value::as_str);
            if label != Some(vmi_name) {
                continue;
            }
            if !matches!(str_at(&other, "/status/phase"), "Succeeded" | "Failed") {
                return Err(Denial::error(format!(
                    "in-flight migration detected. Active migration job ({}) is currently already in progress for VMI {}.",
                    str_at(&other, "/metadata/uid"),
                    str_at(&other, "/spec/vmiName")
                )));
            }
        }
    }
    // Decentralized migrations need the DecentralizedLiveMigration feature gate, which
    // the simulated KubeVirt does not enable.
    if spec_set("sendTo") || spec_set("receive") {
        return Err(Denial::causes(vec![Cause {
            field: String::new(),
            reason: "FieldValueNotSupported".into(),
            message: "DecentralizedLiveMigration feature gate is not enabled in kubevirt resource"
                .into(),
        }]));
    }
    Ok(())
}

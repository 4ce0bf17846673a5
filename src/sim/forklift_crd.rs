//! Forklift's custom resources as its CRDs declare them: the structural schemas (field
//! names from kubev2v/forklift `pkg/apis/forklift/v1beta1/{provider,mapping,plan,
//! migration,hook}.go` and `plan/{vm,mapping}.go`, `provider/pair.go`, `ref/ref.go`), the
//! CRD's OpenAPI validation (`+kubebuilder:validation:Enum` markers, `required` fields)
//! and what an older release's CRD prunes.
//!
//! The schemas close the subtrees a migration engine writes (Provider spec, the maps'
//! `map[]`, Plan spec and `vms[]`, Migration spec) and leave `status` open, which the
//! controller owns. Affinity, hooks' `aap`, and the many Plan spec knobs the sim does not
//! act on are declared (so they are not pruned) with an open shape.

use serde_json::Value;

use super::resources::{ForkliftCrds, ResourceDef, FORKLIFT_GROUP};
use super::schema::{self, list, map, obj, object_meta, open, Shape};
use super::status::Cause;

fn top(extra: Vec<(&'static str, Shape)>) -> Shape {
    let mut fields = vec![
        ("apiVersion", Shape::Str),
        ("kind", Shape::Str),
        ("metadata", object_meta()),
    ];
    fields.extend(extra);
    obj(fields)
}

/// `core.ObjectReference` (k8s.io/api core/v1 types.go).
fn object_ref() -> Shape {
    obj(vec![
        ("kind", Shape::Str),
        ("namespace", Shape::Str),
        ("name", Shape::Str),
        ("uid", Shape::Str),
        ("apiVersion", Shape::Str),
        ("resourceVersion", Shape::Str),
        ("fieldPath", Shape::Str),
    ])
}

/// `ref.Ref` (pkg/apis/forklift/v1beta1/ref/ref.go).
fn forklift_ref(extra: Vec<(&'static str, Shape)>) -> Shape {
    let mut fields = vec![
        ("id", Shape::Str),
        ("name", Shape::Str),
        ("namespace", Shape::Str),
        ("type", Shape::Str),
    ];
    fields.extend(extra);
    obj(fields)
}

/// `provider.Pair` (pkg/apis/forklift/v1beta1/provider/pair.go).
fn provider_pair() -> Shape {
    obj(vec![
        ("source", object_ref()),
        ("destination", object_ref()),
    ])
}

/// `plan.VM` (pkg/apis/forklift/v1beta1/plan/vm.go); `targetPowerState` only from
/// v2.10.4.
fn plan_vm(target_power_state: bool) -> Shape {
    let mut fields = vec![
        ("id", Shape::Str),
        ("name", Shape::Str),
        ("namespace", Shape::Str),
        ("type", Shape::Str),
        (
            "hooks",
            list(obj(vec![("step", Shape::Str), ("hook", object_ref())])),
        ),
        ("luks", object_ref()),
        ("nbdeClevis", Shape::Bool),
        ("rootDisk", Shape::Str),
        ("instanceType", Shape::Str),
        ("pvcNameTemplate", Shape::Str),
        ("volumeNameTemplate", Shape::Str),
        ("networkNameTemplate", Shape::Str),
        ("targetName", Shape::Str),
        ("deleteVmOnFailMigration", Shape::Bool),
        ("migrateSharedDisks", Shape::Bool),
        ("enableNestedVirtualization", Shape::Bool),
        ("rdmAsLun", Shape::Bool),
        ("scsiReservation", Shape::Bool),
    ];
    if target_power_state {
        fields.push(("targetPowerState", Shape::Str));
    }
    obj(fields)
}

/// `PlanSpec` (pkg/apis/forklift/v1beta1/plan.go).
fn plan_spec(target_power_state: bool) -> Shape {
    let mut fields = vec![
        ("description", Shape::Str),
        ("targetNamespace", Shape::Str),
        ("serviceAccount", Shape::Str),
        ("targetLabels", map(Shape::Str)),
        ("targetNodeSelector", map(Shape::Str)),
        ("targetAffinity", Shape::Any),
        ("convertorLabels", map(Shape::Str)),
        ("convertorNodeSelector", map(Shape::Str)),
        ("convertorAffinity", Shape::Any),
        ("conversionTempStorageClass", Shape::Str),
        ("conversionTempStorageSize", Shape::Str),
        ("provider", provider_pair()),
        (
            "map",
            obj(vec![("network", object_ref()), ("storage", object_ref())]),
        ),
        ("vms", list(plan_vm(target_power_state))),
        ("warm", Shape::Bool),
        ("transferNetwork", object_ref()),
        ("archived", Shape::Bool),
        ("preserveClusterCpuModel", Shape::Bool),
        ("preserveStaticIPs", Shape::Bool),
        ("skipZoneNodeSelector", Shape::Bool),
        ("diskBus", Shape::Str),
        ("pvcNameTemplate", Shape::Str),
        ("pvcNameTemplateUseGenerateName", Shape::Bool),
        ("volumeNameTemplate", Shape::Str),
        ("networkNameTemplate", Shape::Str),
        ("migrateSharedDisks", Shape::Bool),
        ("rdmAsLun", Shape::Bool),
        ("scsiReservation", Shape::Bool),
        ("deleteGuestConversionPod", Shape::Bool),
        ("deleteVmOnFailMigration", Shape::Bool),
        ("installLegacyDrivers", Shape::Bool),
        ("enableNestedVirtualization", Shape::Bool),
        ("skipGuestConversion", Shape::Bool),
        ("useCompatibilityMode", Shape::Bool),
        ("type", Shape::Str),
        ("runPreflightInspection", Shape::Bool),
        ("customizationScripts", object_ref()),
        ("virtV2vImage", Shape::Str),
        ("xfsCompatibility", Shape::Bool),
        ("tagMapping", Shape::Any),
    ];
    if target_power_state {
        fields.push(("targetPowerState", Shape::Str));
    }
    obj(fields)
}

/// The known-field schema of a Forklift kind, as the given release's CRD has it.
pub fn shape(res: &ResourceDef, crds: &ForkliftCrds) -> Shape {
    let status = ("status", Shape::Any);
    match res.kind {
        // ProviderSpec (provider.go).
        "Provider" => top(vec![
            (
                "spec",
                obj(vec![
                    ("type", Shape::Str),
                    ("url", Shape::Str),
                    ("secret", object_ref()),
                    ("settings", map(Shape::Str)),
                ]),
            ),
            status,
        ]),
        // NetworkMapSpec / NetworkPair / DestinationNetwork (mapping.go).
        "NetworkMap" => top(vec![
            (
                "spec",
                obj(vec![
                    ("provider", provider_pair()),
                    (
                        "map",
                        list(obj(vec![
                            ("source", forklift_ref(vec![("vlan", Shape::Str)])),
                            (
                                "destination",
                                obj(vec![
                                    ("type", Shape::Str),
                                    ("namespace", Shape::Str),
                                    ("name", Shape::Str),
                                ]),
                            ),
                        ])),
                    ),
                ]),
            ),
            status,
        ]),
        // StorageMapSpec / StoragePair / DestinationStorage (mapping.go).
        "StorageMap" => top(vec![
            (
                "spec",
                obj(vec![
                    ("provider", provider_pair()),
                    (
                        "map",
                        list(obj(vec![
                            ("source", forklift_ref(Vec::new())),
                            (
                                "destination",
                                obj(vec![
                                    ("storageClass", Shape::Str),
                                    ("volumeMode", Shape::Str),
                                    ("accessMode", Shape::Str),
                                ]),
                            ),
                            ("offloadPlugin", Shape::Any),
                        ])),
                    ),
                ]),
            ),
            status,
        ]),
        "Plan" => top(vec![("spec", plan_spec(crds.target_power_state())), status]),
        // MigrationSpec (migration.go).
        "Migration" => top(vec![
            (
                "spec",
                obj(vec![
                    ("plan", object_ref()),
                    ("cancel", list(forklift_ref(Vec::new()))),
                    ("cutover", Shape::Str),
                    (
                        "vmCutover",
                        list(obj(vec![("id", Shape::Str), ("cutover", Shape::Str)])),
                    ),
                    ("resumeConversion", Shape::Bool),
                ]),
            ),
            status,
        ]),
        // HookSpec (hook.go).
        "Hook" => top(vec![
            (
                "spec",
                open(vec![
                    ("serviceAccount", Shape::Str),
                    ("image", Shape::Str),
                    ("playbook", Shape::Str),
                    ("deadline", Shape::Int),
                    ("aap", Shape::Any),
                ]),
            ),
            status,
        ]),
        _ => top(vec![("spec", Shape::Any), ("status", Shape::Any)]),
    }
}

/// Drops what the CRD's structural schema does not declare, as the API server prunes a
/// custom resource on every write (apiextensions-apiserver `pkg/apiserver/schema/pruning`):
/// an older Forklift's Plan loses `spec.targetPowerState` silently (with the default
/// `fieldValidation=Warn`, a warning says so).
pub fn prune(res: &ResourceDef, crds: &ForkliftCrds, obj: &mut Value) {
    if res.group != FORKLIFT_GROUP {
        return;
    }
    schema::prune(&shape(res, crds), obj);
}

fn enum_cause(path: &str, v: &str, allowed: &[&str]) -> Cause {
    let list: Vec<String> = allowed.iter().map(|a| format!("\"{a}\"")).collect();
    Cause::not_supported(
        path,
        format!(
            "Unsupported value: \"{v}\": supported values: {}",
            list.join(", ")
        ),
    )
}

fn check_enum(obj: &Value, pointer: &str, path: &str, allowed: &[&str], out: &mut Vec<Cause>) {
    if let Some(v) = obj.pointer(pointer).and_then(Value::as_str) {
        if !allowed.contains(&v) {
            out.push(enum_cause(path, v, allowed));
        }
    }
}

fn require(obj: &Value, pointer: &str, path: &str, out: &mut Vec<Cause>) {
    if obj.pointer(pointer).is_none_or(Value::is_null) {
        out.push(Cause::required(path));
    }
}

/// The CRDs' OpenAPI validation beyond types: `required` fields and `Enum` markers
/// (operator/config/crd/bases/forklift.konveyor.io_*.yaml), as the API server words them
/// (`Required value`, `Unsupported value: …: supported values: …`).
pub fn validate(res: &ResourceDef, obj: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    match res.kind {
        "Provider" => {
            // ProviderSpec.Type: `+kubebuilder:validation:Enum=openshift;vsphere;ovirt;
            // openstack;ova;hyperv;ec2`, required.
            require(obj, "/spec/type", "spec.type", &mut out);
            check_enum(
                obj,
                "/spec/type",
                "spec.type",
                &[
                    "openshift",
                    "vsphere",
                    "ovirt",
                    "openstack",
                    "ova",
                    "hyperv",
                    "ec2",
                ],
                &mut out,
            );
        }
        "NetworkMap" | "StorageMap" => {
            require(obj, "/spec/provider", "spec.provider", &mut out);
            require(obj, "/spec/map", "spec.map", &mut out);
            if res.kind == "NetworkMap" {
                for (i, m) in obj
                    .pointer("/spec/map")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    if m.pointer("/destination/type")
                        .and_then(Value::as_str)
                        .is_none()
                    {
                        out.push(Cause::required(format!("spec.map[{i}].destination.type")));
                    }
                }
            }
        }
        "Plan" => {
            for (p, f) in [
                ("/spec/targetNamespace", "spec.targetNamespace"),
                ("/spec/provider", "spec.provider"),
                ("/spec/map", "spec.map"),
                ("/spec/vms", "spec.vms"),
            ] {
                require(obj, p, f, &mut out);
            }
            check_enum(
                obj,
                "/spec/type",
                "spec.type",
                &["cold", "warm", "live", "conversion"],
                &mut out,
            );
            check_enum(
                obj,
                "/spec/targetPowerState",
                "spec.targetPowerState",
                &["on", "off", "auto"],
                &mut out,
            );
            for (i, vm) in obj
                .pointer("/spec/vms")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                check_enum(
                    vm,
                    "/targetPowerState",
                    &format!("spec.vms[{i}].targetPowerState"),
                    &["on", "off", "auto"],
                    &mut out,
                );
            }
        }
        "Migration" => require(obj, "/spec/plan", "spec.plan", &mut out),
        _ => {}
    }
    out
}

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

/// The `required` lists of the CRDs' `spec` subtrees, as `(path, fields)`: a path's `[]`
/// steps into every item of a list. The same in every release the sim models (v2.10.4 to
/// v2.12.5; kubev2v/forklift operator/config/crd/bases/forklift.konveyor.io_{providers,
/// networkmaps,storagemaps,plans,migrations}.yaml). A `required` list applies only where
/// its object is present, as the API server's OpenAPI validation does. Not listed:
/// StorageMap `offloadPlugin` (its one required member changed name in v2.12.2, and
/// wavelift writes none) and the Plan's affinity terms (open here).
fn required_fields(kind: &str) -> &'static [(&'static str, &'static [&'static str])] {
    match kind {
        // ProviderSpec: `secret` and `type` (provider.go: `Secret core.ObjectReference
        // json:"secret"`, no omitempty; the host Provider carries `secret: {}`).
        "Provider" => &[("spec", &["secret", "type"])],
        "NetworkMap" => &[
            ("spec", &["map", "provider"]),
            ("spec.map[]", &["destination", "source"]),
            ("spec.map[].destination", &["type"]),
            ("spec.provider", &["destination", "source"]),
        ],
        "StorageMap" => &[
            ("spec", &["map", "provider"]),
            ("spec.map[]", &["destination", "source"]),
            ("spec.map[].destination", &["storageClass"]),
            ("spec.provider", &["destination", "source"]),
        ],
        "Plan" => &[
            ("spec", &["map", "provider", "targetNamespace", "vms"]),
            ("spec.map", &["network", "storage"]),
            ("spec.provider", &["destination", "source"]),
            ("spec.vms[].hooks[]", &["hook", "step"]),
        ],
        "Migration" => &[("spec", &["plan"])],
        _ => &[],
    }
}

/// Every object at `path` (dot-separated, `[]` for each item of a list) with its field path
/// as the API server prints it (`spec.map[1].destination`).
fn objects_at<'v>(obj: &'v Value, path: &str) -> Vec<(String, &'v Value)> {
    let mut at = vec![(String::new(), obj)];
    for step in path.split('.') {
        let (name, each) = match step.strip_suffix("[]") {
            Some(n) => (n, true),
            None => (step, false),
        };
        let mut next = Vec::new();
        for (p, v) in at {
            let Some(child) = v.get(name).filter(|c| !c.is_null()) else {
                continue;
            };
            let p = if p.is_empty() {
                name.to_string()
            } else {
                format!("{p}.{name}")
            };
            if each {
                for (i, item) in child.as_array().into_iter().flatten().enumerate() {
                    next.push((format!("{p}[{i}]"), item));
                }
            } else {
                next.push((p, child));
            }
        }
        at = next;
    }
    at.into_iter().filter(|(_, v)| v.is_object()).collect()
}

/// The CRDs' OpenAPI validation beyond types: `required` fields and `Enum` markers
/// (operator/config/crd/bases/forklift.konveyor.io_*.yaml), as the API server words them
/// (`Required value`, `Unsupported value: …: supported values: …`).
pub fn validate(res: &ResourceDef, obj: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    for (path, fields) in required_fields(res.kind) {
        for (at, o) in objects_at(obj, path) {
            for f in *fields {
                require(o, &format!("/{f}"), &format!("{at}.{f}"), &mut out);
            }
        }
    }
    match res.kind {
        "Provider" => {
            // ProviderSpec.Type: `+kubebuilder:validation:Enum=openshift;vsphere;ovirt;
            // openstack;ova;hyperv;ec2`.
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
        "Plan" => {
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
        _ => {}
    }
    out
}

//! Known-field schemas per kind: enough to reject unknown fields under
//! `fieldValidation=Strict` and to publish OpenAPI v3 schemas.
//!
//! Pragmatic by design: metadata, every kind's top-level keys, and the subtrees wavelift
//! writes (VM template interfaces/networks, DataVolume sources and storage, NAD config,
//! migration spec) are closed; subtrees the sim does not model are open (any field goes).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::resources::ResourceDef;

/// The shape of a JSON value.
#[derive(Debug, Clone)]
pub enum Shape {
    /// Anything (unknown fields preserved).
    Any,
    /// A string.
    Str,
    /// An integer.
    Int,
    /// A boolean.
    Bool,
    /// An object with known fields; `open` allows fields beyond them.
    Obj {
        /// Known fields.
        fields: BTreeMap<&'static str, Shape>,
        /// Unknown fields allowed.
        open: bool,
    },
    /// A string-keyed map of values of one shape.
    Map(Box<Shape>),
    /// A list of values of one shape.
    List(Box<Shape>),
}

pub(crate) fn obj(fields: Vec<(&'static str, Shape)>) -> Shape {
    Shape::Obj {
        fields: fields.into_iter().collect(),
        open: false,
    }
}

pub(crate) fn open(fields: Vec<(&'static str, Shape)>) -> Shape {
    Shape::Obj {
        fields: fields.into_iter().collect(),
        open: true,
    }
}

pub(crate) fn list(s: Shape) -> Shape {
    Shape::List(Box::new(s))
}

pub(crate) fn map(s: Shape) -> Shape {
    Shape::Map(Box::new(s))
}

fn strs() -> Shape {
    list(Shape::Str)
}

/// `metadata` (ObjectMeta).
pub fn object_meta() -> Shape {
    obj(vec![
        ("name", Shape::Str),
        ("generateName", Shape::Str),
        ("namespace", Shape::Str),
        ("selfLink", Shape::Str),
        ("uid", Shape::Str),
        ("resourceVersion", Shape::Str),
        ("generation", Shape::Int),
        ("creationTimestamp", Shape::Str),
        ("deletionTimestamp", Shape::Str),
        ("deletionGracePeriodSeconds", Shape::Int),
        ("labels", map(Shape::Str)),
        ("annotations", map(Shape::Str)),
        ("ownerReferences", list(Shape::Any)),
        ("finalizers", strs()),
        ("managedFields", list(Shape::Any)),
    ])
}

fn template_meta() -> Shape {
    open(vec![
        ("name", Shape::Str),
        ("labels", map(Shape::Str)),
        ("annotations", map(Shape::Str)),
    ])
}

fn resources_req() -> Shape {
    obj(vec![
        ("requests", map(Shape::Any)),
        ("limits", map(Shape::Any)),
        ("claims", list(Shape::Any)),
    ])
}

fn pvc_spec() -> Shape {
    obj(vec![
        ("accessModes", strs()),
        ("selector", Shape::Any),
        ("resources", resources_req()),
        ("volumeName", Shape::Str),
        ("storageClassName", Shape::Str),
        ("volumeMode", Shape::Str),
        ("dataSource", Shape::Any),
        ("dataSourceRef", Shape::Any),
        ("volumeAttributesClassName", Shape::Str),
    ])
}

fn dv_storage() -> Shape {
    obj(vec![
        ("accessModes", strs()),
        ("volumeMode", Shape::Str),
        ("resources", resources_req()),
        ("storageClassName", Shape::Str),
        ("selector", Shape::Any),
        ("volumeName", Shape::Str),
        ("dataSource", Shape::Any),
        ("dataSourceRef", Shape::Any),
    ])
}

fn dv_spec() -> Shape {
    let http = obj(vec![
        ("url", Shape::Str),
        ("secretRef", Shape::Str),
        ("certConfigMap", Shape::Str),
        ("extraHeaders", strs()),
        ("secretExtraHeaders", strs()),
        ("checksum", Shape::Str),
        ("insecureSkipVerify", Shape::Bool),
    ]);
    let vddk = obj(vec![
        ("url", Shape::Str),
        ("uuid", Shape::Str),
        ("backingFile", Shape::Str),
        ("thumbprint", Shape::Str),
        ("secretRef", Shape::Str),
        ("certConfigMap", Shape::Str),
        ("initImageURL", Shape::Str),
        ("extraArgs", Shape::Str),
    ]);
    let source = obj(vec![
        ("http", http),
        ("s3", Shape::Any),
        ("gcs", Shape::Any),
        ("registry", Shape::Any),
        (
            "pvc",
            obj(vec![("namespace", Shape::Str), ("name", Shape::Str)]),
        ),
        ("snapshot", Shape::Any),
        ("upload", Shape::Any),
        ("blank", Shape::Any),
        ("imageio", Shape::Any),
        ("vddk", vddk),
    ]);
    obj(vec![
        ("source", source),
        ("sourceRef", Shape::Any),
        ("pvc", pvc_spec()),
        ("storage", dv_storage()),
        ("contentType", Shape::Str),
        ("checkpoints", list(Shape::Any)),
        ("finalCheckpoint", Shape::Bool),
        ("preallocation", Shape::Bool),
        ("priorityClassName", Shape::Str),
    ])
}

fn vmi_spec() -> Shape {
    let interface = obj(vec![
        ("name", Shape::Str),
        ("bridge", Shape::Any),
        ("masquerade", Shape::Any),
        ("sriov", Shape::Any),
        ("slirp", Shape::Any),
        ("macvtap", Shape::Any),
        ("passt", Shape::Any),
        ("passtBinding", Shape::Any),
        ("binding", obj(vec![("name", Shape::Str)])),
        ("macAddress", Shape::Str),
        ("model", Shape::Str),
        ("ports", list(Shape::Any)),
        ("pciAddress", Shape::Str),
        ("bootOrder", Shape::Int),
        ("dhcpOptions", Shape::Any),
        ("tag", Shape::Str),
        ("acpiIndex", Shape::Int),
        ("state", Shape::Str),
    ]);
    let network = obj(vec![
        ("name", Shape::Str),
        (
            "pod",
            obj(vec![
                ("vmNetworkCIDR", Shape::Str),
                ("vmIPv6NetworkCIDR", Shape::Str),
            ]),
        ),
        (
            "multus",
            obj(vec![("networkName", Shape::Str), ("default", Shape::Bool)]),
        ),
        ("resourceClaim", Shape::Any),
    ]);
    let devices = open(vec![
        ("disks", list(Shape::Any)),
        ("interfaces", list(interface)),
    ]);
    let domain = open(vec![
        ("devices", devices),
        ("cpu", Shape::Any),
        ("memory", Shape::Any),
        ("resources", Shape::Any),
        ("machine", Shape::Any),
        ("firmware", Shape::Any),
        ("features", Shape::Any),
        ("clock", Shape::Any),
    ]);
    let volume = open(vec![
        ("name", Shape::Str),
        (
            "dataVolume",
            obj(vec![("name", Shape::Str), ("hotpluggable", Shape::Bool)]),
        ),
    ]);
    open(vec![
        ("domain", domain),
        ("networks", list(network)),
        ("volumes", list(volume)),
        ("nodeSelector", map(Shape::Str)),
        ("affinity", Shape::Any),
        ("tolerations", list(Shape::Any)),
        ("terminationGracePeriodSeconds", Shape::Int),
        ("evictionStrategy", Shape::Str),
        ("hostname", Shape::Str),
        ("subdomain", Shape::Str),
    ])
}

/// A `LabelSelector` (apimachinery meta/v1).
pub(crate) fn label_selector() -> Shape {
    obj(vec![
        ("matchLabels", map(Shape::Str)),
        (
            "matchExpressions",
            list(obj(vec![
                ("key", Shape::Str),
                ("operator", Shape::Str),
                ("values", strs()),
            ])),
        ),
    ])
}

/// `NetworkPolicySpec` (k8s.io/api networking/v1 types.go), with or without `endPort` (the
/// v1beta1 MultiNetworkPolicy has none). `port` is int-or-string.
pub(crate) fn network_policy_spec(end_port: bool) -> Shape {
    let mut port = vec![("protocol", Shape::Str), ("port", Shape::Any)];
    if end_port {
        port.push(("endPort", Shape::Int));
    }
    let peer = obj(vec![
        ("podSelector", label_selector()),
        ("namespaceSelector", label_selector()),
        (
            "ipBlock",
            obj(vec![("cidr", Shape::Str), ("except", strs())]),
        ),
    ]);
    obj(vec![
        ("podSelector", label_selector()),
        (
            "ingress",
            list(obj(vec![
                ("ports", list(obj(port.clone()))),
                ("from", list(peer.clone())),
            ])),
        ),
        (
            "egress",
            list(obj(vec![("ports", list(obj(port))), ("to", list(peer))])),
        ),
        ("policyTypes", strs()),
    ])
}

fn top(extra: Vec<(&'static str, Shape)>) -> Shape {
    let mut fields = vec![
        ("apiVersion", Shape::Str),
        ("kind", Shape::Str),
        ("metadata", object_meta()),
    ];
    fields.extend(extra);
    obj(fields)
}

/// The known-field schema of a built-in kind (Forklift's: [`super::kind_schema`]).
pub fn builtin(res: &ResourceDef) -> Shape {
    match res.kind {
        "Namespace" => top(vec![
            ("spec", obj(vec![("finalizers", strs())])),
            ("status", Shape::Any),
        ]),
        "Node" => top(vec![("spec", Shape::Any), ("status", Shape::Any)]),
        "Secret" => top(vec![
            ("data", map(Shape::Str)),
            ("stringData", map(Shape::Str)),
            ("type", Shape::Str),
            ("immutable", Shape::Bool),
        ]),
        "Event" => top(vec![
            ("involvedObject", Shape::Any),
            ("reason", Shape::Str),
            ("message", Shape::Str),
            ("source", Shape::Any),
            ("firstTimestamp", Shape::Str),
            ("lastTimestamp", Shape::Str),
            ("eventTime", Shape::Any),
            ("count", Shape::Int),
            ("type", Shape::Str),
            ("series", Shape::Any),
            ("action", Shape::Str),
            ("related", Shape::Any),
            ("reportingComponent", Shape::Str),
            ("reportingInstance", Shape::Str),
        ]),
        "PersistentVolumeClaim" => top(vec![("spec", pvc_spec()), ("status", Shape::Any)]),
        // k8s.io/api core/v1 types.go ConfigMap.
        "ConfigMap" => top(vec![
            ("data", map(Shape::Str)),
            ("binaryData", map(Shape::Str)),
            ("immutable", Shape::Bool),
        ]),
        // k8s.io/api coordination/v1 types.go LeaseSpec.
        "Lease" => top(vec![(
            "spec",
            obj(vec![
                ("holderIdentity", Shape::Str),
                ("leaseDurationSeconds", Shape::Int),
                ("acquireTime", Shape::Str),
                ("renewTime", Shape::Str),
                ("leaseTransitions", Shape::Int),
                ("strategy", Shape::Str),
                ("preferredHolder", Shape::Str),
            ]),
        )]),
        // k8s.io/api authorization/v1 types.go SelfSubjectAccessReviewSpec.
        "SelfSubjectAccessReview" => top(vec![
            (
                "spec",
                obj(vec![
                    (
                        "resourceAttributes",
                        obj(vec![
                            ("namespace", Shape::Str),
                            ("verb", Shape::Str),
                            ("group", Shape::Str),
                            ("version", Shape::Str),
                            ("resource", Shape::Str),
                            ("subresource", Shape::Str),
                            ("name", Shape::Str),
                            ("fieldSelector", Shape::Any),
                            ("labelSelector", Shape::Any),
                        ]),
                    ),
                    (
                        "nonResourceAttributes",
                        obj(vec![("path", Shape::Str), ("verb", Shape::Str)]),
                    ),
                ]),
            ),
            ("status", Shape::Any),
        ]),
        "StorageClass" => top(vec![
            ("provisioner", Shape::Str),
            ("parameters", map(Shape::Str)),
            ("reclaimPolicy", Shape::Str),
            ("mountOptions", strs()),
            ("allowVolumeExpansion", Shape::Bool),
            ("volumeBindingMode", Shape::Str),
            ("allowedTopologies", list(Shape::Any)),
        ]),
        "NetworkAttachmentDefinition" => top(vec![("spec", obj(vec![("config", Shape::Str)]))]),
        // networking.k8s.io/v1 NetworkPolicy (k8s.io/api networking/v1 types.go; no status
        // since 1.28).
        "NetworkPolicy" => top(vec![("spec", network_policy_spec(true))]),
        // The multi-networkpolicy CRD's structural schema (k8snetworkplumbingwg/
        // multi-networkpolicy scheme.yml): the NetworkPolicy spec, `endPort` only in v1beta2.
        "MultiNetworkPolicy" => top(vec![(
            "spec",
            network_policy_spec(res.version != "v1beta1"),
        )]),
        "DataVolume" => top(vec![("spec", dv_spec()), ("status", Shape::Any)]),
        "VirtualMachine" => top(vec![
            (
                "spec",
                obj(vec![
                    ("runStrategy", Shape::Str),
                    ("running", Shape::Bool),
                    (
                        "template",
                        obj(vec![("metadata", template_meta()), ("spec", vmi_spec())]),
                    ),
                    (
                        "dataVolumeTemplates",
                        list(obj(vec![
                            ("apiVersion", Shape::Str),
                            ("kind", Shape::Str),
                            ("metadata", template_meta()),
                            ("spec", dv_spec()),
                        ])),
                    ),
                    ("instancetype", Shape::Any),
                    ("preference", Shape::Any),
                    ("updateVolumesStrategy", Shape::Str),
                ]),
            ),
            ("status", Shape::Any),
        ]),
        "VirtualMachineInstance" => top(vec![("spec", vmi_spec()), ("status", Shape::Any)]),
        "VirtualMachineInstanceMigration" => top(vec![
            (
                "spec",
                obj(vec![
                    ("vmiName", Shape::Str),
                    ("addedNodeSelector", map(Shape::Str)),
                    ("priority", Shape::Str),
                ]),
            ),
            ("status", Shape::Any),
        ]),
        _ => top(vec![("spec", Shape::Any), ("status", Shape::Any)]),
    }
}

/// Drops the fields a closed shape does not declare, as the API server prunes a custom
/// resource to its structural schema on every write (apiextensions-apiserver
/// `pkg/apiserver/schema/pruning`).
pub fn prune(shape: &Shape, value: &mut Value) {
    match (shape, value) {
        (Shape::Obj { fields, open }, Value::Object(m)) => {
            if !open {
                m.retain(|k, _| fields.contains_key(k.as_str()));
            }
            for (k, v) in m.iter_mut() {
                if let Some(s) = fields.get(k.as_str()) {
                    prune(s, v);
                }
            }
        }
        (Shape::Map(s), Value::Object(m)) => m.values_mut().for_each(|v| prune(s, v)),
        (Shape::List(s), Value::Array(items)) => items.iter_mut().for_each(|v| prune(s, v)),
        _ => {}
    }
}

/// A MultiNetworkPolicy's spec pruned to its version's schema: a v1beta1 object loses
/// `endPort` (with the default `fieldValidation=Warn`, a warning names it; `Strict`
/// refuses it), so its port range becomes its first port, as on a real cluster.
pub fn prune_multi_network_policy(res: &ResourceDef, obj: &mut Value) {
    if res.kind == "MultiNetworkPolicy" {
        if let Some(spec) = obj.get_mut("spec") {
            prune(&network_policy_spec(res.version != "v1beta1"), spec);
        }
    }
}

/// Paths (`spec.foo`, `spec.template.spec.networks[0].bogus`) of fields the schema does
/// not declare.
pub fn unknown_fields(shape: &Shape, value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(shape, value, "", &mut out);
    out
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn walk(shape: &Shape, value: &Value, path: &str, out: &mut Vec<String>) {
    match (shape, value) {
        (Shape::Obj { fields, open }, Value::Object(m)) => {
            for (k, v) in m {
                match fields.get(k.as_str()) {
                    Some(s) => walk(s, v, &join(path, k), out),
                    None if *open => {}
                    None => out.push(join(path, k)),
                }
            }
        }
        (Shape::Map(s), Value::Object(m)) => {
            for (k, v) in m {
                walk(s, v, &join(path, k), out);
            }
        }
        (Shape::List(s), Value::Array(items)) => {
            for (i, v) in items.iter().enumerate() {
                walk(s, v, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Values whose JSON type is not the one the schema declares, as a custom resource's
/// structural schema refuses them: apiextensions-apiserver
/// pkg/apiserver/validation/validation.go turns kube-openapi's `InvalidTypeCode` errors
/// into `field.TypeInvalid(path, actualType, "PATH in body must be of type TYPE: \"ACTUAL\"")`,
/// so `"spec": 5` is `spec: Invalid value: "integer": spec in body must be of type
/// object: "integer"`. Nulls are skipped (the API server prunes them from fields that are
/// not nullable); `metadata` is left to the object-meta checks.
pub fn type_errors(shape: &Shape, value: &Value) -> Vec<super::status::Cause> {
    let mut out = Vec::new();
    if let (Shape::Obj { fields, .. }, Value::Object(m)) = (shape, value) {
        for (k, v) in m {
            if k == "metadata" {
                continue;
            }
            if let Some(s) = fields.get(k.as_str()) {
                check_type(s, v, k, &mut out);
            }
        }
    } else {
        check_type(shape, value, "", &mut out);
    }
    out
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn check_type(shape: &Shape, value: &Value, path: &str, out: &mut Vec<super::status::Cause>) {
    if value.is_null() {
        return;
    }
    let want = match shape {
        Shape::Any => return,
        Shape::Str => "string",
        Shape::Int => "integer",
        Shape::Bool => "boolean",
        Shape::Obj { .. } | Shape::Map(_) => "object",
        Shape::List(_) => "array",
    };
    let got = json_type(value);
    if got != want {
        out.push(super::status::Cause::type_invalid(
            path,
            format!("Invalid value: \"{got}\": {path} in body must be of type {want}: \"{got}\""),
        ));
        return;
    }
    match (shape, value) {
        (Shape::Obj { fields, .. }, Value::Object(m)) => {
            for (k, v) in m {
                if let Some(s) = fields.get(k.as_str()) {
                    check_type(s, v, &join(path, k), out);
                }
            }
        }
        (Shape::Map(s), Value::Object(m)) => {
            for (k, v) in m {
                check_type(s, v, &join(path, k), out);
            }
        }
        (Shape::List(s), Value::Array(items)) => {
            for (i, v) in items.iter().enumerate() {
                check_type(s, v, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// The OpenAPI v3 schema of a shape.
pub fn to_openapi(shape: &Shape) -> Value {
    match shape {
        Shape::Any => json!({"x-kubernetes-preserve-unknown-fields": true}),
        Shape::Str => json!({"type": "string"}),
        Shape::Int => json!({"type": "integer", "format": "int64"}),
        Shape::Bool => json!({"type": "boolean"}),
        Shape::Obj { fields, open } => {
            let props: serde_json::Map<String, Value> = fields
                .iter()
                .map(|(k, v)| ((*k).to_string(), to_openapi(v)))
                .collect();
            let mut s = json!({"type": "object", "properties": props});
            if *open {
                s["x-kubernetes-preserve-unknown-fields"] = json!(true);
            }
            s
        }
        Shape::Map(s) => json!({"type": "object", "additionalProperties": to_openapi(s)}),
        Shape::List(s) => json!({"type": "array", "items": to_openapi(s)}),
    }
}

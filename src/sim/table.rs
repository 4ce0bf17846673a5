//! Server-side printing: `meta.k8s.io/v1` `Table` answers for clients that ask for them
//! (kubectl's `Accept: application/json;as=Table;v=v1;g=meta.k8s.io,…`), with the
//! columns the real CRDs print (`kubectl get vm` shows STATUS and READY, `get dv` shows
//! PHASE and PROGRESS, …). Each row carries the full object.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::resources::ResourceDef;

/// Whether an `Accept` header asks for a `meta.k8s.io/v1` Table.
pub fn wants_table(accept: &str) -> bool {
    accept.split(',').any(|part| {
        let p: Vec<&str> = part.split(';').map(str::trim).collect();
        p.contains(&"as=Table") && p.contains(&"g=meta.k8s.io") && p.contains(&"v=v1")
    })
}

/// (header, type, JSON pointer) of a kind's extra columns, after NAME.
fn columns(kind: &str) -> &'static [(&'static str, &'static str, &'static str)] {
    match kind {
        "VirtualMachine" => &[
            ("Status", "string", "/status/printableStatus"),
            ("Ready", "string", "/status/ready"),
        ],
        "VirtualMachineInstance" => &[
            ("Phase", "string", "/status/phase"),
            ("IP", "string", "/status/interfaces/0/ipAddress"),
            ("NodeName", "string", "/status/nodeName"),
            ("Ready", "string", "/status/conditions"),
        ],
        "VirtualMachineInstanceMigration" => &[
            ("Phase", "string", "/status/phase"),
            ("VMI", "string", "/spec/vmiName"),
        ],
        "DataVolume" => &[
            ("Phase", "string", "/status/phase"),
            ("Progress", "string", "/status/progress"),
            ("Restarts", "integer", "/status/restartCount"),
        ],
        "PersistentVolumeClaim" => &[
            ("Status", "string", "/status/phase"),
            ("Capacity", "string", "/spec/resources/requests/storage"),
            ("Access Modes", "string", "/spec/accessModes"),
            ("StorageClass", "string", "/spec/storageClassName"),
        ],
        "Namespace" => &[("Status", "string", "/status/phase")],
        // kubernetes pkg/printers/internalversion/printers.go
        // networkPolicyColumnDefinitions (Name, Pod-Selector, Age).
        "NetworkPolicy" => &[("Pod-Selector", "string", "/spec/podSelector")],
        // kubernetes pkg/printers/internalversion/printers.go podColumnDefinitions (IP and
        // Node are `-o wide`).
        "Pod" => &[
            ("Ready", "string", "/status/containerStatuses"),
            ("Status", "string", "/status"),
            ("Restarts", "string", "/status/containerStatuses"),
            ("Age", "string", ""),
            ("IP", "string", "/status/podIP"),
            ("Node", "string", "/spec/nodeName"),
        ],
        "Service" => &[
            ("Type", "string", "/spec/type"),
            ("Cluster-IP", "string", "/spec/clusterIP"),
        ],
        // kubernetes pkg/printers/internalversion/printers.go nodeColumnDefinitions; the
        // last five are `-o wide` (priority 1).
        "Node" => &[
            ("Status", "string", "/status/conditions"),
            ("Roles", "string", "/metadata/labels"),
            ("Age", "string", ""),
            ("Version", "string", "/status/nodeInfo/kubeletVersion"),
            ("Internal-IP", "string", "/status/addresses"),
            ("External-IP", "string", "/status/addresses"),
            ("OS-Image", "string", "/status/nodeInfo/osImage"),
            ("Kernel-Version", "string", "/status/nodeInfo/kernelVersion"),
            (
                "Container-Runtime",
                "string",
                "/status/nodeInfo/containerRuntimeVersion",
            ),
        ],
        "Secret" => &[("Type", "string", "/type"), ("Data", "integer", "/data")],
        // kubernetes pkg/printers/internalversion/printers.go: configMapColumnDefinitions
        // (Name, Data, Age) and leaseColumnDefinitions (Name, Holder, Age).
        "ConfigMap" => &[("Data", "integer", "/data")],
        "Lease" => &[("Holder", "string", "/spec/holderIdentity")],
        "StorageClass" => &[
            ("Provisioner", "string", "/provisioner"),
            ("ReclaimPolicy", "string", "/reclaimPolicy"),
            ("VolumeBindingMode", "string", "/volumeBindingMode"),
        ],
        "Event" => &[
            ("Type", "string", "/type"),
            ("Reason", "string", "/reason"),
            ("Object", "string", "/involvedObject"),
            ("Message", "string", "/message"),
        ],
        // Forklift's additionalPrinterColumns (kubev2v/forklift
        // operator/config/crd/bases/forklift.konveyor.io_{providers,plans,migrations,
        // networkmaps,storagemaps,hooks}.yaml); `cond:T` is
        // `.status.conditions[?(@.type=='T')].status`.
        "Provider" => &[
            ("TYPE", "string", "/spec/type"),
            ("STATUS", "string", "/status/phase"),
            ("READY", "string", "cond:Ready"),
            ("CONNECTED", "string", "cond:ConnectionTestSucceeded"),
            ("INVENTORY", "string", "cond:InventoryCreated"),
            ("URL", "string", "/spec/url"),
        ],
        "Plan" => &[
            ("READY", "string", "cond:Ready"),
            ("EXECUTING", "string", "cond:Executing"),
            ("SUCCEEDED", "string", "cond:Succeeded"),
            ("FAILED", "string", "cond:Failed"),
        ],
        "Migration" => &[
            ("READY", "string", "cond:Ready"),
            ("RUNNING", "string", "cond:Running"),
            ("SUCCEEDED", "string", "cond:Succeeded"),
            ("FAILED", "string", "cond:Failed"),
        ],
        "NetworkMap" | "StorageMap" => &[("READY", "string", "cond:Ready")],
        "Hook" => &[
            ("Ready", "string", "cond:Ready"),
            ("Image", "string", "/spec/image"),
        ],
        _ => &[],
    }
}

/// Columns only `-o wide` shows.
fn priority(kind: &str, header: &str) -> u8 {
    match (kind, header) {
        (
            "Node",
            "Internal-IP" | "External-IP" | "OS-Image" | "Kernel-Version" | "Container-Runtime",
        ) => 1,
        ("Pod", "IP" | "Node") => 1,
        _ => 0,
    }
}

/// Whether the kind places Age itself (otherwise it is the last column).
fn places_age(kind: &str) -> bool {
    columns(kind).iter().any(|(h, _, _)| *h == "Age")
}

fn column_defs(res: &ResourceDef) -> Value {
    let mut defs = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name of the object", "priority": 0}),
    ];
    for (name, ty, _) in columns(res.kind) {
        defs.push(
            json!({"name": name, "type": ty, "format": "", "description": "", "priority": priority(res.kind, name)}),
        );
    }
    if !places_age(res.kind) {
        defs.push(json!({"name": "Age", "type": "string", "format": "", "description": "Time since creation", "priority": 0}));
    }
    Value::Array(defs)
}

/// The address of a type (`InternalIP`, `ExternalIP`) in a node's addresses, as printNode.
fn node_address(v: &Value, kind: &str) -> String {
    v.as_array()
        .and_then(|a| a.iter().find(|x| x["type"] == kind))
        .and_then(|x| x["address"].as_str())
        .unwrap_or("<none>")
        .to_string()
}

fn ready_condition(v: &Value) -> String {
    v.as_array()
        .and_then(|conds| {
            conds
                .iter()
                .find(|c| c["type"] == "Ready")
                .and_then(|c| c["status"].as_str())
        })
        .map(|s| s.to_string())
        .unwrap_or_else(|| "False".into())
}

fn cell(kind: &str, header: &str, obj: &Value, pointer: &str) -> Value {
    if let Some(t) = pointer.strip_prefix("cond:") {
        // A JSONPath filter on the conditions: the status of the one of type `t`, or
        // nothing (kubectl prints an empty cell).
        return json!(obj
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|cs| cs.iter().find(|c| c["type"] == t))
            .and_then(|c| c["status"].as_str())
            .unwrap_or(""));
    }
    let v = obj.pointer(pointer);
    match (kind, header, v) {
        ("Node", "Status", Some(c)) => {
            json!(if ready_condition(c) == "True" {
                "Ready"
            } else {
                "NotReady"
            })
        }
        // printNode: roles from the node-role.kubernetes.io/ROLE labels.
        ("Node", "Roles", labels) => {
            let roles: Vec<&str> = labels
                .and_then(Value::as_object)
                .map(|m| {
                    m.keys()
                        .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                        .filter(|r| !r.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            json!(if roles.is_empty() {
                "<none>".to_string()
            } else {
                roles.join(",")
            })
        }
        ("Node", "Internal-IP", Some(a)) => json!(node_address(a, "InternalIP")),
        ("Node", "External-IP", Some(a)) => json!(node_address(a, "ExternalIP")),
        ("VirtualMachineInstance", "Ready", Some(c)) => json!(ready_condition(c)),
        ("Pod", "Ready", cs) => {
            let cs = cs.and_then(Value::as_array).cloned().unwrap_or_default();
            let total = obj
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map_or(cs.len(), Vec::len);
            let ready = cs.iter().filter(|c| c["ready"] == true).count();
            json!(format!("{ready}/{total}"))
        }
        ("Pod", "Restarts", cs) => json!(cs
            .and_then(Value::as_array)
            .map_or(0, |a| a
                .iter()
                .filter_map(|c| c["restartCount"].as_u64())
                .sum::<u64>())
            .to_string()),
        ("Pod", "Status", st) => json!(pod_status(obj, st)),
        ("NetworkPolicy", "Pod-Selector", sel) => json!(format_label_selector(sel)),
        ("Secret", "Data", Some(Value::Object(m))) => json!(m.len()),
        ("Secret", "Data", _) => json!(0),
        // printConfigMap: len(Data) + len(BinaryData).
        ("ConfigMap", "Data", _) => {
            let count = |p: &str| {
                obj.pointer(p)
                    .and_then(Value::as_object)
                    .map_or(0, |m| m.len())
            };
            json!(count("/data") + count("/binaryData"))
        }
        ("Event", "Object", Some(o)) => json!(format!(
            "{}/{}",
            o["kind"].as_str().unwrap_or_default().to_ascii_lowercase(),
            o["name"].as_str().unwrap_or_default()
        )),
        (_, _, Some(Value::Array(a))) => json!(a
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(",")),
        (_, _, Some(Value::String(s))) => json!(s),
        (_, _, Some(Value::Bool(b))) => json!(b.to_string()),
        (_, _, Some(Value::Number(n))) => json!(n),
        _ => json!(""),
    }
}

/// apimachinery `metav1.FormatLabelSelector`: `k=v` for matchLabels, `k in (a,b)`,
/// `k notin (a,b)`, `k`, `!k` for expressions, comma-joined; `<none>` when empty.
fn format_label_selector(sel: Option<&Value>) -> String {
    let mut parts = Vec::new();
    if let Some(m) = sel
        .and_then(|s| s.get("matchLabels"))
        .and_then(Value::as_object)
    {
        for (k, v) in m {
            parts.push(format!("{k}={}", v.as_str().unwrap_or_default()));
        }
    }
    if let Some(es) = sel
        .and_then(|s| s.get("matchExpressions"))
        .and_then(Value::as_array)
    {
        for e in es {
            let key = e["key"].as_str().unwrap_or_default();
            let values: Vec<&str> = e["values"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            parts.push(match e["operator"].as_str().unwrap_or_default() {
                "In" => format!("{key} in ({})", values.join(",")),
                "NotIn" => format!("{key} notin ({})", values.join(",")),
                "Exists" => key.to_string(),
                "DoesNotExist" => format!("!{key}"),
                op => format!("{key} {op} ({})", values.join(",")),
            });
        }
    }
    if parts.is_empty() {
        "<none>".to_string()
    } else {
        parts.join(",")
    }
}

/// A pod's STATUS as printPod computes it (kubernetes
/// `pkg/printers/internalversion/printers.go`): the phase, replaced by the status' reason,
/// then by the last container's waiting or terminated reason; `Terminating` once deleted.
fn pod_status(obj: &Value, status: Option<&Value>) -> String {
    let empty = json!({});
    let st = status.unwrap_or(&empty);
    let mut reason = st["phase"].as_str().unwrap_or("Pending").to_string();
    if let Some(r) = st["reason"].as_str().filter(|r| !r.is_empty()) {
        reason = r.to_string();
    }
    let mut running = false;
    if let Some(cs) = st["containerStatuses"].as_array() {
        for c in cs.iter().rev() {
            let state = &c["state"];
            if let Some(r) = state["waiting"]["reason"]
                .as_str()
                .filter(|r| !r.is_empty())
            {
                reason = r.to_string();
            } else if let Some(r) = state["terminated"]["reason"]
                .as_str()
                .filter(|r| !r.is_empty())
            {
                reason = r.to_string();
            } else if state.get("terminated").is_some() {
                reason = format!(
                    "ExitCode:{}",
                    state["terminated"]["exitCode"].as_i64().unwrap_or(0)
                );
            } else if c["ready"] == true && state.get("running").is_some() {
                running = true;
            }
        }
    }
    if reason == "Completed" && running {
        reason = "Running".into();
    }
    if obj.pointer("/metadata/deletionTimestamp").is_some() {
        reason = "Terminating".into();
    }
    reason
}

/// Age as kubectl prints it (`45s`, `3m12s`, `7m`, `5h`, `3d`).
pub fn human_age(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 600 => format!("{}m{}s", s / 60, s % 60),
        s if s < 3 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn age(obj: &Value, now: u64) -> String {
    obj.pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str)
        .and_then(parse_rfc3339)
        .map(|t| human_age(now.saturating_sub(t)))
        .unwrap_or_else(|| "<unknown>".into())
}

/// Seconds since the epoch of `YYYY-MM-DDTHH:MM:SSZ`.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    // Days-from-civil (Howard Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn row(res: &ResourceDef, obj: Value, now: u64) -> Value {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let default_class = res.kind == "StorageClass"
        && obj
            .pointer("/metadata/annotations/storageclass.kubernetes.io~1is-default-class")
            .and_then(Value::as_str)
            == Some("true");
    let mut cells = vec![json!(if default_class {
        format!("{name} (default)")
    } else {
        name.to_string()
    })];
    for (header, _, pointer) in columns(res.kind) {
        if *header == "Age" {
            cells.push(json!(age(&obj, now)));
        } else {
            cells.push(cell(res.kind, header, &obj, pointer));
        }
    }
    if !places_age(res.kind) {
        cells.push(json!(age(&obj, now)));
    }
    json!({"cells": cells, "object": obj})
}

/// A Table of objects (a list answer, or one watch event's object).
pub fn table(res: &ResourceDef, objects: Vec<Value>, resource_version: Option<u64>) -> Value {
    let now = now();
    let rows: Vec<Value> = objects.into_iter().map(|o| row(res, o, now)).collect();
    let mut metadata = json!({});
    if let Some(rv) = resource_version {
        metadata["resourceVersion"] = json!(rv.to_string());
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": column_defs(res),
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_and_ages() {
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        ));
        assert!(!wants_table("application/json"));
        assert_eq!(human_age(5), "5s");
        assert_eq!(human_age(200), "3m20s");
        assert_eq!(human_age(3600), "60m");
        assert_eq!(human_age(5 * 3600), "5h");
        assert_eq!(human_age(3 * 86_400), "3d");
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2026-11-27T02:43:46Z"), Some(1_795_747_426));
        assert_eq!(parse_rfc3339("garbage"), None);
    }

    #[test]
    fn pod_status_reads_as_kubectl_prints_it() {
        let pod = |status: Value| json!({ "metadata": {}, "status": status });
        let st = |p: &Value| pod_status(p, p.pointer("/status"));
        let creating = pod(json!({ "phase": "Pending", "containerStatuses": [
            { "ready": false, "state": { "waiting": { "reason": "ContainerCreating" } } }] }));
        assert_eq!(st(&creating), "ContainerCreating");
        let done = pod(json!({ "phase": "Succeeded", "containerStatuses": [
            { "ready": false, "state": { "terminated": { "reason": "Completed", "exitCode": 0 } } }] }));
        assert_eq!(st(&done), "Completed");
        let running = pod(json!({ "phase": "Running", "containerStatuses": [
            { "ready": true, "state": { "running": {} } }] }));
        assert_eq!(st(&running), "Running");
        let deadline = pod(json!({ "phase": "Failed", "reason": "DeadlineExceeded" }));
        assert_eq!(st(&deadline), "DeadlineExceeded");
        let killed = pod(json!({ "phase": "Failed", "containerStatuses": [
            { "state": { "terminated": { "exitCode": 2 } } }] }));
        assert_eq!(st(&killed), "ExitCode:2");
        let mut gone = running.clone();
        gone["metadata"]["deletionTimestamp"] = json!("2026-12-05T22:00:00Z");
        assert_eq!(st(&gone), "Terminating");
    }
}

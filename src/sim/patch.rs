//! PATCH bodies: JSON merge patch, JSON patch, strategic merge patch (built-in kinds only,
//! applied as a JSON merge patch: the sim has no patch-strategy metadata, so lists are
//! replaced whole) and server-side apply with per-field-manager ownership.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use super::resources::ResourceDef;
use super::status::{ApiError, Cause};
use super::store::now_rfc3339;

/// The patch types the sim accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/merge-patch+json`.
    Merge,
    /// `application/json-patch+json`.
    Json,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml`.
    Apply,
}

impl PatchKind {
    /// From a `Content-Type` (parameters ignored).
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let base = ct.split(';').next().unwrap_or_default().trim();
        match base {
            "application/merge-patch+json" => Some(PatchKind::Merge),
            "application/json-patch+json" => Some(PatchKind::Json),
            "application/strategic-merge-patch+json" => Some(PatchKind::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => {
                Some(PatchKind::Apply)
            }
            _ => None,
        }
    }
}

/// Parse a body that is JSON or, failing that, YAML.
pub fn parse_json_or_yaml(body: &[u8]) -> Result<Value, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => Ok(v),
        Err(json_err) => {
            let text = std::str::from_utf8(body)
                .map_err(|_| ApiError::bad_request("the request body is not UTF-8"))?;
            serde_saphyr::from_str::<Value>(text).map_err(|yaml_err| {
                ApiError::bad_request(format!(
                    "the request body is neither JSON ({json_err}) nor YAML ({yaml_err})"
                ))
            })
        }
    }
}

/// Apply a merge, strategic-merge or JSON patch to a copy of `current`.
pub fn apply_patch(current: &Value, kind: PatchKind, body: &[u8]) -> Result<Value, ApiError> {
    let mut doc = current.clone();
    match kind {
        PatchKind::Merge | PatchKind::Strategic => {
            let p: Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch body: {e}")))?;
            if !p.is_object() {
                return Err(ApiError::bad_request("a merge patch must be a JSON object"));
            }
            json_patch::merge(&mut doc, &p);
        }
        PatchKind::Json => {
            let p: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("invalid JSON Patch: {e}")))?;
            json_patch::patch(&mut doc, &p).map_err(|e| {
                ApiError::new(
                    422,
                    "Invalid",
                    format!("the JSON Patch could not be applied: {e}"),
                )
            })?;
        }
        PatchKind::Apply => {
            return Err(ApiError::internal(
                "apply patches go through server_side_apply",
            ));
        }
    }
    Ok(doc)
}

type Path = Vec<String>;

/// Leaf paths of a value: scalars, lists (atomic) and empty objects are leaves.
/// Server-owned metadata is not tracked; labels and annotations are, per key.
fn field_set(v: &Value) -> BTreeSet<Path> {
    let mut out = BTreeSet::new();
    if let Some(m) = v.as_object() {
        for (k, child) in m {
            match k.as_str() {
                "apiVersion" | "kind" => {}
                "metadata" => {
                    for sub in ["labels", "annotations"] {
                        if let Some(mm) = child.get(sub).and_then(Value::as_object) {
                            for lk in mm.keys() {
                                out.insert(vec!["metadata".into(), sub.into(), lk.clone()]);
                            }
                        }
                    }
                }
                _ => collect(child, vec![k.clone()], &mut out),
            }
        }
    }
    out
}

fn collect(v: &Value, path: Path, out: &mut BTreeSet<Path>) {
    match v.as_object() {
        Some(m) if !m.is_empty() => {
            for (k, c) in m {
                let mut p = path.clone();
                p.push(k.clone());
                collect(c, p, out);
            }
        }
        _ => {
            out.insert(path);
        }
    }
}

fn encode_fields(set: &BTreeSet<Path>) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut cur = &mut root;
        for seg in path {
            let entry = cur.entry(format!("f:{seg}")).or_insert_with(|| json!({}));
            cur = match entry {
                Value::Object(m) => m,
                _ => break,
            };
        }
    }
    Value::Object(root)
}

fn decode_fields(v: &Value, prefix: Path, out: &mut BTreeSet<Path>) {
    let Some(m) = v.as_object() else { return };
    let mut any = false;
    for (k, c) in m {
        if let Some(seg) = k.strip_prefix("f:") {
            any = true;
            let mut p = prefix.clone();
            p.push(seg.to_string());
            decode_fields(c, p, out);
        }
    }
    if !any && !prefix.is_empty() {
        out.insert(prefix);
    }
}

fn get_path<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, seg| cur.get(seg))
}

fn remove_path(v: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = v;
    for seg in parents {
        match cur.get_mut(seg) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(last);
    }
}

fn deep_merge(target: &mut Value, applied: &Value) {
    match (target.as_object_mut(), applied.as_object()) {
        (Some(t), Some(a)) => {
            for (k, v) in a {
                if v.is_null() {
                    t.remove(k);
                    continue;
                }
                match t.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => {
                        deep_merge(existing, v)
                    }
                    _ => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        _ => *target = applied.clone(),
    }
}

fn dotted(path: &[String]) -> String {
    format!(".{}", path.join("."))
}

/// Server-side apply of `applied` by `manager` onto `current` (or onto nothing: create).
///
/// Ownership is tracked per field manager in `metadata.managedFields` (FieldsV1), apart
/// for the main resource and the `status` subresource (`to_status`). Fields the manager
/// applied before and no longer applies are removed unless another manager owns them;
/// fields another apply manager owns with a different value conflict (409) unless
/// `force`, which takes them over. Lists are atomic, as for custom resources. An
/// unchanged apply leaves `managedFields` (and so the object) unchanged.
pub fn server_side_apply(
    res: &ResourceDef,
    current: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    to_status: bool,
) -> Result<Value, ApiError> {
    if !applied.is_object() {
        return Err(ApiError::bad_request("an apply patch must be an object"));
    }
    let av = applied
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = applied.get("kind").and_then(Value::as_str).unwrap_or("");
    if av.is_empty() || kind.is_empty() {
        return Err(ApiError::bad_request(
            "apiVersion and kind must be set in an apply patch",
        ));
    }
    if av != res.api_version() || kind != res.kind {
        return Err(ApiError::bad_request(format!(
            "the apply patch is for {av}, Kind={kind}, not {}, Kind={}",
            res.api_version(),
            res.kind
        )));
    }
    let subresource = if to_status { "status" } else { "" };
    let mut obj = current.cloned().unwrap_or_else(|| json!({}));
    // Apply managers of this subresource: name -> (fields, previous entry).
    let mut owners: BTreeMap<String, BTreeSet<Path>> = BTreeMap::new();
    let mut previous_entries: BTreeMap<String, Value> = BTreeMap::new();
    let mut others: Vec<Value> = Vec::new();
    if let Some(entries) = obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    {
        for e in entries {
            let m = e.get("manager").and_then(Value::as_str).unwrap_or_default();
            let is_apply = e.get("operation").and_then(Value::as_str) == Some("Apply");
            let sub = e.get("subresource").and_then(Value::as_str).unwrap_or("");
            if is_apply && sub == subresource {
                let mut set = BTreeSet::new();
                if let Some(f) = e.get("fieldsV1") {
                    decode_fields(f, Vec::new(), &mut set);
                }
                owners.insert(m.to_string(), set);
                previous_entries.insert(m.to_string(), e.clone());
            } else {
                others.push(e.clone());
            }
        }
    }
    let scoped = scope(res, applied, to_status);
    let new_set = field_set(&scoped);
    let mut conflicts = Vec::new();
    for (other, set) in owners.iter_mut() {
        if other == manager {
            continue;
        }
        let clashing: Vec<Path> = set
            .iter()
            .filter(|p| new_set.contains(*p))
            .filter(|p| get_path(&obj, p) != get_path(&scoped, p))
            .cloned()
            .collect();
        if force {
            for p in &clashing {
                set.remove(p);
            }
        } else {
            for p in clashing {
                conflicts.push(Cause {
                    field: dotted(&p),
                    reason: "FieldManagerConflict".into(),
                    message: format!("conflict with \"{other}\""),
                });
            }
        }
    }
    let name = applied
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !conflicts.is_empty() {
        let list: Vec<String> = conflicts
            .iter()
            .map(|c| format!("{}: {}", c.message, c.field))
            .collect();
        let e = ApiError::new(
            409,
            "Conflict",
            format!(
                "Apply failed with {} conflict(s): {}",
                conflicts.len(),
                list.join("; ")
            ),
        )
        .with_details(name, res.group, res.plural)
        .with_causes(conflicts);
        return Err(e);
    }
    let previous = owners.remove(manager).unwrap_or_default();
    for p in previous.difference(&new_set) {
        let owned_elsewhere = owners.values().any(|s| s.contains(p));
        if !owned_elsewhere {
            remove_path(&mut obj, p);
        }
    }
    deep_merge(&mut obj, &scoped);
    owners.insert(manager.to_string(), new_set);
    let mut entries = others;
    for (m, set) in &owners {
        if set.is_empty() {
            continue;
        }
        let fields = encode_fields(set);
        let unchanged = previous_entries
            .get(m)
            .filter(|e| e.get("fieldsV1") == Some(&fields));
        let entry = match unchanged {
            Some(e) => e.clone(),
            None => {
                let mut e = json!({
                    "manager": m,
                    "operation": "Apply",
                    "apiVersion": res.api_version(),
                    "time": now_rfc3339(),
                    "fieldsType": "FieldsV1",
                    "fieldsV1": fields,
                });
                if to_status {
                    e["subresource"] = json!("status");
                }
                e
            }
        };
        entries.push(entry);
    }
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("managedFields".into(), Value::Array(entries));
    }
    Ok(obj)
}

/// The part of an apply configuration that a write to the main resource or to `/status`
/// may change: `status` only for the subresource; everything but `status` (for kinds
/// with a status subresource) otherwise. Server-owned metadata is dropped.
fn scope(res: &ResourceDef, applied: &Value, to_status: bool) -> Value {
    let mut out = applied.clone();
    if let Some(m) = out.as_object_mut() {
        if to_status {
            m.retain(|k, _| matches!(k.as_str(), "apiVersion" | "kind" | "status"));
        } else {
            if res.has_status {
                m.remove("status");
            }
            if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
                for f in [
                    "managedFields",
                    "resourceVersion",
                    "uid",
                    "creationTimestamp",
                    "generation",
                ] {
                    meta.remove(f);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::resources;

    #[test]
    fn apply_removes_dropped_fields_and_detects_conflicts() {
        let Some(res) = resources::find("kubevirt.io", "v1", "virtualmachines") else {
            panic!("no vm resource");
        };
        let a1 = json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "metadata": {"name": "x", "labels": {"a": "1", "b": "2"}}, "spec": {"runStrategy": "Halted"}});
        let o1 = server_side_apply(res, None, &a1, "m1", false, false).expect("create");
        let a2 = json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "metadata": {"name": "x", "labels": {"a": "1"}}, "spec": {"runStrategy": "Halted"}});
        let o2 = server_side_apply(res, Some(&o1), &a2, "m1", false, false).expect("update");
        assert!(o2.pointer("/metadata/labels/b").is_none());
        let a3 = json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "metadata": {"name": "x"}, "spec": {"runStrategy": "Always"}});
        let e = server_side_apply(res, Some(&o2), &a3, "m2", false, false).expect_err("conflict");
        assert_eq!(e.code, 409);
        assert_eq!(e.causes()[0].field, ".spec.runStrategy");
        let o3 = server_side_apply(res, Some(&o2), &a3, "m2", true, false).expect("force");
        assert_eq!(o3.pointer("/spec/runStrategy"), Some(&json!("Always")));
    }
}

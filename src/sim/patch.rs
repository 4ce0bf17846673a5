//! PATCH bodies: JSON merge patch, JSON patch, strategic merge patch (built-in kinds only,
//! applied as a JSON merge patch: the sim has no patch-strategy metadata, so lists are
//! replaced whole) and server-side apply with per-field-manager ownership.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use super::resources::ResourceDef;
use super::status::{go_quote, ApiError, Cause};
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

/// What a YAML body may expand to, through anchors and aliases, by default: the API
/// server's request body limit (3 MiB, `MaxRequestBodyBytes` in
/// staging/src/k8s.io/apiserver/pkg/server/config.go), so YAML can describe no more than
/// JSON can.
pub const MAX_YAML_EXPANDED_BYTES: usize = 3 * 1024 * 1024;

/// Parse a body that is JSON or, failing that, YAML expanding to at most
/// [`MAX_YAML_EXPANDED_BYTES`].
pub fn parse_json_or_yaml(body: &[u8]) -> Result<Value, ApiError> {
    parse_json_or_yaml_within(body, MAX_YAML_EXPANDED_BYTES)
}

/// Parse a body that is JSON or, failing that, YAML. A YAML document may not expand,
/// through anchors and aliases, to more than `max_bytes` of content (see [`parse_yaml`]).
pub fn parse_json_or_yaml_within(body: &[u8], max_bytes: usize) -> Result<Value, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => Ok(v),
        Err(json_err) => {
            let text = std::str::from_utf8(body)
                .map_err(|_| ApiError::bad_request("the request body is not UTF-8"))?;
            parse_yaml(text, max_bytes).map_err(|yaml_err| match yaml_err {
                YamlError::Expands(limit) => ApiError::bad_request(format!(
                    "yaml: document contains excessive aliasing: it expands past {limit} bytes"
                )),
                YamlError::Invalid(yaml_err) => ApiError::bad_request(format!(
                    "the request body is neither JSON ({json_err}) nor YAML ({yaml_err})"
                )),
            })
        }
    }
}

/// Why a YAML document was refused.
#[derive(Debug)]
pub enum YamlError {
    /// Its expansion passed the byte limit.
    Expands(usize),
    /// It is not YAML (or breaks one of the parser's budgets).
    Invalid(String),
}

/// Parse one YAML document into JSON, counting what it expands to as it is built: every
/// scalar's bytes (map keys included) and a few bytes per collection, aliases counted each
/// time they are replayed, so an alias bomb (anchors referring to anchors, or one large
/// scalar aliased many times) stops at `max_bytes` instead of growing a value many times
/// the size of its text. The parser's own budgets (serde-saphyr `Budget`, `AliasLimits`)
/// bound the rest: nodes, depth, anchors and the bytes it keeps to replay them.
///
/// The API server reads YAML with sigs.k8s.io/yaml (go-yaml), which refuses documents
/// whose decoding is mostly alias expansion ("yaml: document contains excessive
/// aliasing"); this bound is by bytes, which also catches a few large aliased scalars.
pub fn parse_yaml(text: &str, max_bytes: usize) -> Result<Value, YamlError> {
    use std::cell::Cell;
    let left = Cell::new(max_bytes);
    let breached = Cell::new(false);
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_total_scalar_bytes: max_bytes,
            max_recorded_anchor_bytes: max_bytes,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: 100_000,
        },
    };
    let seed = Bounded {
        left: &left,
        breached: &breached,
    };
    serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
        serde::de::DeserializeSeed::deserialize(seed, de)
    })
    .map_err(|e| {
        if breached.get() || expansion_breach(&e) {
            YamlError::Expands(max_bytes)
        } else {
            YamlError::Invalid(e.to_string())
        }
    })
}

/// Whether the parser stopped a document for what its anchors and aliases replay (the
/// scalar bytes it counts include replayed ones) rather than for its syntax.
fn expansion_breach(e: &serde_saphyr::Error) -> bool {
    use serde_saphyr::budget::BudgetBreach as B;
    match e {
        serde_saphyr::Error::AliasError { error, .. }
        | serde_saphyr::Error::WithSnippet { error, .. } => expansion_breach(error),
        serde_saphyr::Error::Budget { breach, .. } => matches!(
            breach,
            B::ScalarBytes { .. }
                | B::Aliases { .. }
                | B::AliasAnchorRatio { .. }
                | B::RecordedAnchorEvents { .. }
                | B::RecordedAnchorBytes { .. }
        ),
        serde_saphyr::Error::AliasReplayLimitExceeded { .. } => true,
        _ => false,
    }
}

/// Builds a JSON value from any serde deserializer, charging each node to a byte budget.
#[derive(Clone, Copy)]
struct Bounded<'a> {
    left: &'a std::cell::Cell<usize>,
    breached: &'a std::cell::Cell<bool>,
}

impl Bounded<'_> {
    fn charge<E: serde::de::Error>(&self, bytes: usize) -> Result<(), E> {
        match self.left.get().checked_sub(bytes) {
            Some(rest) => {
                self.left.set(rest);
                Ok(())
            }
            None => {
                self.breached.set(true);
                Err(E::custom("the document expands past the size limit"))
            }
        }
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Bounded<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<Value, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Bounded<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Value, E> {
        self.charge(5)?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Value, E> {
        self.charge(20)?;
        Ok(Value::from(v))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Value, E> {
        self.charge(20)?;
        Ok(Value::from(v))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        self.charge(24)?;
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
        self.charge(v.len() + 2)?;
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Value, E> {
        self.charge(v.len() + 2)?;
        Ok(Value::String(v))
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Value, E> {
        self.visit_str(&String::from_utf8_lossy(v))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        self.charge(4)?;
        Ok(Value::Null)
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, de: D) -> Result<Value, D::Error> {
        de.deserialize_any(self)
    }

    fn visit_newtype_struct<D: serde::Deserializer<'de>>(self, de: D) -> Result<Value, D::Error> {
        de.deserialize_any(self)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.charge(2)?;
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(self)? {
            self.charge(1)?;
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.charge(2)?;
        let mut out = Map::new();
        while let Some(k) = map.next_key_seed(self)? {
            let k = match k {
                Value::String(s) => s,
                other => other.to_string(),
            };
            self.charge(2)?;
            let v = map.next_value_seed(self)?;
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}

/// The most operations a JSON patch may have: apiserver
/// staging/src/k8s.io/apiserver/pkg/endpoints/handlers/patch.go `maxJSONPatchOperations`;
/// more is 413 Request Entity Too Large.
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// Apply a merge, strategic-merge or JSON patch to a copy of `current`. JSON Patch `copy`
/// operations may copy at most `max_copy_bytes` in all (evanphx/json-patch's
/// `AccumulatedCopySizeLimit`, which bounds what ten thousand copies of a growing
/// document would otherwise make).
pub fn apply_patch(
    current: &Value,
    kind: PatchKind,
    body: &[u8],
    max_copy_bytes: usize,
) -> Result<Value, ApiError> {
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
            if p.0.len() > MAX_JSON_PATCH_OPERATIONS {
                return Err(ApiError::new(
                    413,
                    "RequestEntityTooLarge",
                    format!(
                        "Request entity too large: The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {}",
                        p.0.len()
                    ),
                ));
            }
            let unapplicable = |e: String| {
                ApiError::new(
                    422,
                    "Invalid",
                    format!("the JSON Patch could not be applied: {e}"),
                )
            };
            let mut copied = 0usize;
            for op in p.0 {
                if let json_patch::PatchOperation::Copy(c) = &op {
                    let from = doc.pointer(c.from.as_str()).unwrap_or(&Value::Null);
                    copied = copied.saturating_add(json_size(from, max_copy_bytes + 1));
                    if copied > max_copy_bytes {
                        return Err(unapplicable(format!(
                            "Unable to copy, would exceed the accumulated copy size limit of {max_copy_bytes} bytes"
                        )));
                    }
                }
                json_patch::patch(&mut doc, &[op]).map_err(|e| unapplicable(e.to_string()))?;
            }
        }
        PatchKind::Apply => {
            return Err(ApiError::internal(
                "apply patches go through server_side_apply",
            ));
        }
    }
    Ok(doc)
}

/// The size of a value's JSON, counting no further than `cap`.
fn json_size(v: &Value, cap: usize) -> usize {
    struct Counter(usize, usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            if self.0 > self.1 {
                return Err(std::io::Error::other("past the cap"));
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Counter(0, cap);
    let _ = serde_json::to_writer(&mut c, v);
    c.0
}

/// What the API server refuses in an object a merge or JSON patch produced: a changed
/// `kind` or `apiVersion` (the patched JSON no longer decodes as the resource's type:
/// staging/src/k8s.io/apiserver/pkg/endpoints/handlers/patch.go `applyPatchToCurrentObject`
/// for built-in kinds; apiextensions-apiserver pkg/registry/customresource/validator.go
/// `ValidateTypeMeta` for custom resources; 422 either way) and a changed `metadata.uid`
/// (a patch carries no UID precondition, so the change reaches
/// staging/src/k8s.io/apiserver/pkg/registry/rest/update.go `BeforeUpdate`, whose
/// `ValidateObjectMetaUpdate` finds the field immutable: 422). A changed namespace is
/// refused by the store (400) and a changed name by the name check (400), as upstream.
pub fn check_patched(res: &ResourceDef, current: &Value, patched: &Value) -> Result<(), ApiError> {
    if !patched.is_object() {
        // Not an object at all: the store refuses it as any other body (400).
        return Ok(());
    }
    let name = current
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let av = patched
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = patched.get("kind").and_then(Value::as_str).unwrap_or("");
    if av != res.api_version() || kind != res.kind {
        if res.builtin {
            let e = Cause::invalid(
                "patch",
                format!(
                    "Invalid value: {}: no kind {} is registered for version {}",
                    go_quote(&patched.to_string()),
                    go_quote(kind),
                    go_quote(av),
                ),
            );
            return Err(ApiError::invalid_exact("", "", "", vec![e]));
        }
        let mut causes = Vec::new();
        if kind != res.kind {
            causes.push(Cause::invalid(
                "kind",
                format!("Invalid value: {}: must be {}", go_quote(kind), res.kind),
            ));
        }
        if av != res.api_version() {
            causes.push(Cause::invalid(
                "apiVersion",
                format!(
                    "Invalid value: {}: must be {}",
                    go_quote(av),
                    res.api_version()
                ),
            ));
        }
        return Err(ApiError::invalid_exact(res.kind, res.group, name, causes));
    }
    let uid_of = |v: &Value| {
        v.pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (old_uid, new_uid) = (uid_of(current), uid_of(patched));
    if !new_uid.is_empty() && new_uid != old_uid {
        return Err(ApiError::invalid_exact(
            res.kind,
            res.group,
            name,
            vec![Cause::invalid(
                "metadata.uid",
                format!("Invalid value: {}: field is immutable", go_quote(&new_uid)),
            )],
        ));
    }
    Ok(())
}

/// A UID in an apply configuration, as apiserver patch.go `applyPatch` and `BeforeUpdate`
/// treat it: naming a UID when no object exists is 409 ("uid mismatch"), naming another
/// object's UID is 422 (the UID is immutable).
pub fn check_apply_uid(
    res: &ResourceDef,
    name: &str,
    current: Option<&Value>,
    applied: &Value,
) -> Result<(), ApiError> {
    let Some(uid) = applied
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
    else {
        return Ok(());
    };
    match current {
        None => Err(ApiError::conflict(
            res.plural,
            res.group,
            name,
            &format!(
                "uid mismatch: the provided object specified uid {uid}, and no existing object was found"
            ),
        )),
        Some(cur) => {
            let mut patched = cur.clone();
            patched["metadata"]["uid"] = Value::String(uid.to_string());
            check_patched(res, cur, &patched)
        }
    }
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

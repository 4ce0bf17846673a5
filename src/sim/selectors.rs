//! Label and field selectors as list and watch queries carry them.

use serde_json::Value;

use super::status::ApiError;

/// What selectors look at, extracted once per stored object: name, namespace, labels
/// and the few other fields a field selector may name. Small next to the object itself,
/// so the store keeps objects serialised and filters on this.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selectable {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace` (empty for cluster-scoped objects).
    pub namespace: String,
    /// `metadata.labels`, sorted by key.
    pub labels: Vec<(String, String)>,
    /// Other selectable fields present on the object (`involvedObject.kind`, ...).
    pub fields: Vec<(&'static str, String)>,
}

impl Selectable {
    /// Extract from an object of a kind.
    pub fn of(kind: &str, obj: &Value) -> Self {
        let s = |p: &str| {
            obj.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let mut labels: Vec<(String, String)> = obj
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        labels.sort();
        let extra: &[&'static str] = match kind {
            "Event" => EVENT_FIELDS,
            "VirtualMachineInstance" => &["status.nodeName"],
            "Pod" => POD_FIELDS,
            _ => &[],
        };
        let fields = extra
            .iter()
            .filter_map(|path| {
                let mut cur = Some(obj);
                for seg in path.split('.') {
                    cur = cur.and_then(|c| c.get(seg));
                }
                let v = match cur? {
                    Value::String(s) => s.clone(),
                    Value::Object(o) => o
                        .get("component")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    Value::Null => return None,
                    other => other.to_string(),
                };
                Some((*path, v))
            })
            .collect();
        Selectable {
            name: s("/metadata/name"),
            namespace: s("/metadata/namespace"),
            labels,
            fields,
        }
    }

    fn label(&self, k: &str) -> Option<&str> {
        self.labels
            .binary_search_by(|(lk, _)| lk.as_str().cmp(k))
            .ok()
            .map(|i| self.labels[i].1.as_str())
    }

    fn field(&self, path: &str) -> &str {
        match path {
            "metadata.name" => &self.name,
            "metadata.namespace" => &self.namespace,
            p => self
                .fields
                .iter()
                .find(|(k, _)| *k == p)
                .map_or("", |(_, v)| v.as_str()),
        }
    }
}

/// One label requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelReq {
    /// `k=v` / `k==v`.
    Eq(String, String),
    /// `k!=v` (also matches objects without the label).
    NotEq(String, String),
    /// `k in (a,b)`.
    In(String, Vec<String>),
    /// `k notin (a,b)` (also matches objects without the label).
    NotIn(String, Vec<String>),
    /// `k`.
    Exists(String),
    /// `!k`.
    NotExists(String),
}

/// A parsed label selector (all requirements must hold).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(pub Vec<LabelReq>);

impl LabelSelector {
    /// Parse the `labelSelector` query syntax.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        for part in split_top_level(s) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            reqs.push(parse_req(part)?);
        }
        Ok(LabelSelector(reqs))
    }

    /// Whether an object's labels satisfy every requirement.
    pub fn matches(&self, obj: &Selectable) -> bool {
        let get = |k: &str| obj.label(k);
        self.0.iter().all(|r| match r {
            LabelReq::Eq(k, v) => get(k) == Some(v.as_str()),
            LabelReq::NotEq(k, v) => get(k) != Some(v.as_str()),
            LabelReq::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelReq::NotIn(k, vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelReq::Exists(k) => get(k).is_some(),
            LabelReq::NotExists(k) => get(k).is_none(),
        })
    }
}

/// Split on commas that are not inside parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn bad(sel: &str, why: &str) -> ApiError {
    ApiError::bad_request(format!("unable to parse requirement: {why}: {sel:?}"))
}

fn check_key(k: &str, sel: &str) -> Result<String, ApiError> {
    let ok = !k.is_empty()
        && k.len() <= 317
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if ok {
        Ok(k.to_string())
    } else {
        Err(bad(sel, "invalid label key"))
    }
}

fn check_value(v: &str, sel: &str) -> Result<String, ApiError> {
    let ok = v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(v.to_string())
    } else {
        Err(bad(sel, "invalid label value"))
    }
}

fn parse_set(rest: &str, sel: &str) -> Result<Vec<String>, ApiError> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| bad(sel, "expected a parenthesised set"))?;
    inner
        .split(',')
        .map(|v| check_value(v.trim(), sel))
        .collect()
}

fn parse_req(part: &str) -> Result<LabelReq, ApiError> {
    if let Some(k) = part.strip_prefix('!') {
        return Ok(LabelReq::NotExists(check_key(k.trim(), part)?));
    }
    if let Some((k, v)) = part.split_once("!=") {
        return Ok(LabelReq::NotEq(
            check_key(k.trim(), part)?,
            check_value(v.trim(), part)?,
        ));
    }
    if let Some((k, v)) = part.split_once("==") {
        return Ok(LabelReq::Eq(
            check_key(k.trim(), part)?,
            check_value(v.trim(), part)?,
        ));
    }
    if let Some((k, v)) = part.split_once('=') {
        return Ok(LabelReq::Eq(
            check_key(k.trim(), part)?,
            check_value(v.trim(), part)?,
        ));
    }
    let mut words = part.splitn(2, char::is_whitespace);
    let key = words.next().unwrap_or_default().trim();
    let rest = words.next().unwrap_or_default().trim();
    if rest.is_empty() {
        return Ok(LabelReq::Exists(check_key(key, part)?));
    }
    if let Some(set) = rest.strip_prefix("notin") {
        return Ok(LabelReq::NotIn(
            check_key(key, part)?,
            parse_set(set, part)?,
        ));
    }
    if let Some(set) = rest.strip_prefix("in") {
        return Ok(LabelReq::In(check_key(key, part)?, parse_set(set, part)?));
    }
    Err(bad(part, "unknown operator"))
}

/// One field requirement: `path=value` or `path!=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldReq {
    /// Dotted field path (`metadata.name`, `involvedObject.kind`).
    pub path: String,
    /// Expected value.
    pub value: String,
    /// `!=` rather than `=`.
    pub negate: bool,
}

/// A parsed field selector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(pub Vec<FieldReq>);

const POD_FIELDS: &[&str] = &["spec.nodeName", "status.phase"];

const EVENT_FIELDS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
];

impl FieldSelector {
    /// Parse a `fieldSelector` for a kind; only supported field labels are accepted.
    pub fn parse(s: &str, kind: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        for part in s.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (path, value, negate) = if let Some((k, v)) = part.split_once("!=") {
                (k, v, true)
            } else if let Some((k, v)) = part.split_once("==") {
                (k, v, false)
            } else if let Some((k, v)) = part.split_once('=') {
                (k, v, false)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid field selector: {part:?}"
                )));
            };
            let path = path.trim();
            let supported = matches!(path, "metadata.name" | "metadata.namespace")
                || (kind == "Event" && EVENT_FIELDS.contains(&path))
                || (kind == "VirtualMachineInstance" && path == "status.nodeName")
                || (kind == "Pod" && POD_FIELDS.contains(&path));
            if !supported {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {path}"
                )));
            }
            reqs.push(FieldReq {
                path: path.to_string(),
                value: value.trim().to_string(),
                negate,
            });
        }
        Ok(FieldSelector(reqs))
    }

    /// Whether an object satisfies every requirement (missing fields read as `""`).
    pub fn matches(&self, obj: &Selectable) -> bool {
        self.0
            .iter()
            .all(|r| (obj.field(&r.path) == r.value) != r.negate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_operators() {
        let o = json!({"metadata": {"labels": {"app": "web", "tier": "db"}}});
        let o = Selectable::of("Secret", &o);
        let t = |s: &str| LabelSelector::parse(s).map(|l| l.matches(&o));
        assert_eq!(t("app=web"), Ok(true));
        assert_eq!(t("app==web"), Ok(true));
        assert_eq!(t("app!=web"), Ok(false));
        assert_eq!(t("app in (x, web)"), Ok(true));
        assert_eq!(t("app notin (x,web)"), Ok(false));
        assert_eq!(t("tier,app"), Ok(true));
        assert_eq!(t("!tier"), Ok(false));
        assert_eq!(t("!zone,app in (web),tier notin (x)"), Ok(true));
        assert!(t("app in web").is_err());
    }

    #[test]
    fn field_selectors() {
        let o =
            json!({"metadata": {"name": "a", "namespace": "n"}, "involvedObject": {"kind": "Pod"}});
        let f = FieldSelector::parse("metadata.name=a,metadata.namespace!=x", "Secret");
        assert!(f.is_ok_and(|f| f.matches(&Selectable::of("Secret", &o))));
        assert!(FieldSelector::parse("spec.foo=a", "Secret").is_err());
        let e = FieldSelector::parse("involvedObject.kind=Pod,involvedObject.fieldPath=", "Event");
        assert!(e.is_ok_and(|f| f.matches(&Selectable::of("Event", &o))));
    }
}

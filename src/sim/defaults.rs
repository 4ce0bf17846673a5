//! What the API server does to a built-in object between decoding a request and validating
//! it, so that what the sim serves is complete the way a real server's answers are:
//!
//! - [`decode`]: the wire form of times. `metav1.Time` is RFC 3339 to the second and
//!   `metav1.MicroTime` RFC 3339 with exactly six fractional digits
//!   (k8s.io/apimachinery pkg/apis/meta/v1/time.go, micro_time.go: `UnmarshalJSON` parses
//!   with `time.RFC3339` / `RFC3339Micro`, `MarshalJSON` writes UTC in the same layout). A
//!   time that does not parse is a decode error: 400 BadRequest, "KIND in version V cannot be
//!   handled as a KIND: ..." (apiserver pkg/endpoints/handlers/rest.go transformDecodeError).
//! - [`set_defaults`]: the versioned defaulting functions, which the real server applies on
//!   every decode, from requests and from storage alike (kubernetes pkg/apis/core/v1/defaults.go,
//!   pkg/apis/storage/v1/defaults.go), plus the default-on admission plugins that fill pods
//!   (plugin/pkg/admission/defaulttolerationseconds, plugin/pkg/admission/priority).
//! - [`prepare_for_create`]: the REST strategies' `PrepareForCreate`, which reset a new
//!   object's status (pkg/registry/core/pod/strategy.go, namespace/strategy.go).

use serde_json::{json, Map, Value};

use super::resources::ResourceDef;
use super::status::ApiError;

/// Go's `time.RFC3339`, the layout of `metav1.Time`.
const RFC3339: &str = "2006-01-02T15:04:05Z07:00";
/// `metav1.RFC3339Micro`, the layout of `metav1.MicroTime`.
const RFC3339_MICRO: &str = "2006-01-02T15:04:05.000000Z07:00";

#[derive(Clone, Copy, PartialEq, Eq)]
enum TimeKind {
    Seconds,
    Micro,
}

/// Time-valued fields of the built-in kinds the sim serves, as (path, kind); `[]` steps into
/// every element of a list. From k8s.io/api core/v1, coordination/v1 and meta/v1 types.go.
fn time_fields(kind: &str) -> &'static [(&'static str, TimeKind)] {
    use TimeKind::{Micro, Seconds};
    match kind {
        "Lease" => &[("spec.acquireTime", Micro), ("spec.renewTime", Micro)],
        "Event" => &[
            ("eventTime", Micro),
            ("series.lastObservedTime", Micro),
            ("firstTimestamp", Seconds),
            ("lastTimestamp", Seconds),
        ],
        "Node" => &[
            ("status.conditions[].lastHeartbeatTime", Seconds),
            ("status.conditions[].lastTransitionTime", Seconds),
        ],
        "Pod" => &[
            ("status.startTime", Seconds),
            ("status.conditions[].lastProbeTime", Seconds),
            ("status.conditions[].lastTransitionTime", Seconds),
        ],
        "PersistentVolumeClaim" => &[
            ("status.conditions[].lastProbeTime", Seconds),
            ("status.conditions[].lastTransitionTime", Seconds),
        ],
        "Namespace" => &[("status.conditions[].lastTransitionTime", Seconds)],
        _ => &[],
    }
}

/// Bring the object's times to their wire form; a time that does not parse is a 400.
pub fn decode(res: &ResourceDef, obj: &mut Value) -> Result<(), ApiError> {
    if !res.builtin {
        return Ok(());
    }
    if res.kind == "NetworkPolicy" {
        // The typed decode of the spec (a `cidr: 5` or `endPort: "x"` is a 400, as
        // encoding/json refuses it in the API server's decoder).
        if let Some(spec) = obj.get("spec").filter(|s| !s.is_null()) {
            if let Err(e) = serde_json::from_value::<
                k8s_openapi::api::networking::v1::NetworkPolicySpec,
            >(spec.clone())
            {
                return Err(ApiError::bad_request(format!(
                    "NetworkPolicy in version \"{}\" cannot be handled as a NetworkPolicy: spec: {e}",
                    res.version
                )));
            }
        }
    }
    let mut fields: Vec<(&str, TimeKind)> = time_fields(res.kind).to_vec();
    fields.push(("metadata.managedFields[].time", TimeKind::Seconds));
    for (path, kind) in fields {
        let steps: Vec<&str> = path.split('.').collect();
        let mut bad = None;
        visit_mut(obj, &steps, &mut |v| {
            let Some(text) = v.as_str() else { return };
            match canonical_time(text, kind) {
                Ok(t) => *v = Value::String(t),
                Err(e) => bad = Some(e),
            }
        });
        if let Some(e) = bad {
            return Err(ApiError::bad_request(format!(
                "{kind} in version \"{version}\" cannot be handled as a {kind}: {e}",
                kind = res.kind,
                version = res.version
            )));
        }
    }
    Ok(())
}

fn visit_mut(v: &mut Value, steps: &[&str], f: &mut dyn FnMut(&mut Value)) {
    let Some((first, rest)) = steps.split_first() else {
        if !v.is_null() {
            f(v);
        }
        return;
    };
    let (key, each) = match first.strip_suffix("[]") {
        Some(k) => (k, true),
        None => (*first, false),
    };
    let Some(next) = v.get_mut(key) else { return };
    if each {
        if let Some(items) = next.as_array_mut() {
            for item in items {
                visit_mut(item, rest, f);
            }
        }
    } else {
        visit_mut(next, rest, f);
    }
}

/// An RFC 3339 time in Go's layout for `kind`, re-rendered in UTC as the server writes it.
fn canonical_time(text: &str, kind: TimeKind) -> Result<String, String> {
    let layout = match kind {
        TimeKind::Seconds => RFC3339,
        TimeKind::Micro => RFC3339_MICRO,
    };
    let err = || format!("parsing time {text:?} as {layout:?}: cannot parse");
    let (secs, frac) = parse_rfc3339(text).ok_or_else(err)?;
    // Go's `.000000` layout element takes exactly six digits; plain RFC3339 takes any
    // fraction when parsing (and drops it when formatting).
    if kind == TimeKind::Micro && frac.len() != 6 {
        return Err(err());
    }
    let base = super::time::rfc3339(u64::try_from(secs).map_err(|_| err())?);
    Ok(match kind {
        TimeKind::Seconds => base,
        TimeKind::Micro => {
            let digits: String = frac.chars().chain(std::iter::repeat('0')).take(6).collect();
            format!("{}.{digits}Z", base.trim_end_matches('Z'))
        }
    })
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` as (seconds since the epoch in UTC, fraction digits).
fn parse_rfc3339(s: &str) -> Option<(i64, &str)> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    if b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    let mut rest = &s[19..];
    let mut frac = "";
    if let Some(r) = rest.strip_prefix('.') {
        let n = r.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        frac = &r[..n];
        rest = &r[n..];
    }
    let offset = match rest {
        "Z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) && &o[3..4] == ":" => {
            let oh: i64 = o[1..3].parse().ok()?;
            let om: i64 = o[4..6].parse().ok()?;
            let sign = if o.starts_with('-') { -1 } else { 1 };
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    // Days from civil (Howard Hinnant).
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + h * 3600 + mi * 60 + sec - offset, frac))
}

fn obj_mut<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !v.get(key).is_some_and(Value::is_object) {
        v[key] = json!({});
    }
    match v.get_mut(key) {
        Some(Value::Object(m)) => m,
        _ => unreachable!("{key} was just made an object"),
    }
}

fn default_str(m: &mut Map<String, Value>, key: &str, value: &str) {
    if m.get(key).and_then(Value::as_str).is_none_or(str::is_empty) {
        m.insert(key.into(), json!(value));
    }
}

fn default_value(m: &mut Map<String, Value>, key: &str, value: Value) {
    if m.get(key).is_none_or(Value::is_null) {
        m.insert(key.into(), value);
    }
}

/// The defaulting functions of the kind (applied on every write, as on every decode).
pub fn set_defaults(res: &ResourceDef, obj: &mut Value) {
    if !res.builtin || !obj.is_object() {
        return;
    }
    match res.kind {
        // SetDefaults_Secret.
        "Secret" => {
            if let Some(m) = obj.as_object_mut() {
                default_str(m, "type", "Opaque");
            }
        }
        // kubernetes pkg/apis/networking/v1/defaults.go: SetDefaults_NetworkPolicyPort
        // (protocol TCP) and SetDefaults_NetworkPolicy (policyTypes: Ingress, plus Egress
        // when there are egress rules); `podSelector` is a struct, so always present.
        "NetworkPolicy" => {
            let spec = obj_mut(obj, "spec");
            spec.entry("podSelector").or_insert_with(|| json!({}));
            for dir in ["ingress", "egress"] {
                if let Some(rules) = spec.get_mut(dir).and_then(Value::as_array_mut) {
                    for r in rules {
                        let ports = r.get_mut("ports").and_then(Value::as_array_mut);
                        for p in ports.into_iter().flatten() {
                            if let Some(m) = p.as_object_mut() {
                                if m.get("protocol").is_none_or(Value::is_null) {
                                    m.insert("protocol".into(), json!("TCP"));
                                }
                            }
                        }
                    }
                }
            }
            let empty = spec
                .get("policyTypes")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty);
            if empty {
                let egress = spec
                    .get("egress")
                    .and_then(Value::as_array)
                    .is_some_and(|e| !e.is_empty());
                let mut types = vec![json!("Ingress")];
                if egress {
                    types.push(json!("Egress"));
                }
                spec.insert("policyTypes".into(), Value::Array(types));
            }
        }
        // SetDefaults_Namespace (the kubernetes.io/metadata.name label, 1.21+) and
        // SetDefaults_NamespaceStatus.
        "Namespace" => {
            let name = obj
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if !name.is_empty() {
                let meta = obj_mut(obj, "metadata");
                let labels = meta.entry("labels").or_insert_with(|| json!({}));
                if !labels.is_object() {
                    *labels = json!({});
                }
                labels["kubernetes.io/metadata.name"] = json!(name);
            }
            if obj.get("status").is_some_and(Value::is_object) {
                default_str(obj_mut(obj, "status"), "phase", "Active");
            }
        }
        // SetDefaults_PersistentVolumeClaimSpec and SetDefaults_PersistentVolumeClaim.
        "PersistentVolumeClaim" => {
            default_str(obj_mut(obj, "spec"), "volumeMode", "Filesystem");
            default_str(obj_mut(obj, "status"), "phase", "Pending");
        }
        // storage/v1 SetDefaults_StorageClass.
        "StorageClass" => {
            if let Some(m) = obj.as_object_mut() {
                default_str(m, "reclaimPolicy", "Delete");
                default_str(m, "volumeBindingMode", "Immediate");
            }
        }
        // SetDefaults_NodeStatus: allocatable defaults to capacity.
        "Node" => {
            if let Some(cap) = obj.pointer("/status/capacity").cloned() {
                default_value(obj_mut(obj, "status"), "allocatable", cap);
            }
        }
        // SetDefaults_Service, SetDefaults_ServicePort (clusterIP allocation is not modelled).
        "Service" => {
            let spec = obj_mut(obj, "spec");
            default_str(spec, "type", "ClusterIP");
            default_str(spec, "sessionAffinity", "None");
            if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                    default_str(p, "protocol", "TCP");
                    if let Some(port) = p.get("port").cloned() {
                        default_value(p, "targetPort", port);
                    }
                }
            }
        }
        "Pod" => pod_defaults(obj),
        _ => {}
    }
}

/// SetDefaults_PodSpec, SetDefaults_Container, SetDefaults_ContainerPort, and the
/// default-on admission plugins Priority (priority 0, preemptionPolicy) and
/// DefaultTolerationSeconds (not-ready / unreachable tolerated for 300 s).
fn pod_defaults(obj: &mut Value) {
    let spec = obj_mut(obj, "spec");
    default_str(spec, "dnsPolicy", "ClusterFirst");
    default_str(spec, "restartPolicy", "Always");
    default_str(spec, "schedulerName", "default-scheduler");
    default_value(spec, "securityContext", json!({}));
    default_value(spec, "terminationGracePeriodSeconds", json!(30));
    default_value(spec, "enableServiceLinks", json!(true));
    default_value(spec, "priority", json!(0));
    default_str(spec, "preemptionPolicy", "PreemptLowerPriority");
    for list in ["initContainers", "containers"] {
        if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                container_defaults(c);
            }
        }
    }
    let tolerations = spec.entry("tolerations").or_insert_with(|| json!([]));
    if let Some(ts) = tolerations.as_array_mut() {
        for key in [
            "node.kubernetes.io/not-ready",
            "node.kubernetes.io/unreachable",
        ] {
            let present = ts.iter().any(|t| {
                t.get("key").and_then(Value::as_str) == Some(key)
                    || (t.get("operator").and_then(Value::as_str) == Some("Exists")
                        && t.get("key").is_none_or(|k| k == ""))
            });
            if !present {
                ts.push(json!({
                    "key": key,
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                }));
            }
        }
    }
}

fn container_defaults(c: &mut Map<String, Value>) {
    default_str(c, "terminationMessagePath", "/dev/termination-log");
    default_str(c, "terminationMessagePolicy", "File");
    // An image with no tag or the `latest` tag is pulled Always, others IfNotPresent
    // (a digest counts as a tag).
    let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
    let last = image.rsplit('/').next().unwrap_or_default();
    let tag = if last.contains('@') {
        Some("digest")
    } else {
        last.split_once(':').map(|(_, t)| t)
    };
    let policy = match tag {
        None | Some("latest") => "Always",
        Some(_) => "IfNotPresent",
    };
    default_str(c, "imagePullPolicy", policy);
    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            default_str(p, "protocol", "TCP");
        }
    }
    default_value(c, "resources", json!({}));
}

/// The kind's `PrepareForCreate`: the status a new object starts with (`keep_status`: the
/// sim's own seeding, which writes status as a controller would).
pub fn prepare_for_create(res: &ResourceDef, obj: &mut Value, keep_status: bool) {
    match res.kind {
        // pkg/registry/core/namespace/strategy.go: status Active, the `kubernetes` finalizer.
        "Namespace" if res.builtin => {
            if !keep_status || obj.pointer("/status/phase").is_none() {
                obj["status"] = json!({"phase": "Active"});
            }
            let spec = obj_mut(obj, "spec");
            let finalizers = spec.entry("finalizers").or_insert_with(|| json!([]));
            if let Some(f) = finalizers.as_array_mut() {
                if !f.iter().any(|x| x == "kubernetes") {
                    f.push(json!("kubernetes"));
                }
            }
        }
        // pkg/registry/core/pod/strategy.go: Pending, with the QoS class of its resources.
        "Pod" if res.builtin && (!keep_status || obj.get("status").is_none()) => {
            let qos = qos_class(obj);
            obj["status"] = json!({"phase": "Pending", "qosClass": qos});
        }
        _ => {}
    }
}

/// pkg/apis/core/helper/qos/qos.go `GetPodQOS`, for cpu and memory.
fn qos_class(pod: &Value) -> &'static str {
    let containers: Vec<&Value> = ["/spec/containers", "/spec/initContainers"]
        .iter()
        .filter_map(|p| pod.pointer(p).and_then(Value::as_array))
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let requests = c.pointer("/resources/requests").and_then(Value::as_object);
        let limits = c.pointer("/resources/limits").and_then(Value::as_object);
        for r in ["cpu", "memory"] {
            let req = requests.and_then(|m| m.get(r));
            let lim = limits.and_then(|m| m.get(r));
            if req.is_some() || lim.is_some() {
                any = true;
            }
            match (req, lim) {
                (_, None) => guaranteed = false,
                (Some(q), Some(l)) if q != l => guaranteed = false,
                _ => {}
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_take_their_wire_form() {
        assert_eq!(
            canonical_time("2026-01-02T03:04:05.123456Z", TimeKind::Micro).as_deref(),
            Ok("2026-01-02T03:04:05.123456Z")
        );
        assert_eq!(
            canonical_time("2026-01-02T05:04:05.123456+02:00", TimeKind::Micro).as_deref(),
            Ok("2026-01-02T03:04:05.123456Z")
        );
        // RFC3339Micro wants exactly six digits.
        assert!(canonical_time("2026-01-02T03:04:05Z", TimeKind::Micro).is_err());
        assert!(canonical_time("2026-01-02T03:04:05.1Z", TimeKind::Micro).is_err());
        // metav1.Time drops the fraction.
        assert_eq!(
            canonical_time("2026-01-02T03:04:05.9Z", TimeKind::Seconds).as_deref(),
            Ok("2026-01-02T03:04:05Z")
        );
        assert!(canonical_time("yesterday", TimeKind::Seconds).is_err());
    }

    #[test]
    fn qos_classes() {
        let bare = json!({"spec": {"containers": [{"name": "a"}]}});
        assert_eq!(qos_class(&bare), "BestEffort");
        let g = json!({"spec": {"containers": [{"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}});
        assert_eq!(qos_class(&g), "Guaranteed");
        let b = json!({"spec": {"containers": [{"name": "a", "resources": {"requests": {"cpu": "1"}}}]}});
        assert_eq!(qos_class(&b), "Burstable");
    }
}

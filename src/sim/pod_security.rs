//! Pod Security admission on Pod create (dry runs included): the built-in admission
//! plugin enforces the level its namespace's `pod-security.kubernetes.io/enforce` label
//! names (`privileged` when absent) and refuses a pod that violates it with 403 Forbidden.
//!
//! Modelled on kubernetes `staging/src/k8s.io/pod-security-admission/`:
//! - `admission/admission.go` (`EvaluatePod`; the refusal `violates PodSecurity
//!   "LEVEL:VERSION": …` as `apierrors.NewForbidden`, so `pods "NAME" is forbidden: …`;
//!   an invalid level label is evaluated as `restricted`);
//! - `policy/checks.go` (`AggregateCheckResults`, `ForbiddenDetail`: `reason (detail)`
//!   joined with `, `, in check-ID order);
//! - `policy/check_capabilities_baseline.go` (only the default capabilities may be added:
//!   "non-default capabilities"), `policy/check_capabilities_restricted.go` (drop `ALL`, add
//!   at most `NET_BIND_SERVICE`: "unrestricted capabilities", details joined with `; `),
//!   `policy/check_allowPrivilegeEscalation.go`, `policy/check_privileged.go`,
//!   `policy/check_runAsNonRoot.go`, `policy/check_runAsUser.go`,
//!   `policy/check_seccompProfile_restricted.go`; `policy/helpers.go` (`pluralize`,
//!   `joinQuote`).
//!
//! Host namespaces, host paths and ports, AppArmor, SELinux, `/proc` mount, sysctls, volume
//! types and Windows host processes are not checked.

use super::admission::Objects;
use super::resources::ResourceDef;
use super::status::ApiError;
use serde_json::Value;

/// The namespace label naming the enforced level.
pub const ENFORCE_LABEL: &str = "pod-security.kubernetes.io/enforce";
/// The namespace label naming the policy version (default `latest`).
pub const ENFORCE_VERSION_LABEL: &str = "pod-security.kubernetes.io/enforce-version";

/// `check_capabilities_baseline.go` `capabilities_allowed_1_0`.
const BASELINE_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Baseline,
    Restricted,
}

/// Admits a Pod about to be created in `ns`; other kinds pass.
pub fn admit(objs: &dyn Objects, res: &ResourceDef, ns: &str, pod: &Value) -> Result<(), ApiError> {
    if !res.group.is_empty() || res.kind != "Pod" {
        return Ok(());
    }
    let labels = super::resources::find("", "v1", "namespaces")
        .and_then(|r| objs.get(r, "", ns))
        .and_then(|n| n.pointer("/metadata/labels").cloned())
        .unwrap_or(Value::Null);
    let label = |k: &str| labels.get(k).and_then(Value::as_str);
    let (level, level_text) = match label(ENFORCE_LABEL) {
        None | Some("privileged") => return Ok(()),
        Some("baseline") => (Level::Baseline, "baseline"),
        Some("restricted") => (Level::Restricted, "restricted"),
        // An invalid level is evaluated as the most restrictive.
        Some(_) => (Level::Restricted, "restricted"),
    };
    let version = label(ENFORCE_VERSION_LABEL).unwrap_or("latest");
    let forbidden = violations(pod, level);
    if forbidden.is_empty() {
        return Ok(());
    }
    let name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let detail = forbidden
        .iter()
        .map(|(reason, detail)| format!("{reason} ({detail})"))
        .collect::<Vec<_>>()
        .join(", ");
    Err(ApiError::new(
        403,
        "Forbidden",
        format!(
            "pods \"{name}\" is forbidden: violates PodSecurity \"{level_text}:{version}\": {detail}"
        ),
    )
    .with_details(name, "", "pods"))
}

/// `pluralize(singular, plural, n)` + `joinQuote(items)`.
fn containers_text(names: &[&str]) -> String {
    let word = if names.len() == 1 {
        "container"
    } else {
        "containers"
    };
    format!("{word} {}", join_quote(names))
}

fn join_quote(items: &[&str]) -> String {
    items
        .iter()
        .map(|i| format!("{i:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn cname<'a>(c: &&'a Value) -> &'a str {
    str_at(c, "/name").unwrap_or_default()
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> Option<&'a str> {
    v.pointer(ptr).and_then(Value::as_str)
}

/// (reason, detail) of every failed check, in check-ID order.
fn violations(pod: &Value, level: Level) -> Vec<(&'static str, String)> {
    let spec = pod.get("spec").cloned().unwrap_or(Value::Null);
    let containers: Vec<&Value> = ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .filter_map(|k| spec.get(*k).and_then(Value::as_array))
        .flatten()
        .collect();
    let sc = |c: &Value, k: &str| c.pointer(&format!("/securityContext/{k}")).cloned();
    let caps = |c: &Value, k: &str| -> Vec<String> {
        c.pointer(&format!("/securityContext/capabilities/{k}"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let restricted = level == Level::Restricted;
    let mut out = Vec::new();

    // allowPrivilegeEscalation (restricted).
    if restricted {
        let bad: Vec<&str> = containers
            .iter()
            .filter(|c| sc(c, "allowPrivilegeEscalation") != Some(Value::Bool(false)))
            .map(cname)
            .collect();
        if !bad.is_empty() {
            out.push((
                "allowPrivilegeEscalation != false",
                format!(
                    "{} must set securityContext.allowPrivilegeEscalation=false",
                    containers_text(&bad)
                ),
            ));
        }
    }
    // capabilities_baseline, or capabilities_restricted which overrides it.
    if restricted {
        let mut details = Vec::new();
        let no_drop: Vec<&str> = containers
            .iter()
            .filter(|c| !caps(c, "drop").iter().any(|d| d == "ALL"))
            .map(cname)
            .collect();
        if !no_drop.is_empty() {
            details.push(format!(
                "{} must set securityContext.capabilities.drop=[\"ALL\"]",
                containers_text(&no_drop)
            ));
        }
        let (names, added) = added_beyond(&containers, &caps, &["NET_BIND_SERVICE"]);
        if !names.is_empty() {
            let added: Vec<&str> = added.iter().map(String::as_str).collect();
            details.push(format!(
                "{} must not include {} in securityContext.capabilities.add",
                containers_text(&names),
                join_quote(&added)
            ));
        }
        if !details.is_empty() {
            out.push(("unrestricted capabilities", details.join("; ")));
        }
    } else {
        let (names, added) = added_beyond(&containers, &caps, BASELINE_CAPABILITIES);
        if !names.is_empty() {
            let added: Vec<&str> = added.iter().map(String::as_str).collect();
            out.push((
                "non-default capabilities",
                format!(
                    "{} must not include {} in securityContext.capabilities.add",
                    containers_text(&names),
                    join_quote(&added)
                ),
            ));
        }
    }
    // privileged (baseline and up).
    let privileged: Vec<&str> = containers
        .iter()
        .filter(|c| sc(c, "privileged") == Some(Value::Bool(true)))
        .map(cname)
        .collect();
    if !privileged.is_empty() {
        out.push((
            "privileged",
            format!(
                "{} must not set securityContext.privileged=true",
                containers_text(&privileged)
            ),
        ));
    }
    if restricted {
        // runAsNonRoot.
        let pod_value = spec.pointer("/securityContext/runAsNonRoot").cloned();
        let mut details = Vec::new();
        if pod_value == Some(Value::Bool(false)) {
            details.push("pod must not set securityContext.runAsNonRoot=false".to_string());
        }
        let explicit_false: Vec<&str> = containers
            .iter()
            .filter(|c| sc(c, "runAsNonRoot") == Some(Value::Bool(false)))
            .map(cname)
            .collect();
        if !explicit_false.is_empty() {
            details.push(format!(
                "{} must not set securityContext.runAsNonRoot=false",
                containers_text(&explicit_false)
            ));
        }
        if pod_value.is_none() {
            let unset: Vec<&str> = containers
                .iter()
                .filter(|c| sc(c, "runAsNonRoot").is_none())
                .map(cname)
                .collect();
            if !unset.is_empty() {
                details.push(format!(
                    "pod or {} must set securityContext.runAsNonRoot=true",
                    containers_text(&unset)
                ));
            }
        }
        if !details.is_empty() {
            out.push(("runAsNonRoot != true", details.join("; ")));
        }
        // runAsUser.
        let mut details = Vec::new();
        if spec.pointer("/securityContext/runAsUser") == Some(&Value::from(0)) {
            details.push("pod must not set runAsUser=0".to_string());
        }
        let root: Vec<&str> = containers
            .iter()
            .filter(|c| sc(c, "runAsUser") == Some(Value::from(0)))
            .map(cname)
            .collect();
        if !root.is_empty() {
            details.push(format!(
                "{} must not set runAsUser=0",
                containers_text(&root)
            ));
        }
        if !details.is_empty() {
            out.push(("runAsUser=0", details.join("; ")));
        }
        // seccompProfile (restricted).
        let ok_type = |t: Option<&str>| matches!(t, Some("RuntimeDefault" | "Localhost"));
        let pod_type = str_at(&spec, "/securityContext/seccompProfile/type");
        let unset: Vec<&str> = containers
            .iter()
            .filter(|c| {
                let t = str_at(c, "/securityContext/seccompProfile/type");
                match t {
                    Some(_) => !ok_type(t),
                    None => !ok_type(pod_type),
                }
            })
            .map(cname)
            .collect();
        if !unset.is_empty() {
            let who = if pod_type.is_none() {
                format!("pod or {}", containers_text(&unset))
            } else {
                containers_text(&unset)
            };
            out.push((
                "seccompProfile",
                format!(
                    "{who} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\""
                ),
            ));
        }
    }
    out
}

/// The containers adding capabilities outside `allowed`, and those capabilities (distinct,
/// in order of appearance).
fn added_beyond<'a>(
    containers: &[&'a Value],
    caps: &dyn Fn(&Value, &str) -> Vec<String>,
    allowed: &[&str],
) -> (Vec<&'a str>, Vec<String>) {
    let mut names = Vec::new();
    let mut added: Vec<String> = Vec::new();
    for c in containers {
        let bad: Vec<String> = caps(c, "add")
            .into_iter()
            .filter(|a| !allowed.contains(&a.as_str()))
            .collect();
        if bad.is_empty() {
            continue;
        }
        names.push(str_at(c, "/name").unwrap_or_default());
        for b in bad {
            if !added.contains(&b) {
                added.push(b);
            }
        }
    }
    (names, added)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn probe() -> Value {
        json!({ "metadata": { "name": "p" }, "spec": {
            "securityContext": { "runAsNonRoot": true, "seccompProfile": { "type": "RuntimeDefault" } },
            "containers": [{ "name": "probe", "securityContext": {
                "allowPrivilegeEscalation": false,
                "capabilities": { "drop": ["ALL"], "add": ["NET_RAW"] } } }] } })
    }

    #[test]
    fn net_raw_violates_baseline_and_restricted() {
        let v = violations(&probe(), Level::Baseline);
        assert_eq!(
            v,
            vec![(
                "non-default capabilities",
                "container \"probe\" must not include \"NET_RAW\" in securityContext.capabilities.add"
                    .to_string()
            )]
        );
        let v = violations(&probe(), Level::Restricted);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].0, "unrestricted capabilities");
        let mut bare = probe();
        bare["spec"]["securityContext"] = json!({});
        bare["spec"]["containers"][0]["securityContext"] = json!({});
        let reasons: Vec<&str> = violations(&bare, Level::Restricted)
            .iter()
            .map(|(r, _)| *r)
            .collect();
        assert_eq!(
            reasons,
            vec![
                "allowPrivilegeEscalation != false",
                "unrestricted capabilities",
                "runAsNonRoot != true",
                "seccompProfile"
            ]
        );
        assert!(violations(&bare, Level::Baseline).is_empty());
    }
}

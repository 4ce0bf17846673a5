//! Authorization in the sim's API server, and `SelfSubjectAccessReview`.
//!
//! The kubeconfig the sim writes carries no credentials, so every request is the anonymous
//! user, as kube-apiserver authenticates a request without any (`system:anonymous`, group
//! `system:unauthenticated`). By default the sim authorizes like `--authorization-mode=
//! AlwaysAllow`. A scenario (or [`super::SimOptions::access`]) can take permissions away: each
//! [`AccessRule`] is a (verb, API group, resource) the user lacks, as if no RBAC rule granted
//! it. Then, exactly as a real server with RBAC:
//!
//! - a `SelfSubjectAccessReview` for it answers `status.allowed: false` (RBAC has no opinion,
//!   so `denied` stays unset; kubernetes pkg/registry/authorization/selfsubjectaccessreview/
//!   rest.go, plugin/pkg/auth/authorizer/rbac/rbac.go);
//! - the request itself is answered `403 Forbidden` with the API server's message
//!   (apiserver pkg/endpoints/filters/authorization.go → handlers/responsewriters/errors.go
//!   `forbiddenMessage`, apimachinery pkg/api/errors `NewForbidden`).
//!
//! Requests of the simulated controllers ([`super::CONTROLLER_HEADER`]) are not checked: in a
//! real cluster CDI and KubeVirt run under service accounts of their own.

use axum::http::Method;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::resources::ResourceDef;
use super::status::{ApiError, Cause};

/// The user a credential-less request is (apiserver pkg/authentication/request/anonymous).
pub const ANONYMOUS: &str = "system:anonymous";

/// A permission the user lacks: `verb` on `resource` (`plural`, or `plural/subresource`) in
/// API `group` (`""` for the core group), optionally only in one `namespace`. `*` matches
/// any verb, group or resource, and `*/sub` any resource's subresource `sub`, as in RBAC
/// (kubernetes pkg/apis/rbac/v1/evaluation_helpers.go).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessRule {
    pub verb: String,
    #[serde(default)]
    pub group: String,
    pub resource: String,
    #[serde(default)]
    pub namespace: Option<String>,
}

impl AccessRule {
    /// A rule denying `verb` on `resource` in `group`, in every namespace.
    pub fn new(verb: &str, group: &str, resource: &str) -> Self {
        AccessRule {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            namespace: None,
        }
    }

    fn matches(&self, a: &Attributes<'_>) -> bool {
        let any = |rule: &str, asked: &str| rule == "*" || asked == "*" || rule == asked;
        let combined = match a.subresource {
            "" => a.resource.to_string(),
            sub => format!("{}/{sub}", a.resource),
        };
        // RBAC's ResourceMatches: `*`, the exact combined resource, or `*/subresource`.
        let resource = self.resource == "*"
            || a.resource == "*"
            || self.resource == combined
            || (!a.subresource.is_empty()
                && self.resource.strip_prefix("*/") == Some(a.subresource));
        any(&self.verb, a.verb)
            && any(&self.group, a.group)
            && resource
            && self
                .namespace
                .as_deref()
                .is_none_or(|n| n == a.namespace || a.namespace.is_empty())
    }
}

/// What a request asks to do (apiserver pkg/authorization/authorizer.AttributesRecord).
#[derive(Debug, Clone, Copy)]
pub struct Attributes<'a> {
    pub verb: &'a str,
    pub namespace: &'a str,
    pub group: &'a str,
    pub resource: &'a str,
    pub subresource: &'a str,
    pub name: &'a str,
}

/// The sim's authorizer: everything is allowed but the [`AccessRule`]s.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Authorizer {
    pub deny: Vec<AccessRule>,
}

impl Authorizer {
    /// Whether the (anonymous) user may do `a`.
    pub fn allows(&self, a: &Attributes<'_>) -> bool {
        !self.deny.iter().any(|r| r.matches(a))
    }

    /// Check a resource request: its verb is derived from the method as apiserver
    /// pkg/endpoints/request/requestinfo.go does (GET on a collection is `list`, or `watch`
    /// with `watch=true`; DELETE on a collection is `deletecollection`). A request for a
    /// namespace object is in that namespace.
    pub fn authorize(
        &self,
        method: &Method,
        watch: bool,
        res: &ResourceDef,
        namespace: Option<&str>,
        name: Option<&str>,
        subresource: Option<&str>,
    ) -> Result<(), ApiError> {
        if self.deny.is_empty() {
            return Ok(());
        }
        let collection = name.is_none();
        let verb = match *method {
            Method::POST => "create",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE if collection => "deletecollection",
            Method::DELETE => "delete",
            _ if watch => "watch",
            _ if collection => "list",
            _ => "get",
        };
        let namespace = match (res.kind, res.group, name) {
            ("Namespace", "", Some(n)) => n,
            _ => namespace.unwrap_or_default(),
        };
        self.check(&Attributes {
            verb,
            namespace,
            group: res.group,
            resource: res.plural,
            subresource: subresource.unwrap_or_default(),
            name: name.unwrap_or_default(),
        })
    }

    /// 403 Forbidden unless `a` is allowed.
    pub fn check(&self, a: &Attributes<'_>) -> Result<(), ApiError> {
        if self.allows(a) {
            return Ok(());
        }
        let resource = match a.subresource {
            "" => a.resource.to_string(),
            sub => format!("{}/{sub}", a.resource),
        };
        let scope = match a.namespace {
            "" => "at the cluster scope".to_string(),
            ns => format!("in the namespace {ns:?}"),
        };
        let why = format!(
            "User {ANONYMOUS:?} cannot {} resource {resource:?} in API group {:?} {scope}",
            a.verb, a.group
        );
        let qualified = match a.group {
            "" => a.resource.to_string(),
            g => format!("{}.{g}", a.resource),
        };
        let message = match a.name {
            "" => format!("{qualified} is forbidden: {why}"),
            name => format!("{qualified} {name:?} is forbidden: {why}"),
        };
        Err(ApiError::new(403, "Forbidden", message).with_details(a.name, a.group, a.resource))
    }

    /// Answer a `SelfSubjectAccessReview` (kubernetes pkg/registry/authorization/
    /// selfsubjectaccessreview/rest.go `Create`): validate it
    /// (pkg/apis/authorization/validation `ValidateSelfSubjectAccessReview`), authorize its
    /// attributes for the requesting user, and return it with `status` filled. Nothing is
    /// stored.
    pub fn review(&self, obj: &Value) -> Result<Value, ApiError> {
        let mut causes = Vec::new();
        if obj
            .get("metadata")
            .and_then(Value::as_object)
            .is_some_and(|m| !m.is_empty())
        {
            causes.push(Cause::invalid(
                "metadata",
                format!("Invalid value: {}: must be empty", obj["metadata"]),
            ));
        }
        let attr = |k: &str| obj.pointer(&format!("/spec/{k}")).filter(|v| v.is_object());
        let (resource, non_resource) = (attr("resourceAttributes"), attr("nonResourceAttributes"));
        match (resource, non_resource) {
            (Some(_), Some(_)) => causes.push(Cause::invalid(
                "spec.nonResourceAttributes",
                "Invalid value: \"object\": cannot be specified in combination with resourceAttributes",
            )),
            (None, None) => causes.push(Cause::invalid(
                "spec.resourceAttributes",
                "Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified",
            )),
            _ => {}
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid(
                "SelfSubjectAccessReview",
                "authorization.k8s.io",
                "",
                causes,
            ));
        }
        let allowed = match resource {
            Some(ra) => {
                let s = |k: &str| ra.get(k).and_then(Value::as_str).unwrap_or_default();
                self.allows(&Attributes {
                    verb: s("verb"),
                    namespace: s("namespace"),
                    group: s("group"),
                    resource: s("resource"),
                    subresource: s("subresource"),
                    name: s("name"),
                })
            }
            // Non-resource URLs (/healthz, /version, ...) are not modelled: all allowed.
            None => true,
        };
        // The answer as the server encodes it: empty strings (omitempty) are left out, and
        // a zero `creationTimestamp` is omitted (meta/v1 types.go `omitzero`).
        let mut spec = Map::new();
        for (k, v) in obj
            .get("spec")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let v = match v {
                Value::Object(m) => Value::Object(
                    m.iter()
                        .filter(|(_, x)| !x.is_null() && x.as_str() != Some(""))
                        .map(|(k, x)| (k.clone(), x.clone()))
                        .collect(),
                ),
                other => other.clone(),
            };
            if !v.is_null() {
                spec.insert(k.clone(), v);
            }
        }
        Ok(json!({
            "kind": "SelfSubjectAccessReview",
            "apiVersion": "authorization.k8s.io/v1",
            "metadata": {},
            "spec": spec,
            "status": {"allowed": allowed},
        }))
    }
}

/// The prefix of every Kubernetes protobuf body (apimachinery pkg/runtime/serializer/
/// protobuf/protobuf.go `protoEncodingPrefix`).
const PROTOBUF_MAGIC: &[u8] = b"k8s\x00";

/// A `SelfSubjectAccessReview` sent as protobuf, as JSON. The sim otherwise speaks JSON
/// only, but `kubectl auth can-i` (a typed client-go clientset) posts reviews as protobuf.
/// The body is the magic prefix and a `runtime.Unknown` (apimachinery pkg/runtime/
/// generated.proto: typeMeta = 1, raw = 2) whose `raw` is the review (k8s.io/api
/// authorization/v1 generated.proto: metadata = 1, spec = 2; spec: resourceAttributes = 1,
/// nonResourceAttributes = 2; ResourceAttributes: namespace, verb, group, version, resource,
/// subresource, name = 1..7; NonResourceAttributes: path = 1, verb = 2). Empty strings,
/// which the Go encoder writes for unset fields, are left out.
pub fn review_from_protobuf(body: &[u8]) -> Result<Value, ApiError> {
    let bad = |why: &str| {
        ApiError::bad_request(format!("invalid protobuf SelfSubjectAccessReview: {why}"))
    };
    let unknown = body
        .strip_prefix(PROTOBUF_MAGIC)
        .ok_or_else(|| bad("the body lacks the k8s protobuf prefix"))?;
    let mut raw = None;
    let mut type_meta = Map::new();
    for (field, value) in proto_fields(unknown).map_err(bad)? {
        match (field, value) {
            (1, Proto::Bytes(tm)) => {
                type_meta = proto_strings(tm, &[(1, "apiVersion"), (2, "kind")]).map_err(bad)?
            }
            (2, Proto::Bytes(r)) => raw = Some(r),
            _ => {}
        }
    }
    let kind = type_meta
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if kind != "SelfSubjectAccessReview" {
        return Err(bad(&format!("the body holds a {kind:?}")));
    }
    let mut review = json!({
        "apiVersion": type_meta.get("apiVersion").cloned().unwrap_or(json!("authorization.k8s.io/v1")),
        "kind": kind,
    });
    for (field, value) in proto_fields(raw.unwrap_or_default()).map_err(bad)? {
        match (field, value) {
            (1, Proto::Bytes(meta)) => {
                let m = proto_strings(meta, &[(1, "name"), (2, "generateName"), (3, "namespace")])
                    .map_err(bad)?;
                review["metadata"] = Value::Object(m);
            }
            (2, Proto::Bytes(spec)) => {
                let mut s = Map::new();
                for (f, v) in proto_fields(spec).map_err(bad)? {
                    let (key, names): (&str, &[(u64, &str)]) = match f {
                        1 => (
                            "resourceAttributes",
                            &[
                                (1, "namespace"),
                                (2, "verb"),
                                (3, "group"),
                                (4, "version"),
                                (5, "resource"),
                                (6, "subresource"),
                                (7, "name"),
                            ],
                        ),
                        2 => ("nonResourceAttributes", &[(1, "path"), (2, "verb")]),
                        _ => continue,
                    };
                    if let Proto::Bytes(b) = v {
                        s.insert(
                            key.into(),
                            Value::Object(proto_strings(b, names).map_err(bad)?),
                        );
                    }
                }
                review["spec"] = Value::Object(s);
            }
            _ => {}
        }
    }
    Ok(review)
}

enum Proto<'a> {
    Varint,
    Bytes(&'a [u8]),
}

/// The top-level fields of a protobuf message: (field number, value); fixed-width values
/// are skipped.
fn proto_fields(mut b: &[u8]) -> Result<Vec<(u64, Proto<'_>)>, &'static str> {
    fn varint(b: &mut &[u8]) -> Result<u64, &'static str> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = b.split_first().ok_or("truncated varint")?;
            *b = rest;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long")
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = varint(&mut b)?;
        let value = match key & 7 {
            0 => {
                varint(&mut b)?;
                Proto::Varint
            }
            1 | 5 => {
                let n = if key & 7 == 1 { 8 } else { 4 };
                b = b.get(n..).ok_or("truncated fixed-width value")?;
                continue;
            }
            2 => {
                let n = usize::try_from(varint(&mut b)?).map_err(|_| "length overflow")?;
                let (v, rest) = (b.get(..n).ok_or("truncated field")?, &b[n..]);
                b = rest;
                Proto::Bytes(v)
            }
            _ => return Err("unsupported wire type"),
        };
        out.push((key >> 3, value));
    }
    Ok(out)
}

/// The named non-empty string fields of a message.
fn proto_strings(b: &[u8], names: &[(u64, &str)]) -> Result<Map<String, Value>, &'static str> {
    let mut m = Map::new();
    for (field, value) in proto_fields(b)? {
        let (Some((_, name)), Proto::Bytes(v)) = (names.iter().find(|(f, _)| *f == field), value)
        else {
            continue;
        };
        let s = std::str::from_utf8(v).map_err(|_| "a string is not UTF-8")?;
        if !s.is_empty() {
            m.insert((*name).into(), json!(s));
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs<'a>(verb: &'a str, group: &'a str, resource: &'a str, sub: &'a str) -> Attributes<'a> {
        Attributes {
            verb,
            namespace: "default",
            group,
            resource,
            subresource: sub,
            name: "",
        }
    }

    #[test]
    fn rules_match_like_rbac() {
        let a = Authorizer {
            deny: vec![
                AccessRule::new("create", "kubevirt.io", "virtualmachines"),
                AccessRule::new("*", "", "*/status"),
            ],
        };
        assert!(!a.allows(&attrs("create", "kubevirt.io", "virtualmachines", "")));
        assert!(a.allows(&attrs("get", "kubevirt.io", "virtualmachines", "")));
        // A rule for a resource does not cover its subresources.
        assert!(a.allows(&attrs(
            "create",
            "kubevirt.io",
            "virtualmachines",
            "migrate"
        )));
        assert!(!a.allows(&attrs("update", "", "pods", "status")));
        // Asking for `*` is asking for every verb, the denied one included.
        assert!(!a.allows(&attrs("*", "kubevirt.io", "virtualmachines", "")));
    }

    #[test]
    fn protobuf_reviews_decode() {
        fn field(n: u8, bytes: &[u8]) -> Vec<u8> {
            let mut v = vec![(n << 3) | 2, u8::try_from(bytes.len()).expect("short")];
            v.extend_from_slice(bytes);
            v
        }
        let attrs = [
            field(1, b"default"),
            field(2, b"create"),
            field(3, b"kubevirt.io"),
            field(4, b""),
            field(5, b"virtualmachines"),
        ]
        .concat();
        let review = [field(1, &field(1, b"")), field(2, &field(1, &attrs))].concat();
        let type_meta = [
            field(1, b"authorization.k8s.io/v1"),
            field(2, b"SelfSubjectAccessReview"),
        ]
        .concat();
        let body = [b"k8s\x00".to_vec(), field(1, &type_meta), field(2, &review)].concat();
        let v = review_from_protobuf(&body).expect("decodes");
        assert_eq!(
            v,
            json!({
                "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                "metadata": {},
                "spec": {"resourceAttributes": {"namespace": "default", "verb": "create", "group": "kubevirt.io", "resource": "virtualmachines"}},
            })
        );
        assert!(review_from_protobuf(b"{}").is_err());
    }

    #[test]
    fn forbidden_message_is_the_api_servers() {
        let a = Authorizer {
            deny: vec![AccessRule::new("create", "kubevirt.io", "virtualmachines")],
        };
        let e = a
            .check(&attrs("create", "kubevirt.io", "virtualmachines", ""))
            .expect_err("denied");
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            "virtualmachines.kubevirt.io is forbidden: User \"system:anonymous\" cannot create resource \"virtualmachines\" in API group \"kubevirt.io\" in the namespace \"default\""
        );
    }
}

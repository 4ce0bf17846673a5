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

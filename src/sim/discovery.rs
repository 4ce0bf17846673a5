//! Legacy discovery documents: `/version`, `/api`, `/api/v1`, `/apis`, `/apis/G/V`.
//!
//! Plain `APIVersions` / `APIGroupList` / `APIResourceList` JSON; kubectl asks for
//! aggregated discovery first and falls back to these.

use serde_json::{json, Value};

use super::resources::{self, Crds, ResourceDef, SUBRESOURCES_GROUP, VM_ACTIONS};

/// The Kubernetes version the sim reports (`/version`, and the nodes' kubelets).
pub const GIT_VERSION: &str = "v1.32.0-wavelift-sim";

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": GIT_VERSION,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.23.0",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

/// `/api` (APIVersions).
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]
    })
}

/// Kubernetes' version priority (apimachinery `version.CompareKubeAwareVersionStrings`):
/// GA before beta before alpha, higher numbers first; other strings last.
fn version_rank(v: &str) -> (u8, std::cmp::Reverse<u32>, std::cmp::Reverse<u32>) {
    use std::cmp::Reverse;
    let Some(rest) = v.strip_prefix('v') else {
        return (3, Reverse(0), Reverse(0));
    };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let major = digits.parse().unwrap_or(0);
    let tail = &rest[digits.len()..];
    let (level, minor) = if tail.is_empty() {
        (0, "")
    } else if let Some(n) = tail.strip_prefix("beta") {
        (1, n)
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (2, n)
    } else {
        return (3, Reverse(0), Reverse(0));
    };
    (level, Reverse(major), Reverse(minor.parse().unwrap_or(0)))
}

/// The served groups with their versions, preferred (highest priority) first: a group
/// whose kinds live in several versions (`k8s.cni.cncf.io`: v1 NADs, v1beta2 and v1beta1
/// MultiNetworkPolicies) is one APIGroup listing them all, as the API server's aggregated
/// group discovery does.
fn served_groups(crds: &Crds) -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for (g, v) in resources::group_versions() {
        if g.is_empty() || !crds.serves_group(g) {
            continue;
        }
        match out.iter_mut().find(|(og, _)| *og == g) {
            Some((_, vs)) => vs.push(v),
            None => out.push((g, vec![v])),
        }
    }
    for (_, vs) in &mut out {
        vs.sort_by_key(|v| version_rank(v));
    }
    out
}

fn group_entry(g: &str, versions: &[&str]) -> Value {
    let gvs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
        .collect();
    json!({"name": g, "versions": gvs, "preferredVersion": gvs[0]})
}

/// `/apis` (APIGroupList).
pub fn group_list(crds: &Crds) -> Value {
    let groups: Vec<Value> = served_groups(crds)
        .iter()
        .map(|(g, vs)| group_entry(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/G` (APIGroup), or `None` for an unknown group.
pub fn group(name: &str, crds: &Crds) -> Option<Value> {
    served_groups(crds)
        .into_iter()
        .find(|(g, _)| *g == name)
        .map(|(g, vs)| {
            let mut e = group_entry(g, &vs);
            e["kind"] = json!("APIGroup");
            e["apiVersion"] = json!("v1");
            e
        })
}

fn resource_entry(r: &ResourceDef) -> Value {
    let mut e = json!({
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": r.verbs,
    });
    if !r.short_names.is_empty() {
        e["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        e["categories"] = json!(r.categories);
    }
    e
}

/// `/api/v1` or `/apis/G/V` (APIResourceList), or `None` for an unknown group-version.
pub fn resource_list(group: &str, version: &str, crds: &Crds) -> Option<Value> {
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let mut list: Vec<Value> = Vec::new();
    if group == SUBRESOURCES_GROUP && version == "v1" {
        for action in VM_ACTIONS {
            list.push(json!({
                "name": format!("virtualmachines/{action}"),
                "singularName": "",
                "namespaced": true,
                "kind": "VirtualMachine",
                "verbs": ["update"],
            }));
        }
        return Some(
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list}),
        );
    }
    for r in resources::all()
        .iter()
        .filter(|r| r.group == group && r.version == version && crds.serves(r))
    {
        list.push(resource_entry(r));
        if r.has_status {
            list.push(json!({
                "name": format!("{}/status", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    if list.is_empty() {
        return None;
    }
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list}),
    )
}

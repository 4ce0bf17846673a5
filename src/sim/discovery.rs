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

/// `/apis` (APIGroupList).
pub fn group_list(crds: &Crds) -> Value {
    let groups: Vec<Value> = resources::group_versions()
        .into_iter()
        .filter(|(g, _)| !g.is_empty() && crds.serves_group(g))
        .map(|(g, v)| {
            let gv = json!({"groupVersion": format!("{g}/{v}"), "version": v});
            json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/G` (APIGroup), or `None` for an unknown group.
pub fn group(name: &str, crds: &Crds) -> Option<Value> {
    resources::group_versions()
        .into_iter()
        .find(|(g, _)| *g == name && !g.is_empty() && crds.serves_group(g))
        .map(|(g, v)| {
            let gv = json!({"groupVersion": format!("{g}/{v}"), "version": v});
            json!({"kind": "APIGroup", "apiVersion": "v1", "name": g, "versions": [gv.clone()], "preferredVersion": gv})
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

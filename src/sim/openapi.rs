//! OpenAPI v3: the `/openapi/v3` index and one document per group-version.
//!
//! kubectl (default `--validate=strict`) trusts the server with field validation only when
//! the group-version document has, for the object's kind, a path whose `patch` operation
//! carries `x-kubernetes-group-version-kind` and a `fieldValidation` query parameter. Each
//! resource path here has GET/PUT/PATCH/DELETE with those; list paths have GET/POST.

use serde_json::{json, Map, Value};

use super::resources::{self, Crds, ResourceDef};
use super::schema;

/// The schema name of a kind (`io.k8s.api.core.v1.Secret`, `io.kubevirt.v1.VirtualMachine`).
pub fn schema_name(r: &ResourceDef) -> String {
    // Kubernetes' own groups are `io.k8s.api.<group without .k8s.io>` (as in the upstream
    // api/openapi-spec/v3 documents: io.k8s.api.coordination.v1.Lease); other groups
    // reverse their domain (io.kubevirt.v1.VirtualMachine).
    let group_part = match r.group {
        "" => "io.k8s.api.core".to_string(),
        g => match g.strip_suffix(".k8s.io") {
            Some(short) => format!("io.k8s.api.{short}"),
            None => g.split('.').rev().collect::<Vec<_>>().join("."),
        },
    };
    format!("{group_part}.{}.{}", r.version, r.kind)
}

fn gv_key(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`.
pub fn index(crds: &Crds) -> Value {
    let mut paths = Map::new();
    for (g, v) in resources::group_versions()
        .into_iter()
        .filter(|(g, _)| crds.serves_group(g))
    {
        let k = gv_key(g, v);
        paths.insert(
            k.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{k}?hash={}", hash_of(&k))}),
        );
    }
    json!({"paths": paths})
}

fn hash_of(s: &str) -> String {
    // Stable per build: the documents only change with the binary.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes().chain(env!("CARGO_PKG_VERSION").bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016X}")
}

fn param(name: &str, location: &str, required: bool) -> Value {
    json!({"name": name, "in": location, "required": required, "schema": {"type": "string"}})
}

fn op(r: &ResourceDef, verb: &str, action: &str, params: Vec<Value>, body: bool) -> Value {
    let reference = json!({"$ref": format!("#/components/schemas/{}", schema_name(r))});
    let mut o = json!({
        "operationId": format!("{verb}{}", r.kind),
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": r.kind},
        "parameters": params,
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": reference.clone()}}}},
    });
    if body {
        let content_types: Vec<&str> = if verb == "patch" {
            let mut v = vec![
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/apply-patch+yaml",
            ];
            if r.builtin {
                v.push("application/strategic-merge-patch+json");
            }
            v
        } else {
            vec!["application/json", "application/yaml"]
        };
        let content: Map<String, Value> = content_types
            .into_iter()
            .map(|c| (c.to_string(), json!({"schema": reference.clone()})))
            .collect();
        o["requestBody"] = json!({"required": true, "content": content});
    }
    o
}

fn write_params(with_force: bool) -> Vec<Value> {
    let mut p = vec![
        param("dryRun", "query", false),
        param("fieldManager", "query", false),
        param("fieldValidation", "query", false),
    ];
    if with_force {
        p.push(json!({"name": "force", "in": "query", "required": false, "schema": {"type": "boolean"}}));
    }
    p
}

/// The document for a group-version, or `None` if it is not served.
pub fn document(group: &str, version: &str, crds: &Crds) -> Option<Value> {
    let served: Vec<&ResourceDef> = resources::all()
        .iter()
        .filter(|r| r.group == group && r.version == version && crds.serves(r))
        .collect();
    if served.is_empty() && !(group == resources::SUBRESOURCES_GROUP && version == "v1") {
        return None;
    }
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for r in served {
        let base = r.gv_path();
        let (list_path, item_path, ns_params) = if r.namespaced {
            (
                format!("{base}/namespaces/{{namespace}}/{}", r.plural),
                format!("{base}/namespaces/{{namespace}}/{}/{{name}}", r.plural),
                vec![param("namespace", "path", true)],
            )
        } else {
            (
                format!("{base}/{}", r.plural),
                format!("{base}/{}/{{name}}", r.plural),
                Vec::new(),
            )
        };
        let mut item_params = ns_params.clone();
        item_params.push(param("name", "path", true));
        let with = |mut a: Vec<Value>, b: Vec<Value>| {
            a.extend(b);
            a
        };
        if r.create_only() {
            // A review kind: only `POST` on the collection (upstream api__v1 documents list
            // nothing else for selfsubjectaccessreviews).
            paths.insert(
                list_path,
                json!({"post": op(r, "create", "post", with(ns_params.clone(), write_params(false)), true)}),
            );
            let mut s = schema::to_openapi(&super::kind_schema::for_kind_in(r, crds));
            s["x-kubernetes-group-version-kind"] =
                json!([{"group": r.group, "version": r.version, "kind": r.kind}]);
            schemas.insert(schema_name(r), s);
            continue;
        }
        paths.insert(
            list_path,
            json!({
                "get": op(r, "list", "list", with(ns_params.clone(), vec![param("labelSelector", "query", false), param("fieldSelector", "query", false), param("watch", "query", false), param("resourceVersion", "query", false)]), false),
                "post": op(r, "create", "post", with(ns_params.clone(), write_params(false)), true),
            }),
        );
        paths.insert(
            item_path.clone(),
            json!({
                "get": op(r, "read", "get", item_params.clone(), false),
                "put": op(r, "replace", "put", with(item_params.clone(), write_params(false)), true),
                "patch": op(r, "patch", "patch", with(item_params.clone(), write_params(true)), true),
                "delete": op(r, "delete", "delete", with(item_params.clone(), vec![param("dryRun", "query", false)]), false),
            }),
        );
        if r.has_status {
            paths.insert(
                format!("{item_path}/status"),
                json!({
                    "get": op(r, "read", "get", item_params.clone(), false),
                    "put": op(r, "replace", "put", with(item_params.clone(), write_params(false)), true),
                    "patch": op(r, "patch", "patch", with(item_params.clone(), write_params(true)), true),
                }),
            );
        }
        if r.namespaced {
            paths.insert(
                format!("{base}/{}", r.plural),
                json!({"get": op(r, "list", "list", vec![param("labelSelector", "query", false), param("fieldSelector", "query", false)], false)}),
            );
        }
        let mut s = schema::to_openapi(&super::kind_schema::for_kind_in(r, crds));
        s["x-kubernetes-group-version-kind"] =
            json!([{"group": r.group, "version": r.version, "kind": r.kind}]);
        schemas.insert(schema_name(r), s);
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "wavelift sim", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

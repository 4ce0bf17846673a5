//! Where a pod (or a VMI's virt-launcher pod) may run: `spec.nodeSelector` and the required
//! node affinity, matched against the labels the simulated nodes carry, and the
//! deterministic choice among the nodes that fit.
//!
//! Modelled on kubernetes `staging/src/k8s.io/component-helpers/scheduling/corev1/nodeaffinity/nodeaffinity.go`
//! (`GetRequiredNodeAffinity`, `RequiredNodeAffinity.Match`: the node selector's labels all
//! match, and at least one `nodeSelectorTerms` entry matches, its `matchExpressions`
//! ANDed) and `pkg/scheduler/framework/plugins/nodeaffinity/node_affinity.go` (`Filter`).
//! `matchFields` (`metadata.name`) is honoured too; `Gt`/`Lt` are not modelled.

use serde_json::Value;

/// The labels a simulated node carries (`kubelet_node_status.go` `initialNode`; see
/// [`crate::sim`]'s node objects).
fn node_label(node: &str, key: &str) -> Option<String> {
    match key {
        "kubernetes.io/hostname" => Some(node.to_string()),
        "kubernetes.io/os" | "beta.kubernetes.io/os" => Some("linux".into()),
        "kubernetes.io/arch" | "beta.kubernetes.io/arch" => Some("amd64".into()),
        _ => None,
    }
}

/// One `NodeSelectorRequirement` against a value (`None`: the node has no such label).
fn requirement(req: &Value, value: Option<String>) -> bool {
    let values: Vec<&str> = req
        .get("values")
        .and_then(Value::as_array)
        .map(|v| v.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    match req.get("operator").and_then(Value::as_str).unwrap_or("") {
        "In" => value.is_some_and(|v| values.contains(&v.as_str())),
        "NotIn" => value.is_none_or(|v| !values.contains(&v.as_str())),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        // Gt, Lt and unknown operators: no simulated label is a number.
        _ => false,
    }
}

fn term_matches(term: &Value, node: &str) -> bool {
    let exprs = term.get("matchExpressions").and_then(Value::as_array);
    let fields = term.get("matchFields").and_then(Value::as_array);
    // A term with neither matches nothing (`nodeSelectorTerm` with no requirements).
    if exprs.is_none_or(Vec::is_empty) && fields.is_none_or(Vec::is_empty) {
        return false;
    }
    exprs.into_iter().flatten().all(|r| {
        let key = r.get("key").and_then(Value::as_str).unwrap_or("");
        requirement(r, node_label(node, key))
    }) && fields.into_iter().flatten().all(|r| {
        let key = r.get("key").and_then(Value::as_str).unwrap_or("");
        requirement(r, (key == "metadata.name").then(|| node.to_string()))
    })
}

/// Whether a pod spec (or a VMI spec, which has the same two fields) may run on `node`.
pub fn allowed(spec: &Value, node: &str) -> bool {
    let selector_ok = spec
        .get("nodeSelector")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .all(|(k, v)| node_label(node, k).as_deref() == v.as_str());
    let terms = spec.pointer(
        "/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms",
    );
    let affinity_ok = match terms.and_then(Value::as_array) {
        None => true,
        Some(terms) => terms.iter().any(|t| term_matches(t, node)),
    };
    selector_ok && affinity_ok
}

/// A deterministic choice among `nodes` for the object `name` (the same name lands on the
/// same node).
pub fn pick<'a>(seed: u64, name: &str, nodes: &[&'a str]) -> Option<&'a str> {
    if nodes.is_empty() {
        return None;
    }
    let h = name
        .bytes()
        .fold(seed, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    Some(nodes[(h % nodes.len() as u64) as usize])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selector_and_required_affinity_on_the_hostname() {
        let not_in = json!({ "affinity": { "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": { "nodeSelectorTerms": [
                { "matchExpressions": [{ "key": "kubernetes.io/hostname", "operator": "NotIn",
                                         "values": ["n1", "n2"] }] }
            ] } } } });
        assert!(!allowed(&not_in, "n1") && !allowed(&not_in, "n2"));
        assert!(allowed(&not_in, "n3"));
        let sel = json!({ "nodeSelector": { "kubernetes.io/hostname": "n2" } });
        assert!(allowed(&sel, "n2") && !allowed(&sel, "n1"));
        let any = json!({ "affinity": { "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": { "nodeSelectorTerms": [
                { "matchExpressions": [{ "key": "kubernetes.io/hostname", "operator": "In", "values": ["n1"] }] },
                { "matchFields": [{ "key": "metadata.name", "operator": "In", "values": ["n3"] }] }
            ] } } } });
        assert!(allowed(&any, "n1") && allowed(&any, "n3") && !allowed(&any, "n2"));
        assert!(allowed(&json!({}), "n1"));
        assert_eq!(pick(0, "x", &[]), None);
        assert_eq!(pick(0, "x", &["a", "b"]), pick(0, "x", &["a", "b"]));
    }
}

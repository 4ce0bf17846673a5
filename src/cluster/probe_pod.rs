//! The probe pod (issue 14): `wavelift probe` in a pod
//! attached to a VM's network, with the least it needs — `CAP_NET_RAW` only (every other
//! capability dropped), a non-root user, no service account token, `restartPolicy: Never`,
//! a deadline — and its result in the termination message (`terminationMessagePolicy:
//! File`, read back by [`crate::checks::probe::pod::decode`]). Pod Security's `baseline`
//! level does not allow adding `NET_RAW`; `privileged` does.

use super::labels;
use crate::plan::Plan;
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;
use std::time::Duration;

/// Label naming what a probe pod is for (`l2-path`, `guard`, `checks`).
pub const PROBE_LABEL: &str = "wavelift.io/probe";

/// One probe pod to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSpec {
    pub name: String,
    /// The NetworkAttachmentDefinition the pod is attached to: the plan network's, or its
    /// probe attachment ([`super::build::probe_network_name`]) when `ips` is set.
    pub network: String,
    /// Addresses requested on `net1` (`["192.0.2.250/24"]`: the network's `probe_ip`).
    pub ips: Vec<String>,
    /// Pinned to this node (a per-node proof), else anywhere but `avoid`.
    pub node: Option<String>,
    /// Nodes the network's VLAN does not reach (the per-node proof's finding).
    pub avoid: Vec<String>,
    pub purpose: String,
    /// `wavelift probe` arguments after `probe`.
    pub args: Vec<String>,
    /// `activeDeadlineSeconds`: the kubelet stops the pod after this.
    pub deadline: Duration,
}

/// The Pod, or `None` when the plan has no `probe_image`.
pub fn probe_pod(plan: &Plan, spec: &ProbeSpec) -> Option<Pod> {
    let image = plan.meta.probe_image.as_ref()?;
    let ns = plan.meta.namespace.as_str();
    let mut labels = labels::for_plan(plan.meta.name.as_str());
    labels.insert(PROBE_LABEL.to_string(), spec.purpose.clone());
    let mut args = vec!["probe".to_string(), "--interface".into(), "net1".into()];
    args.extend(spec.args.iter().cloned());
    let mut networks = json!([{ "name": spec.network, "namespace": ns, "interface": "net1" }]);
    if !spec.ips.is_empty() {
        networks[0]["ips"] = json!(spec.ips);
    }
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": spec.name,
            "namespace": ns,
            "labels": labels,
            "annotations": { "k8s.v1.cni.cncf.io/networks": networks.to_string() },
        },
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": false,
            "enableServiceLinks": false,
            "activeDeadlineSeconds": spec.deadline.as_secs().max(1),
            "terminationGracePeriodSeconds": 1,
            "securityContext": {
                "runAsNonRoot": true,
                "runAsUser": 65534,
                "runAsGroup": 65534,
                "seccompProfile": { "type": "RuntimeDefault" },
            },
            "containers": [{
                "name": "probe",
                "image": image.value,
                "args": args,
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "resources": {
                    "requests": { "cpu": "10m", "memory": "16Mi" },
                    "limits": { "memory": "64Mi" },
                },
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "readOnlyRootFilesystem": true,
                    "capabilities": { "drop": ["ALL"], "add": ["NET_RAW"] },
                },
            }],
        },
    });
    if let Some(node) = &spec.node {
        pod["spec"]["nodeName"] = json!(node);
    } else if !spec.avoid.is_empty() {
        pod["spec"]["affinity"] = json!({ "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": { "nodeSelectorTerms": [{
                "matchExpressions": [{ "key": "kubernetes.io/hostname", "operator": "NotIn",
                    "values": spec.avoid }] }] } } });
    }
    serde_json::from_value(pod).ok()
}

/// A probe pod's name: `wl-probe-PURPOSE-SUBJECT`, a DNS label (≤ 63 characters; a long
/// subject is cut and a hash of the whole kept, so names stay distinct).
pub fn pod_name(purpose: &str, subject: &str) -> String {
    let full = format!("wl-probe-{purpose}-{subject}").to_ascii_lowercase();
    let clean: String = full
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if clean.len() <= 63 {
        return clean.trim_end_matches('-').to_string();
    }
    let h = clean.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    format!("{}-{:08x}", clean[..54].trim_end_matches('-'), h as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(image: bool) -> Plan {
        let mut text = std::fs::read_to_string("plans/quickstart.toml").expect("quickstart");
        if image {
            text = text.replace(
                "namespace = \"mig-quickstart\"",
                "namespace = \"mig-quickstart\"\nprobe_image = \"registry.example.internal/wavelift:0.1\"",
            );
        }
        crate::plan::check_str(&text, "q.toml").plan.expect("valid")
    }

    #[test]
    fn a_probe_pod_has_net_raw_only_no_token_and_a_deadline() {
        assert!(
            probe_pod(&plan(false), &spec()).is_none(),
            "no image, no pod"
        );
        let pod = probe_pod(&plan(true), &spec()).expect("pod");
        let v = serde_json::to_value(&pod).expect("json");
        assert_eq!(v["metadata"]["labels"][PROBE_LABEL], "l2-path");
        assert_eq!(v["metadata"]["labels"][labels::PLAN], "quickstart");
        assert_eq!(
            v["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"],
            r#"[{"interface":"net1","name":"vlan-210","namespace":"mig-quickstart"}]"#
        );
        let s = &v["spec"];
        assert_eq!(s["restartPolicy"], "Never");
        assert_eq!(s["automountServiceAccountToken"], false);
        assert_eq!(s["activeDeadlineSeconds"], 60);
        assert_eq!(s["nodeName"], "node-2");
        let c = &s["containers"][0];
        assert_eq!(c["image"], "registry.example.internal/wavelift:0.1");
        assert_eq!(
            c["args"],
            json!(["probe", "--interface", "net1", "--gateway", "192.0.2.1"])
        );
        assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
        assert_eq!(
            c["securityContext"]["capabilities"]["add"],
            json!(["NET_RAW"])
        );
        assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
        assert_eq!(c["terminationMessagePolicy"], "File");
        assert_eq!(s["securityContext"]["runAsNonRoot"], true);
    }

    #[test]
    fn names_are_dns_labels_and_stay_distinct() {
        assert_eq!(
            pod_name("l2", "vlan-210.node-2"),
            "wl-probe-l2-vlan-210-node-2"
        );
        let long = "a".repeat(80);
        let (a, b) = (
            pod_name("guard", &long),
            pod_name("guard", &format!("{long}b")),
        );
        assert!(a.len() <= 63 && b.len() <= 63);
        assert_ne!(a, b);
    }

    #[test]
    fn a_probe_ip_is_requested_in_the_networks_annotation() {
        let mut s = spec();
        s.network = "vlan-210-probe".into();
        s.ips = vec!["192.0.2.250/24".into()];
        let v = serde_json::to_value(probe_pod(&plan(true), &s).expect("pod")).expect("json");
        assert_eq!(
            v["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"],
            r#"[{"interface":"net1","ips":["192.0.2.250/24"],"name":"vlan-210-probe","namespace":"mig-quickstart"}]"#
        );
    }

    fn spec() -> ProbeSpec {
        ProbeSpec {
            name: "wavelift-probe-l2-vlan-210-node-2".into(),
            network: "vlan-210".into(),
            ips: vec![],
            avoid: vec![],
            node: Some("node-2".into()),
            purpose: "l2-path".into(),
            args: vec!["--gateway".into(), "192.0.2.1".into()],
            deadline: Duration::from_secs(60),
        }
    }
}

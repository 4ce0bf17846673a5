//! The drafted policy as a [`PolicyDoc`] and as commented YAML (written here, with a stable
//! key order, so that each rule can carry the comment saying where it came from).

use super::super::k8s::{MnpVersion, PolicyDoc, PolicyKind, MNP_GROUP, POLICY_FOR};
use super::super::rules::Proto;
use super::space::Block;
use super::{DraftOptions, DraftRule, PortRange, Provenance, VmInput, VmNetwork};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::fmt::Write;

fn proto_str(p: Proto) -> &'static str {
    match p {
        Proto::Udp => "UDP",
        Proto::Sctp => "SCTP",
        _ => "TCP",
    }
}

fn peer(b: &Block) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        ip_block: Some(IPBlock {
            cidr: b.cidr.to_string(),
            except: (!b.except.is_empty())
                .then(|| b.except.iter().map(|c| c.to_string()).collect()),
        }),
        ..NetworkPolicyPeer::default()
    }
}

fn port(p: &PortRange) -> NetworkPolicyPort {
    let all = p.all_ports();
    NetworkPolicyPort {
        protocol: Some(proto_str(p.proto).to_string()),
        port: (!all).then_some(IntOrString::Int(i32::from(p.lo))),
        end_port: (!all && p.hi > p.lo).then_some(i32::from(p.hi)),
    }
}

fn ports(r: &DraftRule) -> Option<Vec<NetworkPolicyPort>> {
    (!r.ports.is_empty()).then(|| r.ports.iter().map(port).collect())
}

pub(super) fn doc(
    vm: &VmInput,
    ingress: &[DraftRule],
    egress: &[DraftRule],
    egress_named: bool,
    opts: &DraftOptions,
) -> PolicyDoc {
    let kind = match &vm.network {
        VmNetwork::Pod => PolicyKind::NetworkPolicy,
        VmNetwork::Attachments(n) => PolicyKind::MultiNetworkPolicy {
            version: opts.mnp_version,
            policy_for: n.clone(),
        },
    };
    let mut types = vec!["Ingress".to_string()];
    if egress_named {
        types.push("Egress".to_string());
    }
    PolicyDoc {
        kind,
        name: policy_name(&vm.name),
        namespace: vm.namespace.clone(),
        labels: vm.labels.clone(),
        spec: NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(vm.pod_selector.clone()),
                match_expressions: None,
            }),
            policy_types: Some(types),
            ingress: Some(
                ingress
                    .iter()
                    .map(|r| NetworkPolicyIngressRule {
                        from: Some(r.peers.iter().map(peer).collect()),
                        ports: ports(r),
                    })
                    .collect(),
            ),
            egress: egress_named.then(|| {
                egress
                    .iter()
                    .map(|r| NetworkPolicyEgressRule {
                        to: Some(r.peers.iter().map(peer).collect()),
                        ports: ports(r),
                    })
                    .collect()
            }),
        },
    }
}

/// `wavelift-<vm>`.
pub fn policy_name(vm: &str) -> String {
    format!("wavelift-{vm}")
}

/// One line of comment text (no line breaks or other control characters).
fn line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A YAML scalar for a string: plain when it cannot be read as anything else, else
/// double-quoted (JSON string syntax, which YAML reads the same).
fn scalar(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-'))
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "y" | "n"
        );
    if plain {
        s.to_string()
    } else {
        serde_json::Value::String(s.to_string()).to_string()
    }
}

fn comment(r: &DraftRule, out: &mut String, ind: &str) {
    match &r.provenance {
        Provenance::Firewall {
            origin,
            narrowed_by,
            broad,
        } => {
            let mut s = format!("from {origin}");
            if !broad.is_empty() {
                let _ = write!(s, " [broad: {}]", broad.join(", "));
            }
            let _ = writeln!(out, "{ind}# {}", line(&s));
            for d in narrowed_by {
                let _ = writeln!(
                    out,
                    "{ind}#   except what {} denies first",
                    line(&d.to_string())
                );
            }
        }
        Provenance::Probe { why } => {
            let _ = writeln!(out, "{ind}# wavelift probes ({})", line(why));
        }
    }
}

fn rules_yaml(key: &str, peer_key: &str, rules: &[DraftRule], out: &mut String) {
    if rules.is_empty() {
        let _ = writeln!(out, "  {key}: []");
        return;
    }
    let _ = writeln!(out, "  {key}:");
    for r in rules {
        comment(r, out, "  ");
        let _ = writeln!(out, "  - {peer_key}:");
        for b in &r.peers {
            let _ = writeln!(out, "    - ipBlock:");
            let _ = writeln!(out, "        cidr: {}", b.cidr);
            if !b.except.is_empty() {
                let _ = writeln!(out, "        except:");
                for e in &b.except {
                    let _ = writeln!(out, "        - {e}");
                }
            }
        }
        if !r.ports.is_empty() {
            let _ = writeln!(out, "    ports:");
            for p in &r.ports {
                let _ = writeln!(out, "    - protocol: {}", proto_str(p.proto));
                if !p.all_ports() {
                    let _ = writeln!(out, "      port: {}", p.lo);
                    if p.hi > p.lo {
                        let _ = writeln!(out, "      endPort: {}", p.hi);
                    }
                }
            }
        }
    }
}

pub(super) fn yaml(
    vm: &VmInput,
    doc: &PolicyDoc,
    ingress: &[DraftRule],
    egress: &[DraftRule],
    warnings: &[String],
) -> String {
    let mut out = String::new();
    let ips: Vec<String> = vm.ips.iter().map(|i| i.to_string()).collect();
    let _ = writeln!(
        out,
        "# wavelift policy draft for VM {} ({})",
        line(&vm.name),
        ips.join(", ")
    );
    if warnings.is_empty() {
        out.push_str("# no warnings\n");
    } else {
        let _ = writeln!(out, "# {} warning(s):", warnings.len());
        for w in warnings {
            let _ = writeln!(out, "# - {}", line(w));
        }
    }
    let (api, kind) = match &doc.kind {
        PolicyKind::NetworkPolicy => ("networking.k8s.io/v1".to_string(), "NetworkPolicy"),
        PolicyKind::MultiNetworkPolicy { version, .. } => (
            format!("{MNP_GROUP}/{}", MnpVersion::as_str(*version)),
            "MultiNetworkPolicy",
        ),
    };
    let _ = writeln!(out, "apiVersion: {api}\nkind: {kind}\nmetadata:");
    let _ = writeln!(out, "  name: {}", scalar(&doc.name));
    let _ = writeln!(out, "  namespace: {}", scalar(&doc.namespace));
    if let PolicyKind::MultiNetworkPolicy { policy_for, .. } = &doc.kind {
        let _ = writeln!(
            out,
            "  annotations:\n    {POLICY_FOR}: {}",
            scalar(&policy_for.join(","))
        );
    }
    if !doc.labels.is_empty() {
        out.push_str("  labels:\n");
        for (k, v) in &doc.labels {
            let _ = writeln!(out, "    {}: {}", scalar(k), scalar(v));
        }
    }
    out.push_str("spec:\n  podSelector:\n    matchLabels:\n");
    for (k, v) in &vm.pod_selector {
        let _ = writeln!(out, "      {}: {}", scalar(k), scalar(v));
    }
    out.push_str("  policyTypes:\n");
    for t in doc.spec.policy_types.iter().flatten() {
        let _ = writeln!(out, "  - {t}");
    }
    rules_yaml("ingress", "from", ingress, &mut out);
    if doc.spec.egress.is_some() {
        rules_yaml("egress", "to", egress, &mut out);
    }
    out
}

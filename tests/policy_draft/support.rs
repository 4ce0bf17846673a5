//! Building rule sets by hand, summarising drafts, and reading the YAML back.

use k8s_openapi::api::networking::v1::NetworkPolicySpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;
use std::net::IpAddr;
use wavelift::policy::draft::{
    self, DraftOptions, DraftRule, Provenance, VmDraft, VmInput, VmNetwork,
};
use wavelift::policy::k8s::{MnpVersion, PolicyDoc, PolicyKind, POLICY_FOR};
use wavelift::policy::rules::*;

pub const FILE: &str = "fw/edge.iptables";

pub fn origin(line: usize, name: &str) -> Origin {
    Origin {
        file: FILE.into(),
        line,
        name: Some(name.into()),
        owner: Some("netsec".into()),
    }
}

pub fn addrs(s: &str) -> AddrSet {
    if s == "any" {
        return AddrSet::Any;
    }
    let (mut ranges, mut unresolved) = (Vec::new(), Vec::new());
    for p in s.split(',') {
        if let Ok(n) = p.parse::<ipnet::IpNet>() {
            ranges.push(AddrRange {
                lo: n.network(),
                hi: n.broadcast(),
            });
        } else if let Ok(ip) = p.parse::<IpAddr>() {
            ranges.push(AddrRange::host(ip));
        } else if let Some((a, b)) = p
            .split_once('-')
            .and_then(|(a, b)| Some((a.parse::<IpAddr>().ok()?, b.parse::<IpAddr>().ok()?)))
        {
            ranges.push(AddrRange { lo: a, hi: b });
        } else {
            unresolved.push(p.to_string());
        }
    }
    AddrSet::Some { ranges, unresolved }
}

/// `any`, or comma-separated `tcp/443`, `tcp/8000-8080`, `udp`, `icmp`, `esp`.
pub fn services(s: &str) -> Services {
    if s == "any" {
        return Services::Any;
    }
    Services::List(
        s.split(',')
            .map(|p| {
                let (proto, ports) = p.split_once('/').unwrap_or((p, ""));
                let proto = match proto {
                    "tcp" => Proto::Tcp,
                    "udp" => Proto::Udp,
                    "sctp" => Proto::Sctp,
                    "icmp" => Proto::Icmp,
                    "esp" => Proto::Other(50),
                    other => panic!("proto {other}"),
                };
                let ports = (!ports.is_empty()).then(|| match ports.split_once('-') {
                    Some((a, b)) => (a.parse().expect("port"), b.parse().expect("port")),
                    None => {
                        let n = ports.parse().expect("port");
                        (n, n)
                    }
                });
                Service { proto, ports }
            })
            .collect(),
    )
}

pub fn rule(line: usize, name: &str, action: Action, src: &str, dst: &str, svc: &str) -> Rule {
    Rule {
        origin: origin(line, name),
        action,
        direction: None,
        src: addrs(src),
        dst: addrs(dst),
        services: services(svc),
        narrowed_by: Vec::new(),
        disabled: false,
    }
}

pub fn allow(line: usize, name: &str, src: &str, dst: &str, svc: &str) -> Rule {
    rule(line, name, Action::Allow, src, dst, svc)
}

pub fn deny(line: usize, name: &str, src: &str, dst: &str, svc: &str) -> Rule {
    rule(line, name, Action::Deny, src, dst, svc)
}

pub fn list(name: &str, rules: Vec<Rule>, default: Action) -> RuleList {
    RuleList {
        name: name.into(),
        rules,
        default,
        default_origin: origin(1, "default"),
        implicit_default: false,
    }
}

pub fn set(lists: Vec<RuleList>) -> RuleSet {
    RuleSet {
        file: FILE.into(),
        format: "iptables",
        lists,
        warnings: Vec::new(),
    }
}

pub fn vm(name: &str, ip: &str) -> VmInput {
    VmInput {
        name: name.into(),
        namespace: "mig-quickstart".into(),
        labels: BTreeMap::from([
            (
                "app.kubernetes.io/managed-by".to_string(),
                "wavelift".to_string(),
            ),
            ("wavelift.io/plan".to_string(), "quickstart".to_string()),
            ("wavelift.io/vm".to_string(), name.to_string()),
            ("wavelift.io/wave".to_string(), "w1".to_string()),
        ]),
        pod_selector: BTreeMap::from([
            ("wavelift.io/plan".to_string(), "quickstart".to_string()),
            ("wavelift.io/vm".to_string(), name.to_string()),
        ]),
        ips: vec![ip.parse().expect("ip")],
        network: VmNetwork::Attachments(vec!["mig-quickstart/vlan-210".into()]),
        probes: Vec::new(),
    }
}

pub const WEB: &str = "192.0.2.17";

/// Drafts the VM `web` (192.0.2.17, L2) from one list, v1beta2; checks the YAML reads back
/// to the same object.
pub fn draft1(rules: Vec<Rule>, default: Action) -> VmDraft {
    draft_with(
        &vm("web", WEB),
        &[set(vec![list("filter/FORWARD", rules, default)])],
        MnpVersion::V1beta2,
    )
}

pub fn draft_with(v: &VmInput, sets: &[RuleSet], version: MnpVersion) -> VmDraft {
    let d = draft::draft_vm(
        v,
        sets,
        &DraftOptions {
            mnp_version: version,
        },
    );
    assert_eq!(read_back(&d.yaml), d.doc, "YAML roundtrip:\n{}", d.yaml);
    d
}

/// A drafted rule in one line: `peers | ports | origin line [narrowed by lines]`.
pub fn show(r: &DraftRule) -> String {
    let peers: Vec<String> = r.peers.iter().map(ToString::to_string).collect();
    let ports: Vec<String> = r.ports.iter().map(ToString::to_string).collect();
    let ports = if ports.is_empty() {
        "all".to_string()
    } else {
        ports.join(",")
    };
    let from = match &r.provenance {
        Provenance::Firewall {
            origin,
            narrowed_by,
            ..
        } => {
            let mut s = format!("{}", origin.line);
            for n in narrowed_by {
                s.push_str(&format!(" -{}", n.line));
            }
            s
        }
        Provenance::Probe { why } => format!("probe {why}"),
    };
    format!("{} | {ports} | {from}", peers.join(", "))
}

pub fn shown(rules: &[DraftRule]) -> Vec<String> {
    rules.iter().map(show).collect()
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Obj {
    api_version: String,
    kind: String,
    metadata: ObjectMeta,
    spec: NetworkPolicySpec,
}

/// Reads a drafted YAML document back into a [`PolicyDoc`].
pub fn read_back(yaml: &str) -> PolicyDoc {
    let o: Obj = serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    let kind = match (o.kind.as_str(), o.api_version.as_str()) {
        ("NetworkPolicy", "networking.k8s.io/v1") => PolicyKind::NetworkPolicy,
        ("MultiNetworkPolicy", v) => PolicyKind::MultiNetworkPolicy {
            version: match v {
                "k8s.cni.cncf.io/v1beta1" => MnpVersion::V1beta1,
                "k8s.cni.cncf.io/v1beta2" => MnpVersion::V1beta2,
                other => panic!("apiVersion {other}"),
            },
            policy_for: o
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(POLICY_FOR))
                .map(|s| s.split(',').map(str::to_string).collect())
                .unwrap_or_default(),
        },
        other => panic!("kind {other:?}"),
    };
    PolicyDoc {
        kind,
        name: o.metadata.name.unwrap_or_default(),
        namespace: o.metadata.namespace.unwrap_or_default(),
        labels: o.metadata.labels.unwrap_or_default(),
        spec: o.spec,
    }
}

pub fn has_warning(d: &VmDraft, parts: &[&str]) -> bool {
    d.warnings
        .iter()
        .any(|w| parts.iter().all(|p| w.contains(p)))
}

#[track_caller]
pub fn assert_warning(d: &VmDraft, parts: &[&str]) {
    assert!(
        has_warning(d, parts),
        "no warning with {parts:?} in {:#?}",
        d.warnings
    );
}

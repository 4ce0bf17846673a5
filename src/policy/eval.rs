//! Pure evaluation of Kubernetes (Multi)NetworkPolicy semantics (`wavelift policy test`,
//! and the sim network's enforcement).
//!
//! The semantics are the Kubernetes documentation's
//! (<https://kubernetes.io/docs/concepts/services-networking/network-policies/>) and the API
//! reference of `NetworkPolicySpec`:
//!
//! - A pod is *isolated for ingress* iff some policy in its namespace selects it (its
//!   `podSelector`; the empty selector selects every pod of the namespace) and that policy's
//!   `policyTypes` include `Ingress`. Omitted `policyTypes` mean `Ingress`, plus `Egress`
//!   when the policy has egress rules (the API server's defaulting). Likewise for egress.
//! - A flow to an isolated pod is allowed iff at least one ingress rule of at least one
//!   selecting policy admits it: the rules of all selecting policies are a union, and no
//!   policy can deny what another allows. A selecting policy with no matching rule only
//!   contributes its *default deny*.
//! - A rule admits a flow when one of its peers (`from`; `to` for egress) matches the other
//!   end and one of its `ports` matches the flow. No (or empty) `from` admits every source;
//!   no (or empty) `ports` admits every port of every protocol.
//! - Peers: `ipBlock` matches addresses in `cidr` but in none of `except`. `podSelector`
//!   alone matches pods of the policy's namespace, `namespaceSelector` alone every pod of
//!   the namespaces it selects, both together the pods matching `podSelector` in the
//!   namespaces `namespaceSelector` selects. Pod peers match only a source the caller names
//!   as a pod ([`Peer::pod`]): a bare address is no pod, and no pod peer matches it.
//! - Ports: `protocol` defaults to TCP; a numeric `port` matches that port, up to `endPort`
//!   when it is set; no `port` matches every port of the protocol. A named port (`http`) is
//!   resolved by the cluster against the pod's container ports, which are not known here: it
//!   matches no numeric flow, and the evaluation says so in [`Decision::notes`].
//!
//! Networks: a `NetworkPolicy` applies only to traffic on the pod network; a
//! `MultiNetworkPolicy` (k8snetworkplumbingwg/multi-networkpolicy, README "policy-for
//! annotation") only to traffic on the NetworkAttachmentDefinitions its
//! `k8s.v1.cni.cncf.io/policy-for` annotation names (comma-separated, `NAME` resolved in the
//! policy's namespace, or `NAMESPACE/NAME`). Isolation is per network: a pod isolated on its
//! secondary network by a MultiNetworkPolicy is not isolated on the pod network, and the
//! reverse.
//!
//! [`read_policies`] reads YAML or JSON (several documents) into [`PolicyDoc`]s, and
//! [`validate`] checks a spec the way the API server does (kubernetes
//! `pkg/apis/networking/validation/validation.go` `ValidateNetworkPolicySpec`).

use super::k8s::{MnpVersion, PolicyDoc, PolicyKind, MNP_GROUP, POLICY_FOR};
use super::rules::Proto;
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// The label every namespace carries with its own name (`kubernetes.io/metadata.name`, set by
/// the API server since 1.22), so a `namespaceSelector` can always select one namespace.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// One end of a flow that is a pod: where it is, its labels, and which network the flow is on.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint<'a> {
    pub namespace: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    /// The labels of the pod's namespace, for `namespaceSelector`; `None` = only
    /// [`NAMESPACE_NAME_LABEL`] (what every namespace has).
    pub namespace_labels: Option<&'a BTreeMap<String, String>>,
    /// The network the flow is on at this pod: `Some("ns/nad")` for a secondary network (the
    /// NetworkAttachmentDefinition of the interface), `None` for the pod network.
    pub network: Option<&'a str>,
}

impl<'a> Endpoint<'a> {
    pub fn new(namespace: &'a str, labels: &'a BTreeMap<String, String>) -> Self {
        Endpoint {
            namespace,
            labels,
            namespace_labels: None,
            network: None,
        }
    }

    pub fn on_network(mut self, network: Option<&'a str>) -> Self {
        self.network = network;
        self
    }
}

/// The other end of a flow: an address and, when the caller knows it, the pod it belongs to
/// (for `podSelector`/`namespaceSelector` peers). A bare address is no pod.
#[derive(Debug, Clone, Copy)]
pub struct Peer<'a> {
    pub ip: IpAddr,
    pub pod: Option<Endpoint<'a>>,
}

impl From<IpAddr> for Peer<'_> {
    fn from(ip: IpAddr) -> Self {
        Peer { ip, pod: None }
    }
}

/// The outcome for one direction at one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No policy selects the pod for this direction on this network: everything is allowed.
    NotIsolated,
    /// Allowed by every rule named.
    Allow { by: Vec<RuleRef> },
    /// Isolated and no rule admits the flow: the default deny of every policy named
    /// (`NetworkPolicy mig/default-deny`) applies.
    Deny { by: Vec<String> },
}

/// One rule of a policy: shown as `MultiNetworkPolicy mig/web-01 ingress[2]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRef {
    /// The policy, as [`policy_label`] names it.
    pub policy: String,
    /// `ingress` or `egress`.
    pub field: &'static str,
    /// The rule's 0-based position in `spec.ingress` / `spec.egress`.
    pub index: usize,
}

impl std::fmt::Display for RuleRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}[{}]", self.policy, self.field, self.index)
    }
}

impl Verdict {
    pub fn allowed(&self) -> bool {
        !matches!(self, Verdict::Deny { .. })
    }
}

/// A verdict and what the evaluation could not decide exactly (named ports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    Ingress,
    Egress,
}

impl Dir {
    fn field(self) -> &'static str {
        match self {
            Dir::Ingress => "ingress",
            Dir::Egress => "egress",
        }
    }
}

/// `NetworkPolicy ns/name` or `MultiNetworkPolicy ns/name`.
pub fn policy_label(p: &PolicyDoc) -> String {
    let kind = match p.kind {
        PolicyKind::NetworkPolicy => "NetworkPolicy",
        PolicyKind::MultiNetworkPolicy { .. } => "MultiNetworkPolicy",
    };
    format!("{kind} {}/{}", p.namespace, p.name)
}

/// Whether the policy governs traffic on `network` (`None` = pod network).
pub fn applies_to_network(p: &PolicyDoc, network: Option<&str>) -> bool {
    match (&p.kind, network) {
        (PolicyKind::NetworkPolicy, None) => true,
        (PolicyKind::MultiNetworkPolicy { policy_for, .. }, Some(n)) => {
            policy_for.iter().any(|f| f == n)
        }
        _ => false,
    }
}

/// The policy's effective `policyTypes` (API defaulting when omitted).
pub fn policy_types(spec: &NetworkPolicySpec) -> (bool, bool) {
    match spec.policy_types.as_deref() {
        Some(t) if !t.is_empty() => (
            t.iter().any(|x| x == "Ingress"),
            t.iter().any(|x| x == "Egress"),
        ),
        _ => (true, spec.egress.as_ref().is_some_and(|e| !e.is_empty())),
    }
}

/// Whether `sel` selects `labels` (`matchLabels` and `matchExpressions` ANDed; the empty
/// selector selects everything; an unknown operator selects nothing).
pub fn selector_matches(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let by_labels = sel
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    by_labels
        && sel.match_expressions.iter().flatten().all(|e| {
            let values = e.values.as_deref().unwrap_or_default();
            let have = labels.get(&e.key);
            match e.operator.as_str() {
                "In" => have.is_some_and(|v| values.contains(v)),
                "NotIn" => have.is_none_or(|v| !values.contains(v)),
                "Exists" => have.is_some(),
                "DoesNotExist" => have.is_none(),
                _ => false,
            }
        })
}

fn selects(p: &PolicyDoc, pod: &Endpoint) -> bool {
    p.namespace == pod.namespace
        && p.spec
            .pod_selector
            .as_ref()
            .is_none_or(|s| selector_matches(s, pod.labels))
}

fn ip_block_matches(b: &IPBlock, ip: IpAddr) -> bool {
    let Ok(net) = b.cidr.parse::<ipnet::IpNet>() else {
        return false;
    };
    net.contains(&ip)
        && !b
            .except
            .iter()
            .flatten()
            .filter_map(|e| e.parse::<ipnet::IpNet>().ok())
            .any(|e| e.contains(&ip))
}

fn peer_matches(policy_ns: &str, peer: &NetworkPolicyPeer, other: &Peer) -> bool {
    if let Some(b) = &peer.ip_block {
        return ip_block_matches(b, other.ip);
    }
    let Some(pod) = &other.pod else {
        return false;
    };
    let ns_ok = match &peer.namespace_selector {
        Some(ns_sel) => {
            let own;
            let ns_labels = match pod.namespace_labels {
                Some(l) => l,
                None => {
                    own = BTreeMap::from([(
                        NAMESPACE_NAME_LABEL.to_string(),
                        pod.namespace.to_string(),
                    )]);
                    &own
                }
            };
            selector_matches(ns_sel, ns_labels)
        }
        None => pod.namespace == policy_ns,
    };
    let pod_ok = peer
        .pod_selector
        .as_ref()
        .is_none_or(|s| selector_matches(s, pod.labels));
    // A peer with neither selector is invalid (validation refuses it): it matches nothing.
    (peer.namespace_selector.is_some() || peer.pod_selector.is_some()) && ns_ok && pod_ok
}

fn proto_name(p: Proto) -> Option<&'static str> {
    match p {
        Proto::Tcp => Some("TCP"),
        Proto::Udp => Some("UDP"),
        Proto::Sctp => Some("SCTP"),
        _ => None,
    }
}

fn port_matches(
    pp: &NetworkPolicyPort,
    proto: Proto,
    port: Option<u16>,
    at: &str,
    notes: &mut Vec<String>,
) -> bool {
    let want = pp.protocol.as_deref().unwrap_or("TCP");
    if proto_name(proto) != Some(want) {
        return false;
    }
    match (&pp.port, port) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(IntOrString::Int(p)), Some(n)) => {
            let lo = *p;
            let hi = pp.end_port.unwrap_or(lo);
            (lo..=hi).contains(&i32::from(n))
        }
        (Some(IntOrString::String(name)), Some(_)) => {
            notes.push(format!(
                "{at}: named port {name:?} is resolved against the pod's container ports, which are not known here: it does not match a numeric port"
            ));
            false
        }
    }
}

/// A rule's peers (`from`/`to`) and ports.
type RuleParts<'a> = (
    Option<&'a Vec<NetworkPolicyPeer>>,
    Option<&'a Vec<NetworkPolicyPort>>,
);

fn evaluate(
    policies: &[PolicyDoc],
    dir: Dir,
    pod: &Endpoint,
    other: &Peer,
    proto: Proto,
    port: Option<u16>,
) -> Decision {
    let mut isolating = Vec::new();
    let mut allow = Vec::new();
    let mut notes = Vec::new();
    for p in policies {
        if !applies_to_network(p, pod.network) || !selects(p, pod) {
            continue;
        }
        let (ing, eg) = policy_types(&p.spec);
        let on = match dir {
            Dir::Ingress => ing,
            Dir::Egress => eg,
        };
        if !on {
            continue;
        }
        let label = policy_label(p);
        isolating.push(label.clone());
        let rules: Vec<RuleParts> = match dir {
            Dir::Ingress => p
                .spec
                .ingress
                .iter()
                .flatten()
                .map(|r| (r.from.as_ref(), r.ports.as_ref()))
                .collect(),
            Dir::Egress => p
                .spec
                .egress
                .iter()
                .flatten()
                .map(|r| (r.to.as_ref(), r.ports.as_ref()))
                .collect(),
        };
        for (i, (peers, ports)) in rules.into_iter().enumerate() {
            let peer_ok = match peers {
                None => true,
                Some(v) if v.is_empty() => true,
                Some(v) => v.iter().any(|pe| peer_matches(&p.namespace, pe, other)),
            };
            if !peer_ok {
                continue;
            }
            let at = RuleRef {
                policy: label.clone(),
                field: dir.field(),
                index: i,
            };
            let port_ok = match ports {
                None => true,
                Some(v) if v.is_empty() => true,
                Some(v) => v.iter().enumerate().any(|(j, pp)| {
                    port_matches(pp, proto, port, &format!("{at}.ports[{j}]"), &mut notes)
                }),
            };
            if port_ok {
                allow.push(at);
            }
        }
    }
    let verdict = if isolating.is_empty() {
        Verdict::NotIsolated
    } else if allow.is_empty() {
        Verdict::Deny { by: isolating }
    } else {
        Verdict::Allow { by: allow }
    };
    Decision { verdict, notes }
}

/// Whether a flow from `from` reaches pod `to` (on `to.network`), under `policies` (any
/// namespaces and kinds: those that do not apply are skipped). `port` is `None` for a
/// protocol without ports (ICMP), which only rules without `ports` admit.
pub fn ingress(
    policies: &[PolicyDoc],
    to: &Endpoint,
    from: Peer,
    proto: Proto,
    port: Option<u16>,
) -> Decision {
    evaluate(policies, Dir::Ingress, to, &from, proto, port)
}

/// Whether pod `from` (on `from.network`) may send a flow to `to`.
pub fn egress(
    policies: &[PolicyDoc],
    from: &Endpoint,
    to: Peer,
    proto: Proto,
    port: Option<u16>,
) -> Decision {
    evaluate(policies, Dir::Egress, from, &to, proto, port)
}

// ------------------------------------------------------------------------- reading

/// One problem in a policy spec, as the API server reports it: the field path
/// (`spec.ingress[0].from[1].ipBlock.cidr`), the cause type (`FieldValueInvalid`,
/// `FieldValueRequired`, `FieldValueNotSupported`, `FieldValueForbidden`) and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    pub field: String,
    pub reason: &'static str,
    pub message: String,
}

impl std::fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

fn invalid(field: String, message: String) -> FieldProblem {
    FieldProblem {
        field,
        reason: "FieldValueInvalid",
        message,
    }
}

/// The port-number check of apimachinery `validation.IsValidPortNum`.
fn port_num(field: String, v: i32, out: &mut Vec<FieldProblem>) {
    if !(1..=65535).contains(&v) {
        out.push(invalid(
            field,
            format!("Invalid value: {v}: must be between 1 and 65535, inclusive"),
        ));
    }
}

/// apimachinery `validation.IsValidPortName`: an IANA_SVC_NAME (at most 15 lower-case
/// alphanumerics or '-', at least one letter, no '-' at either end nor `--`).
fn is_port_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.bytes().any(|b| b.is_ascii_lowercase())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

/// A CIDR as `netutils.ParseCIDRSloppy` reads it; the legacy-field check of
/// `IsValidCIDRForLegacyField` also refuses leading zeros, which `ipnet` does too.
fn parse_cidr(s: &str) -> Option<ipnet::IpNet> {
    s.parse::<ipnet::IpNet>().ok()
}

fn validate_ip_block(b: &IPBlock, at: &str, out: &mut Vec<FieldProblem>) {
    if b.cidr.is_empty() {
        out.push(FieldProblem {
            field: format!("{at}.cidr"),
            reason: "FieldValueRequired",
            message: "Required value".into(),
        });
        return;
    }
    let Some(net) = parse_cidr(&b.cidr) else {
        out.push(invalid(
            format!("{at}.cidr"),
            format!(
                "Invalid value: {:?}: must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
                b.cidr
            ),
        ));
        return;
    };
    for (i, e) in b.except.iter().flatten().enumerate() {
        let field = format!("{at}.except[{i}]");
        match parse_cidr(e) {
            None => out.push(invalid(
                field,
                format!(
                    "Invalid value: {e:?}: must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
                ),
            )),
            Some(ex) => {
                if !net.contains(&ex.network()) || net.prefix_len() >= ex.prefix_len() {
                    out.push(invalid(
                        field,
                        format!("Invalid value: {e:?}: must be a strict subset of `cidr`"),
                    ));
                }
            }
        }
    }
}

fn validate_selector(sel: &LabelSelector, at: &str, out: &mut Vec<FieldProblem>) {
    for (i, e) in sel.match_expressions.iter().flatten().enumerate() {
        let field = format!("{at}.matchExpressions[{i}]");
        let n = e.values.as_ref().map_or(0, Vec::len);
        match e.operator.as_str() {
            "In" | "NotIn" if n == 0 => out.push(FieldProblem {
                field: format!("{field}.values"),
                reason: "FieldValueRequired",
                message: "Required value: must be specified when `operator` is 'In' or 'NotIn'"
                    .into(),
            }),
            "Exists" | "DoesNotExist" if n > 0 => out.push(FieldProblem {
                field: format!("{field}.values"),
                reason: "FieldValueForbidden",
                message:
                    "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
                        .into(),
            }),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            op => out.push(FieldProblem {
                field: format!("{field}.operator"),
                reason: "FieldValueNotSupported",
                message: format!("Unsupported value: {op:?}: supported values: \"In\", \"NotIn\", \"Exists\", \"DoesNotExist\""),
            }),
        }
    }
}

fn validate_port(pp: &NetworkPolicyPort, at: &str, out: &mut Vec<FieldProblem>) {
    if let Some(p) = &pp.protocol {
        if !matches!(p.as_str(), "TCP" | "UDP" | "SCTP") {
            out.push(FieldProblem {
                field: format!("{at}.protocol"),
                reason: "FieldValueNotSupported",
                message: format!(
                    "Unsupported value: {p:?}: supported values: \"SCTP\", \"TCP\", \"UDP\""
                ),
            });
        }
    }
    match &pp.port {
        Some(IntOrString::Int(p)) => {
            port_num(format!("{at}.port"), *p, out);
            if let Some(e) = pp.end_port {
                if e < *p {
                    out.push(invalid(
                        format!("{at}.endPort"),
                        format!("Invalid value: {p}: must be greater than or equal to `port`"),
                    ));
                }
                port_num(format!("{at}.endPort"), e, out);
            }
        }
        Some(IntOrString::String(name)) => {
            if let Some(e) = pp.end_port {
                out.push(invalid(
                    format!("{at}.endPort"),
                    format!("Invalid value: {e}: may not be specified when `port` is non-numeric"),
                ));
            }
            if !is_port_name(name) {
                out.push(invalid(
                    format!("{at}.port"),
                    format!("Invalid value: {name:?}: must be a valid port name (IANA_SVC_NAME: at most 15 characters, lower-case alphanumerics and '-', at least one letter)"),
                ));
            }
        }
        None => {
            if let Some(e) = pp.end_port {
                out.push(invalid(
                    format!("{at}.endPort"),
                    format!(
                        "Invalid value: {e}: may not be specified when `port` is not specified"
                    ),
                ));
            }
        }
    }
}

fn validate_peer(peer: &NetworkPolicyPeer, at: &str, out: &mut Vec<FieldProblem>) {
    let mut n = 0;
    if let Some(s) = &peer.pod_selector {
        n += 1;
        validate_selector(s, &format!("{at}.podSelector"), out);
    }
    if let Some(s) = &peer.namespace_selector {
        n += 1;
        validate_selector(s, &format!("{at}.namespaceSelector"), out);
    }
    if let Some(b) = &peer.ip_block {
        n += 1;
        validate_ip_block(b, &format!("{at}.ipBlock"), out);
    }
    if n == 0 {
        out.push(FieldProblem {
            field: at.to_string(),
            reason: "FieldValueRequired",
            message: "Required value: must specify a peer".into(),
        });
    } else if n > 1 && peer.ip_block.is_some() {
        out.push(FieldProblem {
            field: at.to_string(),
            reason: "FieldValueForbidden",
            message: "Forbidden: may not specify both ipBlock and another peer".into(),
        });
    }
}

/// What the API server refuses in a NetworkPolicy spec, in its order (kubernetes
/// `pkg/apis/networking/validation/validation.go`: `ValidateNetworkPolicySpec`,
/// `ValidateNetworkPolicyPort`, `ValidateNetworkPolicyPeer`, `ValidateIPBlock`). Paths start
/// at `spec`.
pub fn validate(spec: &NetworkPolicySpec) -> Vec<FieldProblem> {
    let mut out = Vec::new();
    if let Some(s) = &spec.pod_selector {
        validate_selector(s, "spec.podSelector", &mut out);
    }
    for (i, r) in spec.ingress.iter().flatten().enumerate() {
        for (j, pp) in r.ports.iter().flatten().enumerate() {
            validate_port(pp, &format!("spec.ingress[{i}].ports[{j}]"), &mut out);
        }
        for (j, pe) in r.from.iter().flatten().enumerate() {
            validate_peer(pe, &format!("spec.ingress[{i}].from[{j}]"), &mut out);
        }
    }
    for (i, r) in spec.egress.iter().flatten().enumerate() {
        for (j, pp) in r.ports.iter().flatten().enumerate() {
            validate_port(pp, &format!("spec.egress[{i}].ports[{j}]"), &mut out);
        }
        for (j, pe) in r.to.iter().flatten().enumerate() {
            validate_peer(pe, &format!("spec.egress[{i}].to[{j}]"), &mut out);
        }
    }
    let types = spec.policy_types.as_deref().unwrap_or_default();
    if types.len() > 2 {
        out.push(invalid(
            "spec.policyTypes".into(),
            "may not specify more than two policyTypes".into(),
        ));
    } else {
        for (i, t) in types.iter().enumerate() {
            if t != "Ingress" && t != "Egress" {
                out.push(FieldProblem {
                    field: format!("spec.policyTypes[{i}]"),
                    reason: "FieldValueNotSupported",
                    message: format!(
                        "Unsupported value: {t:?}: supported values: \"Ingress\", \"Egress\""
                    ),
                });
            }
        }
    }
    out
}

/// The `endPort` fields of a spec (`spec.ingress[0].ports[1].endPort`): what a v1beta1
/// MultiNetworkPolicy does not have.
pub fn end_port_fields(spec: &NetworkPolicySpec) -> Vec<String> {
    let mut out = Vec::new();
    for (i, r) in spec.ingress.iter().flatten().enumerate() {
        for (j, pp) in r.ports.iter().flatten().enumerate() {
            if pp.end_port.is_some() {
                out.push(format!("spec.ingress[{i}].ports[{j}].endPort"));
            }
        }
    }
    for (i, r) in spec.egress.iter().flatten().enumerate() {
        for (j, pp) in r.ports.iter().flatten().enumerate() {
            if pp.end_port.is_some() {
                out.push(format!("spec.egress[{i}].ports[{j}].endPort"));
            }
        }
    }
    out
}

/// The NADs of a `policy-for` annotation value, each as `NAMESPACE/NAME` (a bare name in
/// `namespace`), blanks dropped.
pub fn parse_policy_for(value: &str, namespace: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            if s.contains('/') {
                s.to_string()
            } else {
                format!("{namespace}/{s}")
            }
        })
        .collect()
}

/// A policy object (JSON as the API serves it) as a [`PolicyDoc`]: `apiVersion`/`kind` must
/// be `networking.k8s.io/v1` `NetworkPolicy` or `k8s.cni.cncf.io/v1beta1|v1beta2`
/// `MultiNetworkPolicy`. `default_namespace` stands for a missing `metadata.namespace`.
/// Only the shape is checked here; see [`validate`].
pub fn policy_from_value(v: &Value, default_namespace: &str) -> Result<PolicyDoc, String> {
    let api_version = v.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or("");
    let name = v
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let namespace = v
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or(default_namespace)
        .to_string();
    let what = if name.is_empty() {
        kind.to_string()
    } else {
        format!("{kind} {namespace}/{name}")
    };
    let kind = match (api_version, kind) {
        ("networking.k8s.io/v1", "NetworkPolicy") => PolicyKind::NetworkPolicy,
        (av, "MultiNetworkPolicy") if av.starts_with(&format!("{MNP_GROUP}/")) => {
            let version = match &av[MNP_GROUP.len() + 1..] {
                "v1beta1" => MnpVersion::V1beta1,
                "v1beta2" => MnpVersion::V1beta2,
                other => {
                    return Err(format!(
                        "{what}: apiVersion {av:?} is not served (MultiNetworkPolicy is {MNP_GROUP}/v1beta1 or v1beta2; version {other:?})"
                    ))
                }
            };
            let pf = v
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(POLICY_FOR))
                .and_then(Value::as_str)
                .unwrap_or("");
            let policy_for = parse_policy_for(pf, &namespace);
            if policy_for.is_empty() {
                return Err(format!(
                    "{what}: a MultiNetworkPolicy needs the annotation {POLICY_FOR} naming its network(s)"
                ));
            }
            PolicyKind::MultiNetworkPolicy {
                version,
                policy_for,
            }
        }
        ("", _) => return Err(format!("{what}: no apiVersion")),
        (_, "") => return Err("a document has no kind".to_string()),
        (av, k) => {
            return Err(format!(
                "{what}: kind {k:?} ({av}) is not a policy: expected networking.k8s.io/v1 NetworkPolicy or {MNP_GROUP}/v1beta1|v1beta2 MultiNetworkPolicy"
            ))
        }
    };
    if name.is_empty() {
        return Err(format!("{what}: metadata.name is missing"));
    }
    let labels: BTreeMap<String, String> = match v.pointer("/metadata/labels") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(l) => serde_json::from_value(l.clone())
            .map_err(|e| format!("{what}: metadata.labels: {e}"))?,
    };
    let spec: NetworkPolicySpec = match v.get("spec") {
        None | Some(Value::Null) => NetworkPolicySpec::default(),
        Some(s) => serde_json::from_value(s.clone()).map_err(|e| format!("{what}: spec: {e}"))?,
    };
    Ok(PolicyDoc {
        kind,
        name,
        namespace,
        labels,
        spec,
    })
}

/// Reads every policy of a YAML (or JSON) file with one or more documents (`---`), and
/// `kind: List` documents' `items`. Errors name `file:line:column` (the YAML error's, or the
/// start of the document at fault) and refuse kinds other than NetworkPolicy and
/// MultiNetworkPolicy by name; specs the API server would refuse ([`validate`], and `endPort`
/// in a v1beta1 MultiNetworkPolicy) are errors too. A missing namespace is `default`.
pub fn read_policies(file: &str, text: &str) -> Result<Vec<PolicyDoc>, String> {
    let docs: Vec<serde_saphyr::Spanned<Value>> =
        serde_saphyr::from_multiple(text).map_err(|e| match e.location() {
            Some(l) => format!("{file}:{}:{}: {e}", l.line(), l.column()),
            None => format!("{file}: {e}"),
        })?;
    let mut out = Vec::new();
    for d in docs {
        let at = format!("{file}:{}:{}", d.referenced.line(), d.referenced.column());
        let items: Vec<&Value> = match &d.value {
            Value::Null => continue,
            v if v.get("kind").and_then(Value::as_str) == Some("List") => v
                .get("items")
                .and_then(Value::as_array)
                .map(|a| a.iter().collect())
                .unwrap_or_default(),
            v => vec![v],
        };
        for v in items {
            if !v.is_object() {
                return Err(format!("{at}: a document is not a mapping"));
            }
            let doc = policy_from_value(v, "default").map_err(|e| format!("{at}: {e}"))?;
            let mut problems: Vec<String> =
                validate(&doc.spec).iter().map(|p| p.to_string()).collect();
            if let PolicyKind::MultiNetworkPolicy {
                version: MnpVersion::V1beta1,
                ..
            } = doc.kind
            {
                problems.extend(
                    end_port_fields(&doc.spec).into_iter().map(|f| {
                        format!("{f}: v1beta1 has no endPort (use k8s.cni.cncf.io/v1beta2)")
                    }),
                );
            }
            if !problems.is_empty() {
                return Err(format!(
                    "{at}: {} is invalid: {}",
                    policy_label(&doc),
                    problems.join("; ")
                ));
            }
            out.push(doc);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn read(yaml: &str) -> Vec<PolicyDoc> {
        read_policies("t.yaml", yaml).expect("valid")
    }

    fn web() -> BTreeMap<String, String> {
        labels(&[("wavelift.io/vm", "web"), ("wavelift.io/plan", "p")])
    }

    fn allows(d: &Decision) -> Vec<String> {
        match &d.verdict {
            Verdict::Allow { by } => by.iter().map(ToString::to_string).collect(),
            v => panic!("expected allow, got {v:?}"),
        }
    }

    fn denies(d: &Decision) -> Vec<String> {
        match &d.verdict {
            Verdict::Deny { by } => by.clone(),
            v => panic!("expected deny, got {v:?}"),
        }
    }

    const DENY_ALL: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: mig}\nspec:\n  podSelector: {}\n  policyTypes: [Ingress]\n";

    #[test]
    fn no_selecting_policy_is_not_isolated() {
        let pols = read(DENY_ALL);
        let l = web();
        // Other namespace: the policy does not select the pod.
        let pod = Endpoint::new("other", &l);
        let d = ingress(&pols, &pod, ip("10.0.0.1").into(), Proto::Tcp, Some(80));
        assert_eq!(d.verdict, Verdict::NotIsolated);
        let pod = Endpoint::new("mig", &l);
        let d = ingress(&pols, &pod, ip("10.0.0.1").into(), Proto::Tcp, Some(80));
        assert_eq!(denies(&d), vec!["NetworkPolicy mig/deny"]);
        // Egress is not isolated by an Ingress-only policy.
        let d = egress(&pols, &pod, ip("10.0.0.1").into(), Proto::Tcp, Some(80));
        assert_eq!(d.verdict, Verdict::NotIsolated);
    }

    #[test]
    fn union_of_allows_across_policies() {
        let pols = read(&format!(
            "{DENY_ALL}---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: web, namespace: mig}}\nspec:\n  podSelector: {{matchLabels: {{wavelift.io/vm: web}}}}\n  ingress:\n  - from: [{{ipBlock: {{cidr: 10.0.0.0/8}}}}]\n    ports: [{{port: 443}}]\n  - ports: [{{port: 22}}]\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: ops, namespace: mig}}\nspec:\n  podSelector: {{matchExpressions: [{{key: wavelift.io/plan, operator: In, values: [p]}}]}}\n  ingress:\n  - from: [{{ipBlock: {{cidr: 10.1.0.0/16}}}}]\n"
        ));
        let l = web();
        let pod = Endpoint::new("mig", &l);
        let d = ingress(&pols, &pod, ip("10.0.0.1").into(), Proto::Tcp, Some(443));
        assert_eq!(allows(&d), vec!["NetworkPolicy mig/web ingress[0]"]);
        let d = ingress(&pols, &pod, ip("10.1.2.3").into(), Proto::Tcp, Some(443));
        assert_eq!(
            allows(&d),
            vec![
                "NetworkPolicy mig/web ingress[0]",
                "NetworkPolicy mig/ops ingress[0]"
            ]
        );
        // No `from`: any source, on that port only.
        let d = ingress(&pols, &pod, ip("192.0.2.9").into(), Proto::Tcp, Some(22));
        assert_eq!(allows(&d), vec!["NetworkPolicy mig/web ingress[1]"]);
        let d = ingress(&pols, &pod, ip("192.0.2.9").into(), Proto::Tcp, Some(80));
        assert_eq!(
            denies(&d),
            vec![
                "NetworkPolicy mig/deny",
                "NetworkPolicy mig/web",
                "NetworkPolicy mig/ops"
            ]
        );
        // No `ports`: every protocol (ICMP too).
        let d = ingress(&pols, &pod, ip("10.1.0.1").into(), Proto::Icmp, None);
        assert_eq!(allows(&d), vec!["NetworkPolicy mig/ops ingress[0]"]);
        let d = ingress(&pols, &pod, ip("10.0.0.1").into(), Proto::Udp, Some(443));
        assert!(
            matches!(d.verdict, Verdict::Deny { .. }),
            "TCP is the default protocol"
        );
    }

    #[test]
    fn ip_block_except_and_families() {
        let pols = read("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: a, namespace: mig}\nspec:\n  podSelector: {}\n  ingress:\n  - from:\n    - ipBlock: {cidr: 172.17.0.0/16, except: [172.17.1.0/24]}\n");
        let l = web();
        let pod = Endpoint::new("mig", &l);
        let ok = |a: &str| {
            ingress(&pols, &pod, ip(a).into(), Proto::Tcp, Some(1))
                .verdict
                .allowed()
        };
        assert!(ok("172.17.0.5"));
        assert!(!ok("172.17.1.5"));
        assert!(!ok("172.18.0.1"));
        assert!(!ok("::1"));
    }

    #[test]
    fn empty_from_list_and_empty_rule_admit_everything() {
        let pols = read("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: all, namespace: mig}\nspec:\n  podSelector: {}\n  ingress:\n  - {}\n");
        let l = web();
        let pod = Endpoint::new("mig", &l);
        let d = ingress(
            &pols,
            &pod,
            IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8)).into(),
            Proto::Sctp,
            Some(9),
        );
        assert_eq!(allows(&d), vec!["NetworkPolicy mig/all ingress[0]"]);
        let d = ingress(&pols, &pod, ip("8.8.8.8").into(), Proto::Icmp, None);
        assert!(d.verdict.allowed());
    }

    #[test]
    fn end_port_ranges_and_named_ports() {
        let pols = read("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: r, namespace: mig}\nspec:\n  podSelector: {}\n  ingress:\n  - ports: [{port: 8000, endPort: 8010, protocol: UDP}, {port: http}]\n");
        let l = web();
        let pod = Endpoint::new("mig", &l);
        let at = |p: u16| ingress(&pols, &pod, ip("1.2.3.4").into(), Proto::Udp, Some(p));
        assert!(at(8000).verdict.allowed());
        assert!(at(8010).verdict.allowed());
        assert!(!at(8011).verdict.allowed());
        assert!(!at(7999).verdict.allowed());
        let d = ingress(&pols, &pod, ip("1.2.3.4").into(), Proto::Tcp, Some(80));
        assert!(!d.verdict.allowed());
        assert!(d.notes[0].contains("named port \"http\""), "{:?}", d.notes);
    }

    #[test]
    fn policy_types_default() {
        // Egress rules and no policyTypes: both directions isolated.
        let pols = read("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: e, namespace: mig}\nspec:\n  podSelector: {}\n  egress:\n  - to: [{ipBlock: {cidr: 10.0.0.0/8}}]\n");
        let l = web();
        let pod = Endpoint::new("mig", &l);
        assert_eq!(policy_types(&pols[0].spec), (true, true));
        let d = egress(&pols, &pod, ip("10.0.0.1").into(), Proto::Tcp, Some(53));
        assert_eq!(allows(&d), vec!["NetworkPolicy mig/e egress[0]"]);
        let d = egress(&pols, &pod, ip("11.0.0.1").into(), Proto::Tcp, Some(53));
        assert_eq!(denies(&d), vec!["NetworkPolicy mig/e"]);
        let d = ingress(&pols, &pod, ip("10.0.0.1").into(), Proto::Tcp, Some(53));
        assert_eq!(
            denies(&d),
            vec!["NetworkPolicy mig/e"],
            "Ingress is always implied"
        );
        // Explicit Egress only: ingress not isolated.
        let pols = read("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: e, namespace: mig}\nspec:\n  podSelector: {}\n  policyTypes: [Egress]\n");
        let d = ingress(&pols, &pod, ip("10.0.0.1").into(), Proto::Tcp, Some(53));
        assert_eq!(d.verdict, Verdict::NotIsolated);
        let d = egress(&pols, &pod, ip("10.0.0.1").into(), Proto::Tcp, Some(53));
        assert_eq!(denies(&d), vec!["NetworkPolicy mig/e"]);
    }

    #[test]
    fn pod_and_namespace_selector_peers() {
        let pols = read("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: s, namespace: mig}\nspec:\n  podSelector: {}\n  ingress:\n  - from:\n    - podSelector: {matchLabels: {role: fe}}\n  - from:\n    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: mon}}\n      podSelector: {matchLabels: {app: prom}}\n");
        let l = web();
        let pod = Endpoint::new("mig", &l);
        let fe = labels(&[("role", "fe")]);
        let prom = labels(&[("app", "prom")]);
        let src = |ns: &'static str, l: &'static BTreeMap<String, String>| Peer {
            ip: ip("10.0.0.9"),
            pod: Some(Endpoint::new(ns, l)),
        };
        let fe: &'static _ = Box::leak(Box::new(fe));
        let prom: &'static _ = Box::leak(Box::new(prom));
        let at = |p: Peer| ingress(&pols, &pod, p, Proto::Tcp, Some(1)).verdict;
        assert_eq!(
            at(src("mig", fe)),
            Verdict::Allow {
                by: vec![RuleRef {
                    policy: "NetworkPolicy mig/s".into(),
                    field: "ingress",
                    index: 0
                }]
            }
        );
        assert!(
            !at(src("other", fe)).allowed(),
            "podSelector alone: own namespace"
        );
        assert!(at(src("mon", prom)).allowed());
        assert!(!at(src("mig", prom)).allowed());
        // A bare address is no pod.
        assert!(!at(ip("10.0.0.9").into()).allowed());
    }

    #[test]
    fn multi_network_policy_applies_to_its_networks_only() {
        let pols = read("apiVersion: k8s.cni.cncf.io/v1beta2\nkind: MultiNetworkPolicy\nmetadata:\n  name: web\n  namespace: mig\n  annotations: {k8s.v1.cni.cncf.io/policy-for: vlan-210}\nspec:\n  podSelector: {matchLabels: {wavelift.io/vm: web}}\n  ingress:\n  - from: [{ipBlock: {cidr: 192.0.2.0/24}}]\n    ports: [{port: 8000, endPort: 8080}]\n");
        assert_eq!(
            pols[0].kind,
            PolicyKind::MultiNetworkPolicy {
                version: MnpVersion::V1beta2,
                policy_for: vec!["mig/vlan-210".into()]
            }
        );
        let l = web();
        let on = |net| Endpoint::new("mig", &l).on_network(net);
        let d = ingress(
            &pols,
            &on(Some("mig/vlan-210")),
            ip("192.0.2.1").into(),
            Proto::Tcp,
            Some(8080),
        );
        assert_eq!(allows(&d), vec!["MultiNetworkPolicy mig/web ingress[0]"]);
        let d = ingress(
            &pols,
            &on(Some("mig/vlan-210")),
            ip("198.51.100.254").into(),
            Proto::Tcp,
            Some(8080),
        );
        assert_eq!(denies(&d), vec!["MultiNetworkPolicy mig/web"]);
        // Another NAD, and the pod network: not governed by it.
        let d = ingress(
            &pols,
            &on(Some("mig/vlan-220")),
            ip("198.51.100.254").into(),
            Proto::Tcp,
            Some(1),
        );
        assert_eq!(d.verdict, Verdict::NotIsolated);
        let d = ingress(
            &pols,
            &on(None),
            ip("198.51.100.254").into(),
            Proto::Tcp,
            Some(1),
        );
        assert_eq!(d.verdict, Verdict::NotIsolated);
        // A NetworkPolicy does not govern a secondary network.
        let np = read(DENY_ALL);
        let d = ingress(
            &np,
            &on(Some("mig/vlan-210")),
            ip("1.1.1.1").into(),
            Proto::Tcp,
            Some(1),
        );
        assert_eq!(d.verdict, Verdict::NotIsolated);
        assert_eq!(
            parse_policy_for("a, other/b,", "ns"),
            vec!["ns/a", "other/b"]
        );
    }

    #[test]
    fn reader_errors() {
        let e = read_policies("f.yaml", "kind: NetworkPolicy\n  bad: [\n").unwrap_err();
        assert!(e.starts_with("f.yaml:"), "{e}");
        let e = read_policies(
            "f.yaml",
            "apiVersion: v1\nkind: Service\nmetadata: {name: x}\n",
        )
        .unwrap_err();
        assert!(e.contains("kind \"Service\""), "{e}");
        assert!(e.starts_with("f.yaml:1:1"), "{e}");
        let e = read_policies("f.yaml", "apiVersion: k8s.cni.cncf.io/v1beta1\nkind: MultiNetworkPolicy\nmetadata: {name: x, annotations: {k8s.v1.cni.cncf.io/policy-for: net1}}\nspec:\n  ingress: [{ports: [{port: 1, endPort: 2}]}]\n").unwrap_err();
        assert!(
            e.contains("spec.ingress[0].ports[0].endPort: v1beta1 has no endPort"),
            "{e}"
        );
        let e = read_policies("f.yaml", "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x}\nspec:\n  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8, except: [11.0.0.0/16]}}], ports: [{port: 9, endPort: 8}]}]\n").unwrap_err();
        assert!(e.contains("spec.ingress[0].from[0].ipBlock.except[0]: Invalid value: \"11.0.0.0/16\": must be a strict subset"), "{e}");
        assert!(e.contains("spec.ingress[0].ports[0].endPort"), "{e}");
        let e = read_policies("f.yaml", "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: why}\nspec: {ingress: [{from: [{ipBlock: {cidr: 10.0.0.300/8}}]}]}\n").unwrap_err();
        assert!(e.starts_with("f.yaml:5:"), "{e}");
        assert!(e.contains("must be a valid CIDR"), "{e}");
        // JSON is YAML; Lists are unwrapped.
        let pols = read_policies("f.json", r#"{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"x","namespace":"n"},"spec":{}}]}"#).expect("json");
        assert_eq!(pols[0].namespace, "n");
    }
}

//! `wavelift policy test`: would this flow reach the VM under these policies? Offline, with
//! Kubernetes semantics ([`crate::policy::eval`]).
//!
//! The target is the VM's (virt-launcher) pod, which carries wavelift's labels
//! (`wavelift.io/vm=NAME`, and `wavelift.io/plan`, `wavelift.io/wave`,
//! `app.kubernetes.io/managed-by`: [`crate::cluster::labels`]). The file says nothing else
//! about the pod, so:
//!
//! - **Namespace**: the namespace of the policies whose `podSelector` names the VM
//!   (`matchLabels` `wavelift.io/vm: NAME`, or an `In` expression with NAME); when none names
//!   it, the namespace all the file's policies share. Policies naming the VM in several
//!   namespaces, or no VM-naming policy and several namespaces, are invalid input (exit 2).
//! - **Labels**: `wavelift.io/vm=NAME`, plus each other wavelift label with the value the
//!   VM-naming policies' selectors give it (else the value any policy of that namespace
//!   selects with `matchLabels`): a policy that selects the VM's pods by any subset of
//!   wavelift's labels selects the pod, and one that selects another VM does not.
//! - **Network**: a MultiNetworkPolicy governs the NADs of its `policy-for` annotation, a
//!   NetworkPolicy the pod network. The flow is evaluated on every network a policy of the
//!   namespace names (one line each when there are several), and is allowed when it is
//!   allowed on each.
//!
//! Output: `allow` and every rule that allows the flow, `deny` and the policies whose
//! default deny applies, or `allow (not isolated: no policy selects NAME)`; exit 0 allow,
//! 1 deny, 2 invalid input.

use super::PolicyTestArgs;
use crate::cluster::labels;
use crate::policy::eval::{self, Endpoint, Verdict};
use crate::policy::k8s::{PolicyDoc, PolicyKind};
use crate::policy::rules::Proto;
use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

/// A policy file larger than this is refused (a drafted file for a whole plan is far smaller).
const POLICY_FILE_MAX: u64 = 16 * 1024 * 1024;

/// The exit code for a denied flow.
const EXIT_DENY: u8 = 1;

/// `N`, `N/tcp`, `N/udp`, `N/sctp` (case-insensitive; default TCP).
pub fn parse_port(s: &str) -> Result<(u16, Proto), String> {
    let (num, proto) = match s.split_once('/') {
        Some((n, p)) => (n, p),
        None => (s, "tcp"),
    };
    let proto = match proto.to_ascii_lowercase().as_str() {
        "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        "sctp" => Proto::Sctp,
        other => {
            return Err(format!(
                "--port {s:?}: unknown protocol {other:?} (tcp, udp or sctp)"
            ))
        }
    };
    match num.trim().parse::<u16>() {
        Ok(n) if n > 0 => Ok((n, proto)),
        _ => Err(format!(
            "--port {s:?}: the port is a number from 1 to 65535"
        )),
    }
}

fn proto_str(p: Proto) -> &'static str {
    match p {
        Proto::Udp => "udp",
        Proto::Sctp => "sctp",
        _ => "tcp",
    }
}

/// The values a selector requires for `key` (`matchLabels`, or a one-value `In`).
fn selected_value(p: &PolicyDoc, key: &str) -> Vec<String> {
    let Some(sel) = &p.spec.pod_selector else {
        return Vec::new();
    };
    let mut out: Vec<String> = sel
        .match_labels
        .iter()
        .flatten()
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| v.clone())
        .collect();
    for e in sel.match_expressions.iter().flatten() {
        if e.key == key && e.operator == "In" {
            out.extend(e.values.iter().flatten().cloned());
        }
    }
    out
}

/// The VM's pod as the policies imply it: its namespace and labels (see the module doc).
pub fn target_pod(
    policies: &[PolicyDoc],
    vm: &str,
) -> Result<(String, BTreeMap<String, String>), String> {
    let naming: Vec<&PolicyDoc> = policies
        .iter()
        .filter(|p| selected_value(p, labels::VM).iter().any(|v| v == vm))
        .collect();
    let namespaces = |ps: &[&PolicyDoc]| -> BTreeSet<String> {
        ps.iter().map(|p| p.namespace.clone()).collect()
    };
    let all: Vec<&PolicyDoc> = policies.iter().collect();
    let ns_set = if naming.is_empty() {
        namespaces(&all)
    } else {
        namespaces(&naming)
    };
    let ns = match ns_set.len() {
        0 => return Err("the file has no policy".into()),
        1 => ns_set.into_iter().next().unwrap_or_default(),
        _ => {
            return Err(format!(
                "{} in several namespaces ({}): cannot tell which namespace {vm}'s pod is in; test one namespace's policies at a time",
                if naming.is_empty() { "policies" } else { "policies naming the VM" },
                ns_set.into_iter().collect::<Vec<_>>().join(", ")
            ))
        }
    };
    let mut pod_labels = BTreeMap::from([(labels::VM.to_string(), vm.to_string())]);
    for key in [labels::PLAN, labels::WAVE, labels::MANAGED_BY] {
        let from = |ps: &[&PolicyDoc]| {
            ps.iter()
                .filter(|p| p.namespace == ns)
                .flat_map(|p| selected_value(p, key))
                .next()
        };
        if let Some(v) = from(&naming).or_else(|| from(&all)) {
            pod_labels.insert(key.to_string(), v);
        }
    }
    Ok((ns, pod_labels))
}

/// Every network the namespace's policies govern: `None` = the pod network.
fn networks(policies: &[PolicyDoc], ns: &str) -> BTreeSet<Option<String>> {
    let mut out = BTreeSet::new();
    for p in policies.iter().filter(|p| p.namespace == ns) {
        match &p.kind {
            PolicyKind::NetworkPolicy => {
                out.insert(None);
            }
            PolicyKind::MultiNetworkPolicy { policy_for, .. } => {
                out.extend(policy_for.iter().cloned().map(Some));
            }
        }
    }
    out
}

/// The report and exit code for a flow (the command without its file reading).
pub fn evaluate(
    policies: &[PolicyDoc],
    vm: &str,
    from: std::net::IpAddr,
    port: u16,
    proto: Proto,
) -> Result<(String, u8), String> {
    let (ns, pod_labels) = target_pod(policies, vm)?;
    let nets = networks(policies, &ns);
    let mut out = String::new();
    let mut results = Vec::new();
    for net in &nets {
        let to = Endpoint::new(&ns, &pod_labels).on_network(net.as_deref());
        let d = eval::ingress(policies, &to, from.into(), proto, Some(port));
        results.push((net.clone(), d));
    }
    let isolated: Vec<_> = results
        .iter()
        .filter(|(_, d)| d.verdict != Verdict::NotIsolated)
        .collect();
    let flow = format!("{from} -> {vm} {port}/{}", proto_str(proto));
    if isolated.is_empty() {
        out.push_str(&format!(
            "allow (not isolated: no policy selects {vm})\n  flow: {flow}; pod: namespace {ns}, labels {}\n",
            fmt_labels(&pod_labels)
        ));
        return Ok((out, super::EXIT_OK));
    }
    let several = isolated.len() > 1;
    let mut denied = false;
    for (net, d) in isolated {
        let on = match net {
            Some(n) => format!("network {n}"),
            None => "the pod network".to_string(),
        };
        let prefix = if several {
            format!("{on}: ")
        } else {
            String::new()
        };
        match &d.verdict {
            Verdict::Allow { by } => {
                out.push_str(&format!("{prefix}allow ({flow} on {on})\n"));
                for b in by {
                    out.push_str(&format!("  allowed by {b}\n"));
                }
            }
            Verdict::Deny { by } => {
                denied = true;
                out.push_str(&format!(
                    "{prefix}deny ({flow} on {on}): no ingress rule admits it\n"
                ));
                for b in by {
                    out.push_str(&format!("  default deny of {b}\n"));
                }
            }
            Verdict::NotIsolated => {}
        }
        for n in &d.notes {
            out.push_str(&format!("  note: {n}\n"));
        }
    }
    Ok((out, if denied { EXIT_DENY } else { super::EXIT_OK }))
}

fn fmt_labels(l: &BTreeMap<String, String>) -> String {
    l.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

pub fn run(args: PolicyTestArgs) -> ExitCode {
    let invalid = |msg: String| {
        eprintln!("error: {msg}");
        ExitCode::from(super::EXIT_INVALID)
    };
    let (port, proto) = match parse_port(&args.port) {
        Ok(p) => p,
        Err(e) => return invalid(e),
    };
    let text =
        match crate::fsio::read_bounded_string(&args.policy, POLICY_FILE_MAX, "the policy file") {
            Ok(t) => t,
            Err(e) => return invalid(e.to_string()),
        };
    let shown = args.policy.display().to_string();
    let policies = match eval::read_policies(&shown, &text) {
        Ok(p) => p,
        Err(e) => return invalid(e),
    };
    match evaluate(&policies, &args.vm, args.from, port, proto) {
        Ok((report, code)) => {
            print!("{report}");
            ExitCode::from(code)
        }
        Err(e) => invalid(format!("{shown}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MNP: &str = "apiVersion: k8s.cni.cncf.io/v1beta2\nkind: MultiNetworkPolicy\nmetadata:\n  name: web-01\n  namespace: mig\n  annotations: {k8s.v1.cni.cncf.io/policy-for: vlan-210}\nspec:\n  podSelector: {matchLabels: {wavelift.io/plan: shop, wavelift.io/vm: web-01}}\n  ingress:\n  - from: [{ipBlock: {cidr: 192.0.2.0/24}}]\n    ports: [{port: 443}]\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: plan-wide, namespace: mig}\nspec:\n  podSelector: {matchLabels: {wavelift.io/plan: shop}}\n  ingress: [{ports: [{port: 22}]}]\n";

    #[test]
    fn ports() {
        assert_eq!(parse_port("80"), Ok((80, Proto::Tcp)));
        assert_eq!(parse_port("53/UDP"), Ok((53, Proto::Udp)));
        assert_eq!(parse_port("9/sctp"), Ok((9, Proto::Sctp)));
        assert!(parse_port("0").is_err());
        assert!(parse_port("80/icmp").is_err());
        assert!(parse_port("http").is_err());
    }

    #[test]
    fn the_pod_takes_namespace_and_labels_from_the_policies() {
        let pols = eval::read_policies("t", MNP).expect("valid");
        let (ns, l) = target_pod(&pols, "web-01").expect("pod");
        assert_eq!(ns, "mig");
        assert_eq!(l.get(labels::PLAN).map(String::as_str), Some("shop"));
        let (r, code) = evaluate(
            &pols,
            "web-01",
            "192.0.2.7".parse().unwrap(),
            443,
            Proto::Tcp,
        )
        .expect("ok");
        assert_eq!(
            code, 1,
            "allowed on vlan-210, denied on the pod network: {r}"
        );
        assert!(r.contains("network mig/vlan-210: allow"), "{r}");
        assert!(
            r.contains("allowed by MultiNetworkPolicy mig/web-01 ingress[0]"),
            "{r}"
        );
        assert!(r.contains("the pod network: deny"), "{r}");
        assert!(
            r.contains("default deny of NetworkPolicy mig/plan-wide"),
            "{r}"
        );
        // Another VM of the plan: the VM policy does not select it.
        let (r, _) =
            evaluate(&pols, "db-01", "192.0.2.7".parse().unwrap(), 22, Proto::Tcp).expect("ok");
        assert!(
            r.starts_with("allow (192.0.2.7 -> db-01 22/tcp on the pod network)"),
            "{r}"
        );
    }
}

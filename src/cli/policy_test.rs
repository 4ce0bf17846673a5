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
//! Output: `allow` and every rule that allows the flow, each with the comment written above
//! it in the file when there is one (`policy draft` writes the firewall rule it comes from:
//! `# from fw/edge.iptables:7 rule web-in (owner shop)`), or `deny` and the policies whose
//! default deny applies; exit 0 allow, 1 deny, 2 invalid input. A VM no policy of the file
//! selects is invalid input (exit 2), naming the VMs the file does select: a mistyped name
//! must not read as "not isolated".

use super::PolicyTestArgs;
use crate::cluster::labels;
use crate::policy::eval::{self, Endpoint, RuleRef, Verdict};
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

/// The comment lines written directly above each rule of a policy file (`# from …` and its
/// `#   except …` lines, as `policy draft` writes them), by policy label and rule.
#[derive(Debug, Default)]
pub struct RuleComments {
    by_rule: BTreeMap<(String, &'static str, usize), Vec<String>>,
}

impl RuleComments {
    /// Reads the comments of `text`, whose policies (in document order) are `policies`.
    /// The documents are matched to the policies by position; when their numbers differ
    /// (e.g. a `List` document), no comment is kept.
    pub fn read(text: &str, policies: &[PolicyDoc]) -> RuleComments {
        let docs = comments_by_document(text);
        let mut out = RuleComments::default();
        if docs.len() != policies.len() {
            return out;
        }
        for (p, d) in policies.iter().zip(docs) {
            let label = eval::policy_label(p);
            for ((field, index), c) in d {
                out.by_rule.insert((label.clone(), field, index), c);
            }
        }
        out
    }

    fn of(&self, r: &RuleRef) -> &[String] {
        self.by_rule
            .get(&(r.policy.clone(), r.field, r.index))
            .map_or(&[], Vec::as_slice)
    }
}

type DocComments = BTreeMap<(&'static str, usize), Vec<String>>;

/// Per YAML document with content: the comments directly above each item of its block
/// `ingress:` / `egress:` lists.
fn comments_by_document(text: &str) -> Vec<DocComments> {
    let mut docs: Vec<DocComments> = Vec::new();
    let mut cur = DocComments::new();
    let mut content = false;
    // (field, indentation of the key, indentation of its items once seen, next index)
    let mut section: Option<(&'static str, usize, Option<usize>, usize)> = None;
    let mut pending: Vec<String> = Vec::new();
    for raw in text.lines() {
        let line = raw.trim_end();
        if line == "---" || line.starts_with("--- ") {
            if content {
                docs.push(std::mem::take(&mut cur));
            }
            cur.clear();
            content = false;
            section = None;
            pending.clear();
            continue;
        }
        let t = line.trim_start();
        if t.is_empty() {
            continue;
        }
        let ind = line.len() - t.len();
        if let Some(c) = t.strip_prefix('#') {
            if section.is_some() {
                pending.push(c.trim().to_string());
            }
            continue;
        }
        content = true;
        if let Some((field, key_ind, item_ind, next)) = section.as_mut() {
            let is_item = t == "-" || t.starts_with("- ");
            let at_items = match item_ind {
                Some(i) => *i == ind,
                None => is_item && ind >= *key_ind,
            };
            if is_item && at_items {
                *item_ind = Some(ind);
                if !pending.is_empty() {
                    cur.insert((*field, *next), std::mem::take(&mut pending));
                }
                *next += 1;
                continue;
            }
            pending.clear();
            if ind > item_ind.unwrap_or(*key_ind) {
                continue;
            }
            section = None;
        }
        for field in ["ingress", "egress"] {
            if t.strip_prefix(field) == Some(":") {
                section = Some((field, ind, None, 0));
            }
        }
    }
    if content {
        docs.push(cur);
    }
    docs
}

/// The VMs the file's policies name in their selectors (`wavelift.io/vm`).
fn selected_vms(policies: &[PolicyDoc]) -> Vec<String> {
    let set: BTreeSet<String> = policies
        .iter()
        .flat_map(|p| selected_value(p, labels::VM))
        .collect();
    set.into_iter().collect()
}

/// The report and exit code for a flow (the command without its file reading).
pub fn evaluate(
    policies: &[PolicyDoc],
    comments: &RuleComments,
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
        let named = selected_vms(policies);
        return Err(format!(
            "no policy in the file selects {vm} (pod: namespace {ns}, labels {}); {}",
            fmt_labels(&pod_labels),
            if named.is_empty() {
                "the file names no VM (`wavelift.io/vm`) in its selectors".to_string()
            } else {
                format!("the file selects: {}", named.join(", "))
            }
        ));
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
                    match comments.of(b) {
                        [] => out.push_str(&format!("  allowed by {b}\n")),
                        [first, rest @ ..] => {
                            out.push_str(&format!("  allowed by {b}: {first}\n"));
                            for c in rest {
                                out.push_str(&format!("    {c}\n"));
                            }
                        }
                    }
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
    let comments = RuleComments::read(&text, &policies);
    match evaluate(&policies, &comments, &args.vm, args.from, port, proto) {
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
        let none = RuleComments::default();
        let (r, code) = evaluate(
            &pols,
            &none,
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
        let (r, _) = evaluate(
            &pols,
            &none,
            "db-01",
            "192.0.2.7".parse().unwrap(),
            22,
            Proto::Tcp,
        )
        .expect("ok");
        assert!(
            r.starts_with("allow (192.0.2.7 -> db-01 22/tcp on the pod network)"),
            "{r}"
        );
    }

    #[test]
    fn comments_attach_to_the_rule_below_them_in_each_document() {
        let text = "# header, not a rule\napiVersion: v1\nspec:\n  ingress:\n  # from fw/a:1 rule x\n  #   except what fw/a:0 denies first\n  - from:\n    # inside a rule: not its comment\n    - ipBlock: {cidr: 10.0.0.0/8}\n  - ports: [{port: 1}]\n  # from fw/a:3\n  - {}\n  egress:\n    # from fw/b:9\n    - to: []\n---\n---\nspec:\n  ingress: []\n";
        let docs = comments_by_document(text);
        assert_eq!(docs.len(), 2, "the empty document is not one");
        assert_eq!(
            docs[0],
            BTreeMap::from([
                (
                    ("ingress", 0),
                    vec![
                        "from fw/a:1 rule x".to_string(),
                        "except what fw/a:0 denies first".to_string()
                    ]
                ),
                (("ingress", 2), vec!["from fw/a:3".to_string()]),
                (("egress", 0), vec!["from fw/b:9".to_string()]),
            ])
        );
        assert!(docs[1].is_empty());
    }
}

//! The plan's network policies for `run` and `tui` (`[plan] policy = "draft" | "apply"`,
//! issue 17): the firewall exports of `policy_sources` are read before any cluster is
//! contacted (an unreadable source is an invalid plan, exit 2); once connected, the
//! MultiNetworkPolicy version the cluster serves is discovered (v1beta2 when served: only it
//! has `endPort`), each VM's policy is drafted, and the engine gets the objects to apply and
//! the TUI what to show: the rules, which rule admits each check's probe, and which rules
//! drafted from the firewall admit each check's service for the VM's real clients.

use crate::plan::check::CheckKind;
use crate::plan::{ChecksFrom, Plan, PolicyMode};
use crate::policy::draft::{
    self, sources::Exports, DraftOptions, Provenance, VmDraft, VmInput, VmNetwork,
};
use crate::policy::eval::{self, Endpoint, Verdict};
use crate::policy::k8s::{MnpVersion, PolicyDoc, PolicyKind, MNP_GROUP};
use crate::policy::rules::Proto;
use crate::tui::policy::{PolicyData, ServiceRules, VmPolicy};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The drafted policies: per VM the objects to apply, and what the TUI shows.
#[derive(Debug, Default)]
pub(crate) struct Drafted {
    pub docs: BTreeMap<String, Vec<PolicyDoc>>,
    pub view: PolicyData,
    /// Warnings over every VM (for a headless run's output).
    pub warnings: Vec<String>,
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Reads the plan's firewall exports; `Ok(None)` with `policy = "off"`. Paths are relative
/// to the plan file. A source that does not exist, or sources holding no firewall export,
/// are errors.
pub(crate) fn read_exports(plan: &Plan, plan_path: &Path) -> Result<Option<Exports>, String> {
    if plan.meta.policy.value == PolicyMode::Off {
        return Ok(None);
    }
    let base = plan_path.parent().unwrap_or_else(|| Path::new("."));
    let mut roots: Vec<PathBuf> = Vec::new();
    for s in &plan.meta.policy_sources {
        let p = base.join(&s.value);
        if !p.exists() {
            return Err(format!(
                "policy_sources: `{}` ({}) does not exist",
                s.value,
                p.display()
            ));
        }
        roots.push(p);
    }
    let exports = draft::sources::read_exports(&roots, threads());
    if exports.sets.is_empty() {
        return Err(format!(
            "policy_sources: no firewall export among the {} file(s) of {}",
            exports.files,
            plan.meta
                .policy_sources
                .iter()
                .map(|s| s.value.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(Some(exports))
}

/// The MultiNetworkPolicy version the cluster serves (`None`: none; the group's versions
/// are read from discovery, nothing is written).
pub(crate) async fn served_mnp(client: &kube::Client) -> Option<MnpVersion> {
    let group = kube::discovery::group(client, MNP_GROUP).await.ok()?;
    let served: Vec<String> = group.versions().map(str::to_string).collect();
    let has = |v: MnpVersion| {
        served.iter().any(|s| s == v.as_str())
            && group
                .versioned_resources(v.as_str())
                .iter()
                .any(|(r, _)| r.kind == "MultiNetworkPolicy")
    };
    if has(MnpVersion::V1beta2) {
        Some(MnpVersion::V1beta2)
    } else if has(MnpVersion::V1beta1) {
        Some(MnpVersion::V1beta1)
    } else {
        None
    }
}

/// `apply` with L2 VMs on a cluster that serves no MultiNetworkPolicy cannot work: refused
/// before anything is touched.
pub(crate) fn refuse_unserved(plan: &Plan, served: Option<MnpVersion>) -> Result<(), String> {
    let l2 = plan
        .vms
        .iter()
        .any(|vm| plan.model_of(vm) == crate::plan::NetworkModel::L2);
    if plan.meta.policy.value == PolicyMode::Apply && l2 && served.is_none() {
        return Err(format!(
            "`policy = \"apply\"`: the cluster serves no MultiNetworkPolicy ({MNP_GROUP} v1beta1 or v1beta2), which L2 VMs need; install the multi-networkpolicy CRD and an implementation on the nodes, or use `policy = \"draft\"`; nothing was changed"
        ));
    }
    Ok(())
}

/// The service a check's probe uses towards the VM (`None`: the check sends nothing to the
/// VM's address, e.g. `ip-preserved` reads the guest agent, `dns` asks a resolver).
fn check_service(kind: &CheckKind) -> Option<(Proto, Option<u16>)> {
    match kind {
        CheckKind::Icmp => Some((Proto::Icmp, None)),
        CheckKind::Tcp { port } => Some((Proto::Tcp, Some(*port))),
        CheckKind::Http { url } => {
            let https = url.starts_with("https");
            let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
            let host = rest.split(['/', '?']).next().unwrap_or("");
            let port = host
                .rsplit_once(':')
                .filter(|(h, _)| !h.ends_with(']') || host.starts_with('['))
                .and_then(|(_, p)| p.parse().ok())
                .unwrap_or(if https { 443 } else { 80 });
            Some((Proto::Tcp, Some(port)))
        }
        _ => None,
    }
}

/// `tcp/5432`, `icmp`: a check's service as the rule lines spell ports.
fn service_name(proto: Proto, port: Option<u16>) -> String {
    let p = match proto {
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
        Proto::Sctp => "sctp",
        Proto::Icmp => "icmp",
        Proto::Other(n) => return format!("proto-{n}"),
    };
    port.map_or_else(|| p.to_string(), |n| format!("{p}/{n}"))
}

/// The lines of the drafted ingress rules that came from the firewall and admit
/// `proto`/`port` (whatever their peers): what the VM's clients rely on for the service,
/// the rules [`draft::rules_for`] names the origins of.
fn firewall_lines(d: &VmDraft, lines: &[String], proto: Proto, port: Option<u16>) -> Vec<String> {
    d.ingress
        .iter()
        .zip(lines)
        .filter(|(r, _)| {
            matches!(r.provenance, Provenance::Firewall { .. }) && r.admits(proto, port)
        })
        .map(|(_, l)| l.clone())
        .collect()
}

/// One line per emitted rule: `ingress[0] from 192.0.2.16/32 tcp/5432 ← origin`.
fn rule_lines(d: &VmDraft) -> Vec<String> {
    let mut out = Vec::new();
    for (dir, rules) in [("ingress", &d.ingress), ("egress", &d.egress)] {
        for (i, r) in rules.iter().enumerate() {
            let peers = if r.peers.is_empty() {
                "anywhere".to_string()
            } else {
                r.peers
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let ports = if r.ports.is_empty() {
                "any".to_string()
            } else {
                r.ports
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let side = if dir == "ingress" { "from" } else { "to" };
            out.push(format!(
                "{dir}[{i}] {side} {peers} {ports} ← {}",
                provenance(&r.provenance)
            ));
        }
    }
    out
}

fn provenance(p: &Provenance) -> String {
    match p {
        Provenance::Firewall { origin, .. } => origin.to_string(),
        Provenance::Probe { why } => format!("wavelift probes ({why})"),
    }
}

/// Where the VM's checks come from: the network's `probe_ip` for in-cluster checks, else
/// the workstation (`workstation`: the rehearsal's fixed address, or the first of the
/// plan's `probe_sources` on a real cluster).
fn check_source(plan: &Plan, input: &VmInput, workstation: Option<IpAddr>) -> Option<IpAddr> {
    if plan.meta.checks_from.value == ChecksFrom::Cluster {
        return input.probes.first().map(|p| p.cidr.addr());
    }
    workstation.or_else(|| plan.meta.probe_sources.first().map(|c| c.value.addr()))
}

/// Drafts every VM's policy and evaluates each check against it.
pub(crate) fn draft(
    plan: &Plan,
    exports: &Exports,
    version: MnpVersion,
    workstation: Option<IpAddr>,
) -> Drafted {
    let inputs = super::policy_draft::inputs_from_plan(plan);
    let drafts = draft::draft_all(
        &inputs,
        &exports.sets,
        &DraftOptions {
            mnp_version: version,
        },
        threads(),
    );
    let mut out = Drafted {
        view: PolicyData {
            mode: plan.meta.policy.value.as_str().to_string(),
            vms: BTreeMap::new(),
        },
        ..Drafted::default()
    };
    out.warnings.extend(exports.warnings.iter().cloned());
    for set in &exports.sets {
        out.warnings.extend(set.warnings.iter().cloned());
    }
    for (input, d) in inputs.iter().zip(drafts) {
        let Some(vm) = plan.vms.iter().find(|v| v.name.as_str() == input.name) else {
            continue;
        };
        let network = match &input.network {
            VmNetwork::Attachments(n) => n.first().cloned(),
            VmNetwork::Pod => None,
        };
        let object = match &d.doc.kind {
            PolicyKind::NetworkPolicy => format!("{} (pod network)", eval::policy_label(&d.doc)),
            PolicyKind::MultiNetworkPolicy {
                version,
                policy_for,
            } => format!(
                "{} ({}, policy-for {})",
                eval::policy_label(&d.doc),
                version.as_str(),
                policy_for.join(",")
            ),
        };
        let lines = rule_lines(&d);
        let from = check_source(plan, input, workstation);
        let endpoint =
            Endpoint::new(&input.namespace, &input.pod_selector).on_network(network.as_deref());
        let mut checks = Vec::new();
        let mut services = Vec::new();
        for c in plan.checks_for(vm) {
            let Some((proto, port)) = check_service(&c.kind) else {
                continue;
            };
            // Only an isolated VM's clients depend on its rules (without ingress rules
            // everything is admitted).
            if !d.ingress.is_empty() {
                services.push(ServiceRules {
                    check: c.kind.to_string(),
                    service: service_name(proto, port),
                    rules: firewall_lines(&d, &lines, proto, port),
                });
            }
            let Some(from) = from else {
                checks.push((c.kind.to_string(), None));
                continue;
            };
            let decision = eval::ingress(
                std::slice::from_ref(&d.doc),
                &endpoint,
                from.into(),
                proto,
                port,
            );
            let by = match decision.verdict {
                // Each allowing rule → its line (the draft's ingress rules come first).
                Verdict::Allow { by } => Some(
                    by.iter()
                        .map(|b| match (b.field, lines.get(b.index)) {
                            ("ingress", Some(line)) => line.clone(),
                            _ => b.to_string(),
                        })
                        .collect(),
                ),
                Verdict::NotIsolated => Some(vec!["not isolated (no ingress rules)".into()]),
                Verdict::Deny { .. } => None,
            };
            checks.push((c.kind.to_string(), by));
        }
        out.warnings
            .extend(d.warnings.iter().map(|w| format!("{}: {w}", d.vm)));
        out.view.vms.insert(
            d.vm.clone(),
            VmPolicy {
                object,
                rules: lines,
                checks,
                warnings: d.warnings.clone(),
                services,
            },
        );
        out.docs.insert(d.vm.clone(), vec![d.doc]);
    }
    out
}

/// After connecting: the drafted policies for this cluster (`Ok` empty with `policy =
/// "off"`); `Err` when `apply` cannot work there (nothing was changed).
pub(crate) async fn for_cluster(
    plan: &Plan,
    exports: Option<&Exports>,
    client: &kube::Client,
    rehearsal: bool,
) -> Result<Drafted, String> {
    let Some(exports) = exports else {
        return Ok(Drafted::default());
    };
    let served = served_mnp(client).await;
    refuse_unserved(plan, served)?;
    let workstation = rehearsal.then_some(crate::sim::WORKSTATION_IP);
    Ok(draft(
        plan,
        exports,
        served.unwrap_or(MnpVersion::V1beta2),
        workstation,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `plans/quickstart-policy.toml` drafted from `plans/exports` as `tui` drafts it on
    /// the rehearsal cluster (checks from its workstation).
    fn quickstart() -> (Plan, Drafted) {
        let path = Path::new("plans/quickstart-policy.toml");
        let plan = crate::plan::check_file(path)
            .expect("read")
            .plan
            .expect("valid");
        let exports = read_exports(&plan, path)
            .expect("exports")
            .expect("policy = apply");
        let drafted = draft(
            &plan,
            &exports,
            MnpVersion::V1beta2,
            Some(crate::sim::WORKSTATION_IP),
        );
        (plan, drafted)
    }

    #[test]
    fn each_check_names_the_firewall_rules_its_service_relies_on_or_that_none_does() {
        let (_, d) = quickstart();
        let db = &d.view.vms["shop-db-01"];
        let services: Vec<(&str, &str, Vec<&str>)> = db
            .services
            .iter()
            .map(|s| {
                (
                    s.check.as_str(),
                    s.service.as_str(),
                    s.rules.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        let app_to_db = db
            .rules
            .iter()
            .find(|r| r.contains("192.0.2.16/32 tcp/5432"))
            .expect("the app-to-db rule");
        assert!(app_to_db.contains("rule app-to-db"), "{app_to_db}");
        assert_eq!(
            services,
            vec![
                ("icmp", "icmp", vec![]),
                ("tcp:5432", "tcp/5432", vec![app_to_db.as_str()]),
            ]
        );
        // Both checks' probes pass only through the probe rule (the workstation is no client).
        for (check, by) in &db.checks {
            let by = by.as_ref().expect("admitted");
            assert!(
                by.iter().all(|l| l.contains("wavelift probes")),
                "{check}: {by:?}"
            );
        }
        // web-01's http check uses port 80, which the web-in rule admits with 443.
        let web = &d.view.vms["shop-web-01"];
        let http = web
            .services
            .iter()
            .find(|s| s.check.starts_with("http"))
            .expect("http check");
        assert_eq!(http.service, "tcp/80");
        assert!(
            matches!(http.rules.as_slice(), [r] if r.contains("203.0.113.0/24") && r.contains("rule web-in")),
            "{:?}",
            http.rules
        );
    }

    /// The VM detail as the TUI draws it from the real draft: for each check the probe's
    /// rule, then what the VM's clients rely on for its service.
    #[test]
    fn the_vm_detail_shows_the_rules_each_checks_service_relies_on() {
        use crate::tui::theme::Theme;
        use crate::tui::view::vms::detail_lines;
        use crate::tui::{update, Action, App, TuiOptions, View};
        let (plan, d) = quickstart();
        let mut opts = TuiOptions::rehearsal("plans/quickstart-policy.toml");
        opts.policies = Some(d.view);
        let mut app = App::new(&plan, opts, Theme::default(), 1_796_508_000_000);
        update(&mut app, Action::Resize(170, 60));
        update(&mut app, Action::GoView(View::Vms));
        update(&mut app, Action::Top);
        let vm = app.selected().expect("a VM selected");
        assert_eq!(vm.name, "shop-db-01");
        let lines: Vec<String> = detail_lines(&app, vm, 200, 160)
            .iter()
            .map(|l| l.spans.iter().map(|s| s.content.as_ref()).collect())
            .collect();
        let top = lines
            .iter()
            .position(|l| l == "Network policy")
            .unwrap_or_else(|| panic!("no policy section:\n{}", lines.join("\n")));
        insta::assert_snapshot!(lines[top..].join("\n"));
    }

    /// A cluster whose discovery serves the MultiNetworkPolicy group in `versions` (none:
    /// no such group), answering as the API server's `/apis` and `/apis/GROUP/VERSION` do.
    fn discovery(versions: &'static [&'static str]) -> kube::Client {
        use serde_json::json;
        let svc = tower::service_fn(move |req: http::Request<kube::client::Body>| {
            let path = req.uri().path().to_string();
            async move {
                let gv = |v: &str| format!("{MNP_GROUP}/{v}");
                let body = if path == "/apis" {
                    let listed: Vec<serde_json::Value> = versions
                        .iter()
                        .map(|v| json!({"groupVersion": gv(v), "version": v}))
                        .collect();
                    let groups = match listed.first() {
                        Some(first) => {
                            json!([{"name": MNP_GROUP, "versions": listed, "preferredVersion": first}])
                        }
                        None => json!([]),
                    };
                    Some(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
                } else {
                    path.strip_prefix(&format!("/apis/{MNP_GROUP}/"))
                        .filter(|v| versions.contains(v))
                        .map(|v| {
                            json!({
                                "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv(v),
                                "resources": [{
                                    "name": "multi-networkpolicies", "singularName": "multi-networkpolicy",
                                    "namespaced": true, "kind": "MultiNetworkPolicy",
                                    "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
                                    "shortNames": ["multi-policy"],
                                }],
                            })
                        })
                };
                let (status, body) = match body {
                    Some(b) => (200, b),
                    None => (
                        404,
                        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "the server could not find the requested resource"}),
                    ),
                };
                Ok::<_, std::convert::Infallible>(
                    http::Response::builder()
                        .status(status)
                        .header("content-type", "application/json")
                        .body(kube::client::Body::from(
                            serde_json::to_vec(&body).expect("json"),
                        ))
                        .expect("response"),
                )
            }
        });
        kube::Client::new(svc, "default")
    }

    #[tokio::test]
    async fn the_newest_served_multi_network_policy_version_is_used() {
        assert_eq!(
            served_mnp(&discovery(&["v1beta2", "v1beta1"])).await,
            Some(MnpVersion::V1beta2)
        );
        assert_eq!(
            served_mnp(&discovery(&["v1beta1"])).await,
            Some(MnpVersion::V1beta1)
        );
        assert_eq!(served_mnp(&discovery(&[])).await, None);
    }

    #[tokio::test]
    async fn apply_is_refused_where_no_multi_network_policy_is_served() {
        let path = Path::new("plans/quickstart-policy.toml");
        let plan = crate::plan::check_file(path)
            .expect("read")
            .plan
            .expect("valid");
        let why = refuse_unserved(&plan, served_mnp(&discovery(&[])).await)
            .expect_err("L2 VMs need a MultiNetworkPolicy");
        assert_eq!(
            why,
            "`policy = \"apply\"`: the cluster serves no MultiNetworkPolicy (k8s.cni.cncf.io v1beta1 or v1beta2), which L2 VMs need; install the multi-networkpolicy CRD and an implementation on the nodes, or use `policy = \"draft\"`; nothing was changed"
        );
        assert_eq!(
            refuse_unserved(&plan, served_mnp(&discovery(&["v1beta1"])).await),
            Ok(())
        );
        // `draft` only shows; L3 VMs need NetworkPolicy, which every cluster serves.
        let mut draft_only = plan.clone();
        draft_only.meta.policy.value = PolicyMode::Draft;
        assert_eq!(refuse_unserved(&draft_only, None), Ok(()));
        let mut l3 = plan;
        l3.meta.network_model = crate::plan::NetworkModel::L3;
        assert_eq!(refuse_unserved(&l3, None), Ok(()));
    }
}

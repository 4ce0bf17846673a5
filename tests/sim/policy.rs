//! Network policy in the rehearsal cluster (issue 17): NetworkPolicy and MultiNetworkPolicy
//! served and validated (through kube-rs, and the machine's kubectl), and enforced by the
//! simulated network on a migrated VM (`/sim/v1/probe` with and without `from=`).

use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;
use wavelift::checks::probe::SimProber;
use wavelift::cluster::build;
use wavelift::cluster::resources::{
    DataVolume, NetworkAttachmentDefinition, VirtualMachine, VirtualMachineInstance,
};
use wavelift::sim::controllers::rehearsal::Rehearsal;
use wavelift::sim::controllers::scenario::{PowerState, Scenario};
use wavelift::sim::{self, SimOptions};

use super::kubectl::Served;

const LIMIT: Duration = Duration::from_secs(30);
const NS: &str = "mig-quickstart";

fn mnp(version: &str) -> ApiResource {
    ApiResource {
        group: "k8s.cni.cncf.io".into(),
        version: version.into(),
        api_version: format!("k8s.cni.cncf.io/{version}"),
        kind: "MultiNetworkPolicy".into(),
        plural: "multi-networkpolicies".into(),
    }
}

fn np() -> ApiResource {
    ApiResource {
        group: "networking.k8s.io".into(),
        version: "v1".into(),
        api_version: "networking.k8s.io/v1".into(),
        kind: "NetworkPolicy".into(),
        plural: "networkpolicies".into(),
    }
}

fn object(v: Value) -> DynamicObject {
    serde_json::from_value(v).expect("object")
}

fn netpol(name: &str, spec: Value) -> DynamicObject {
    object(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": NS}, "spec": spec,
    }))
}

fn multi(version: &str, name: &str, spec: Value) -> DynamicObject {
    object(json!({
        "apiVersion": format!("k8s.cni.cncf.io/{version}"), "kind": "MultiNetworkPolicy",
        "metadata": {"name": name, "namespace": NS,
                     "annotations": {"k8s.v1.cni.cncf.io/policy-for": "vlan-210"}},
        "spec": spec,
    }))
}

/// The causes (`field: message`) of a 422, or a panic.
fn invalid(r: Result<DynamicObject, kube::Error>) -> Vec<String> {
    match r {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 422, "{s:?}");
            s.details
                .into_iter()
                .flat_map(|d| d.causes)
                .map(|c| format!("{}: {}", c.field, c.message))
                .collect()
        }
        other => panic!("expected 422 Invalid, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_serves_and_validates_both_kinds() {
    let handle = sim::start(SimOptions {
        extra_objects: vec![
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
        ],
        ..SimOptions::default()
    })
    .await
    .expect("sim");
    let client = handle.client();
    let nps: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, &np());
    let pp = PostParams::default();

    // Defaults: protocol TCP, policyTypes from the rules, podSelector {}.
    let made = nps
        .create(
            &pp,
            &netpol(
                "web",
                json!({"ingress": [{"ports": [{"port": 443}]}], "egress": [{}]}),
            ),
        )
        .await
        .expect("valid NetworkPolicy");
    assert_eq!(
        made.data["spec"]["ingress"][0]["ports"][0]["protocol"],
        "TCP"
    );
    assert_eq!(
        made.data["spec"]["policyTypes"],
        json!(["Ingress", "Egress"])
    );
    assert_eq!(made.data["spec"]["podSelector"], json!({}));

    let causes = invalid(
        nps.create(
            &pp,
            &netpol(
                "bad",
                json!({"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/33"}}]}]}),
            ),
        )
        .await,
    );
    assert_eq!(causes.len(), 1, "{causes:?}");
    assert!(
        causes[0]
            .starts_with("spec.ingress[0].from[0].ipBlock.cidr: Invalid value: \"10.0.0.0/33\""),
        "{causes:?}"
    );
    let causes = invalid(
        nps.create(&pp, &netpol("bad", json!({"egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/16", "10.1.0.0/16"]}}]}]})))
            .await,
    );
    assert_eq!(
        causes,
        vec!["spec.egress[0].to[0].ipBlock.except[0]: Invalid value: \"11.0.0.0/16\": must be a strict subset of `cidr`"]
    );
    let causes = invalid(
        nps.create(
            &pp,
            &netpol(
                "bad",
                json!({"ingress": [{"ports": [{"port": 9000, "endPort": 8000}]}]}),
            ),
        )
        .await,
    );
    assert_eq!(
        causes,
        vec!["spec.ingress[0].ports[0].endPort: Invalid value: 9000: must be greater than or equal to `port`"]
    );
    let causes = invalid(
        nps.create(&pp, &netpol("bad", json!({"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}], "policyTypes": ["Inbound"]})))
            .await,
    );
    assert!(
        causes
            .iter()
            .any(|c| c.starts_with("spec.ingress[0].from[0]: Forbidden")),
        "{causes:?}"
    );
    assert!(
        causes
            .iter()
            .any(|c| c.starts_with("spec.policyTypes[0]: Unsupported value: \"Inbound\"")),
        "{causes:?}"
    );

    // MultiNetworkPolicy: v1beta2 has endPort; v1beta1 refuses it under strict field
    // validation and prunes it otherwise.
    let v2: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, &mnp("v1beta2"));
    let v1: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, &mnp("v1beta1"));
    let ranged =
        json!({"podSelector": {}, "ingress": [{"ports": [{"port": 8000, "endPort": 8080}]}]});
    let made = v2
        .create(&pp, &multi("v1beta2", "ranged", ranged.clone()))
        .await
        .expect("v1beta2 takes endPort");
    assert_eq!(made.data["spec"]["ingress"][0]["ports"][0]["endPort"], 8080);
    let strict = PatchParams::apply("test").validation_strict();
    let err = v1
        .patch(
            "old",
            &strict,
            &Patch::Apply(multi("v1beta1", "old", ranged.clone())),
        )
        .await
        .expect_err("strict: endPort is unknown in v1beta1");
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 400, "{s:?}");
            assert!(
                s.message
                    .contains("unknown field \"spec.ingress[0].ports[0].endPort\""),
                "{}",
                s.message
            );
        }
        e => panic!("{e:?}"),
    }
    let pruned = v1
        .create(&pp, &multi("v1beta1", "old", ranged))
        .await
        .expect("warn: pruned");
    assert_eq!(
        pruned.data["spec"]["ingress"][0]["ports"][0],
        json!({"port": 8000})
    );
    // The CRD's required fields, with paths.
    let causes = invalid(
        v2.create(
            &pp,
            &multi(
                "v1beta2",
                "bad",
                json!({"ingress": [{"from": [{"ipBlock": {"except": ["10.0.0.0/8"]}}]}]}),
            ),
        )
        .await,
    );
    assert_eq!(
        causes,
        vec![
            "spec.podSelector: Required value",
            "spec.ingress[0].from[0].ipBlock.cidr: Required value"
        ]
    );
    // Both versions list the same objects (one storage).
    assert_eq!(
        v1.list(&Default::default())
            .await
            .expect("list")
            .items
            .len(),
        2
    );
    handle.shutdown().await;
}

async fn wait<K, F>(api: &Api<K>, name: &str, what: &str, cond: F) -> K
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    F: Fn(&K) -> bool,
{
    let c = move |o: Option<&K>| o.is_some_and(&cond);
    match tokio::time::timeout(LIMIT, await_condition(api.clone(), name, c)).await {
        Ok(Ok(Some(o))) => o,
        other => panic!("{what}: not reached within {LIMIT:?}: {other:?}"),
    }
}

/// Creates `vm`'s DataVolumes and VirtualMachine as wavelift does, starts it, and waits
/// until its guest agent reports (its addresses are up): the VMI.
async fn started(
    client: &kube::Client,
    plan: &wavelift::plan::Plan,
    vm: &wavelift::plan::Vm,
) -> VirtualMachineInstance {
    let pp = PostParams::default();
    let dvs: Api<DataVolume> = Api::namespaced(client.clone(), NS);
    for dv in build::data_volumes(plan, vm) {
        dvs.create(&pp, &dv).await.expect("DV");
    }
    let vms: Api<VirtualMachine> = Api::namespaced(client.clone(), NS);
    vms.create(&pp, &build::virtual_machine(plan, vm))
        .await
        .expect("VM");
    vms.patch(
        vm.name.as_str(),
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"runStrategy": "Always"}})),
    )
    .await
    .expect("start");
    let vmis: Api<VirtualMachineInstance> = Api::namespaced(client.clone(), NS);
    wait(
        &vmis,
        vm.name.as_str(),
        "agent",
        |v: &VirtualMachineInstance| {
            v.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "AgentConnected" && c.status == "True")
            })
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_network_enforces_policy_on_a_migrated_vm() {
    let plan = wavelift::plan::check_file(Path::new("plans/quickstart.toml"))
        .expect("read")
        .plan
        .expect("valid");
    let mut scenario = Scenario::from_plan(&plan);
    scenario.speed = 2000.0;
    let r = Rehearsal::start(scenario, 0).await.expect("rehearsal");
    let client = r.client();
    let world = r.controllers.world.clone();
    let vm = plan.vm("shop-db-01").expect("vm");
    let pp = PostParams::default();
    let nads: Api<NetworkAttachmentDefinition> = Api::namespaced(client.clone(), NS);
    nads.create(&pp, &build::network_attachment(&plan, &plan.networks[0]))
        .await
        .expect("NAD");
    started(&client, &plan, vm).await;
    let src = world.find("shop-db-01").expect("source");
    world.set_power(&src.moid, PowerState::Off);

    let ip: std::net::IpAddr = "192.0.2.15".parse().unwrap();
    let inside: std::net::IpAddr = "192.0.2.50".parse().unwrap();
    let workstation = SimProber::new(r.world_url.clone());
    let from_inside = SimProber::new(r.world_url.clone()).with_from(inside);
    let ask = |p: &SimProber, port: Option<u16>| {
        let p = p.clone();
        async move { p.answer(ip, port, LIMIT).await.expect("the sim answers") }
    };
    let a = ask(&workstation, Some(5432)).await;
    assert_eq!(a.result, "reachable", "no policy yet: {a:?}");

    // A MultiNetworkPolicy on vlan-210: 5432/tcp from the VLAN only.
    let v2: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, &mnp("v1beta2"));
    v2.create(
        &pp,
        &multi(
            "v1beta2",
            "shop-db-01",
            json!({
                "podSelector": {"matchLabels": {"wavelift.io/plan": plan.meta.name.as_str(), "wavelift.io/vm": "shop-db-01"}},
                "ingress": [{"from": [{"ipBlock": {"cidr": "192.0.2.0/24"}}], "ports": [{"port": 5432}]}],
            }),
        ),
    )
    .await
    .expect("MNP");
    let seen = |name: &'static str, present: bool| {
        let world = world.clone();
        async move {
            tokio::time::timeout(
                LIMIT,
                world.policy.wait_until(|n| {
                    n.policies(NS)
                        .is_some_and(|p| p.iter().any(|d| d.name == name))
                        == present
                }),
            )
            .await
            .expect("the network sees the policy change");
        }
    };
    seen("shop-db-01", true).await;

    let a = ask(&workstation, Some(5432)).await;
    assert_eq!(a.result, "unreachable", "{a:?}");
    let detail = a.detail.clone().unwrap_or_default();
    assert!(
        detail.ends_with("blocked by MultiNetworkPolicy mig-quickstart/shop-db-01 (default deny; from 198.51.100.254)"),
        "{detail}"
    );
    let a = ask(&from_inside, Some(5432)).await;
    assert_eq!(a.result, "reachable", "allowed from the VLAN: {a:?}");
    let a = ask(&from_inside, Some(3306)).await;
    assert_eq!(a.result, "unreachable", "{a:?}");
    assert!(
        a.detail.unwrap_or_default().contains("blocked by"),
        "another port is denied"
    );
    let a = ask(&from_inside, None).await;
    assert_eq!(a.result, "unreachable", "ICMP: the rule lists ports");

    // A NetworkPolicy that denies everything governs the pod network, not vlan-210.
    let nps: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, &np());
    nps.create(&pp, &netpol("deny-all", json!({"podSelector": {}})))
        .await
        .expect("NP");
    seen("deny-all", true).await;
    let a = ask(&from_inside, Some(5432)).await;
    assert_eq!(a.result, "reachable", "{a:?}");

    // Without the MultiNetworkPolicy, the workstation reaches the VM again.
    v2.delete("shop-db-01", &DeleteParams::default())
        .await
        .expect("delete");
    seen("shop-db-01", false).await;
    let a = ask(&workstation, Some(5432)).await;
    assert_eq!(a.result, "reachable", "{a:?}");
}

/// A VM re-IPed onto the pod network (L3): its pod is governed by NetworkPolicy, not by a
/// MultiNetworkPolicy on the VLAN it left. A probe `from=` an admitted address passes, one
/// from elsewhere is blocked naming the policy (kubernetes semantics, as
/// `policy::eval` implements them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_network_enforces_network_policy_on_a_pod_network_vm() {
    let text = std::fs::read_to_string("plans/quickstart.toml")
        .expect("quickstart")
        .replace("network_model = \"l2\"", "network_model = \"l3\"");
    let checked = wavelift::plan::check_str(&text, "plans/quickstart.toml");
    let codes: Vec<&str> = checked.diagnostics.iter().map(|d| d.code).collect();
    let plan = checked.plan.unwrap_or_else(|| panic!("{codes:?}"));
    let vm = plan.vm("shop-db-01").expect("vm");
    assert_eq!(plan.model_of(vm), wavelift::plan::NetworkModel::L3);
    let mut scenario = Scenario::from_plan(&plan);
    scenario.speed = 2000.0;
    let r = Rehearsal::start(scenario, 0).await.expect("rehearsal");
    let client = r.client();
    let world = r.controllers.world.clone();
    let vmi = started(&client, &plan, vm).await;
    let pod_ip: std::net::IpAddr = vmi
        .status
        .as_ref()
        .and_then(|s| s.interfaces.first())
        .and_then(|i| i.ip_address.as_deref())
        .unwrap_or_else(|| panic!("no pod address: {:?}", vmi.status))
        .parse()
        .expect("an IP");
    assert!(
        !pod_ip.to_string().starts_with("192.0.2."),
        "re-IPed onto the pod network: {pod_ip}"
    );

    let client_ip: std::net::IpAddr = "10.244.7.7".parse().unwrap();
    let workstation = SimProber::new(r.world_url.clone());
    let from_client = SimProber::new(r.world_url.clone()).with_from(client_ip);
    let ask = |p: &SimProber, port: Option<u16>| {
        let p = p.clone();
        async move {
            p.answer(pod_ip, port, LIMIT)
                .await
                .expect("the sim answers")
        }
    };
    let a = ask(&from_client, Some(5432)).await;
    assert_eq!(a.result, "reachable", "no policy yet: {a:?}");

    let seen = |name: &'static str| {
        let world = world.clone();
        async move {
            tokio::time::timeout(
                LIMIT,
                world.policy.wait_until(|n| {
                    n.policies(NS)
                        .is_some_and(|p| p.iter().any(|d| d.name == name))
                }),
            )
            .await
            .expect("the network sees the policy");
        }
    };
    // A MultiNetworkPolicy denying everything on vlan-210 does not govern the pod network.
    let pp = PostParams::default();
    let v2: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, &mnp("v1beta2"));
    v2.create(
        &pp,
        &multi("v1beta2", "deny-vlan", json!({"podSelector": {}})),
    )
    .await
    .expect("MNP");
    seen("deny-vlan").await;
    let a = ask(&workstation, Some(5432)).await;
    assert_eq!(a.result, "reachable", "{a:?}");

    // A NetworkPolicy: 5432/tcp from the client's /32 only.
    let nps: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, &np());
    nps.create(
        &pp,
        &netpol(
            "shop-db-01",
            json!({
                "podSelector": {"matchLabels": {"wavelift.io/vm": "shop-db-01"}},
                "ingress": [{"from": [{"ipBlock": {"cidr": "10.244.7.7/32"}}], "ports": [{"port": 5432}]}],
            }),
        ),
    )
    .await
    .expect("NP");
    seen("shop-db-01").await;
    let a = ask(&from_client, Some(5432)).await;
    assert_eq!(a.result, "reachable", "admitted: {a:?}");
    let a = ask(&workstation, Some(5432)).await;
    assert_eq!(a.result, "unreachable", "{a:?}");
    assert_eq!(
        a.detail.unwrap_or_default(),
        format!("vmi/{NS}/shop-db-01 holds {pod_ip} but the flow is blocked by NetworkPolicy {NS}/shop-db-01 (default deny; from 198.51.100.254)")
    );
    let a = ask(&from_client, None).await;
    assert_eq!(a.result, "unreachable", "ICMP: the rule lists ports: {a:?}");
    assert!(
        a.detail
            .unwrap_or_default()
            .contains("blocked by NetworkPolicy"),
        "denied by the policy, not closed"
    );
}

#[test]
#[ignore = "needs kubectl"]
fn kubectl_applies_gets_and_is_refused() {
    let k = Served::with(SimOptions {
        extra_objects: vec![
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
        ],
        ..SimOptions::default()
    });
    let apply = |name: &str, yaml: &str, extra: &[&str]| {
        let p = k.write(name, yaml);
        let mut args = vec!["apply", "-f", p.as_str()];
        args.extend(extra);
        k.outcome(&args)
    };

    let (ok, out, err) = k.outcome(&["api-resources", "--api-group=k8s.cni.cncf.io"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("multi-networkpolicies") && out.contains("multi-policy"),
        "{out}"
    );

    let good = format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: web, namespace: {NS}}}\nspec:\n  podSelector: {{matchLabels: {{wavelift.io/vm: web}}}}\n  ingress: [{{ports: [{{port: 443}}]}}]\n---\napiVersion: k8s.cni.cncf.io/v1beta2\nkind: MultiNetworkPolicy\nmetadata:\n  name: web\n  namespace: {NS}\n  annotations: {{k8s.v1.cni.cncf.io/policy-for: vlan-210}}\nspec:\n  podSelector: {{matchLabels: {{wavelift.io/vm: web}}}}\n  ingress: [{{ports: [{{port: 8000, endPort: 8080}}]}}]\n"
    );
    let (ok, out, err) = apply("good.yaml", &good, &[]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("networkpolicy.networking.k8s.io/web created"),
        "{out}"
    );
    assert!(
        out.contains("multinetworkpolicy.k8s.cni.cncf.io/web created"),
        "{out}"
    );
    let (ok, out, err) = k.outcome(&["get", "netpol", "-n", NS]);
    assert!(ok, "{err}");
    let header: Vec<&str> = out
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "POD-SELECTOR", "AGE"], "{out}");
    assert!(
        out.lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("web") && l.contains("wavelift.io/vm=web")),
        "{out}"
    );
    let (ok, out, err) = k.outcome(&["get", "multi-networkpolicies", "-n", NS]);
    assert!(ok, "{err}");
    let header: Vec<&str> = out
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "AGE"], "{out}");
    assert!(
        out.lines().nth(1).is_some_and(|l| l.starts_with("web ")),
        "{out}"
    );

    // Refusals, with the field at fault.
    let bad = |spec: &str| {
        format!("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: bad, namespace: {NS}}}\nspec:\n{spec}")
    };
    for (spec, want) in [
        ("  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/33}}]}]\n", "spec.ingress[0].from[0].ipBlock.cidr: Invalid value: \"10.0.0.0/33\""),
        ("  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.0.0.0/4]}}]}]\n", "spec.ingress[0].from[0].ipBlock.except[0]: Invalid value: \"10.0.0.0/4\": must be a strict subset of `cidr`"),
        ("  ingress: [{ports: [{port: 90, endPort: 80}]}]\n", "spec.ingress[0].ports[0].endPort: Invalid value: 90: must be greater than or equal to `port`"),
    ] {
        let (ok, out, err) = apply("bad.yaml", &bad(spec), &[]);
        assert!(!ok, "{out}");
        assert!(err.contains("is invalid") && err.contains(want), "want {want}\n{err}");
    }
    let v1 = format!(
        "apiVersion: k8s.cni.cncf.io/v1beta1\nkind: MultiNetworkPolicy\nmetadata:\n  name: old\n  namespace: {NS}\n  annotations: {{k8s.v1.cni.cncf.io/policy-for: vlan-210}}\nspec:\n  podSelector: {{}}\n  ingress: [{{ports: [{{port: 8000, endPort: 8080}}]}}]\n"
    );
    let (ok, out, err) = apply("v1.yaml", &v1, &["--validate=strict"]);
    assert!(!ok, "{out}");
    assert!(
        err.contains("unknown field \"spec.ingress[0].ports[0].endPort\""),
        "{err}"
    );
}

//! Preflight for a real cluster, against the rehearsal cluster: every problem is reported by
//! name, all at once, before anything is created: the credentials Secret without the keys
//! CDI reads, no VDDK image anywhere, nodes without the network's bridge, a VM name held by
//! a foreign object, a MAC another VirtualMachine uses, missing RBAC (namespaced: an error;
//! cluster-scoped: a warning, and the run goes on).

use crate::common;

use common::{config, run_to_end};
use k8s_openapi::api::core::v1::Secret as KubeSecret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use wavelift::cluster::build;
use wavelift::cluster::resources::{DataVolume, VirtualMachine};
use wavelift::engine::{EventKind, LogLevel};
use wavelift::plan::Plan;
use wavelift::sim::access::AccessRule;
use wavelift::sim::controllers::rehearsal::Rehearsal;
use wavelift::sim::controllers::scenario::Scenario;

const LIMIT: Duration = Duration::from_secs(90);

fn quickstart_with(edit: impl Fn(String) -> String) -> Arc<Plan> {
    let text = edit(std::fs::read_to_string("plans/quickstart.toml").expect("quickstart"));
    let checked = wavelift::plan::check_str(&text, "quickstart.toml");
    let problems: Vec<String> = checked.located().iter().map(|d| d.render_text()).collect();
    Arc::new(
        checked
            .plan
            .unwrap_or_else(|| panic!("invalid plan: {problems:?}")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_problem_is_named_at_once_and_nothing_is_created() {
    // No VDDK image; a bridge the nodes do not have.
    let plan = quickstart_with(|t| {
        t.replace(
            "vddk_init_image = \"registry.example.internal/vddk-init:8.0.3\"\n",
            "",
        )
        .replace("bridge = \"br-trunk\"", "bridge = \"br-missing\"")
    });
    let mut sc = Scenario::from_plan(&plan);
    sc.speed = 4000.0;
    sc.node_bridges = vec!["br-trunk".into()];
    let r = Rehearsal::start(sc, 0).await.expect("rehearsal");
    let ns = "mig-quickstart";
    // The Secret with the keys a person would guess, not the ones CDI reads.
    let secrets: Api<KubeSecret> = Api::namespaced(r.client(), ns);
    secrets
        .patch(
            "vsphere-creds",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "data": {
                "accessKeyId": null, "secretKey": null,
                "user": wavelift::sim::store::base64(b"sim-user"),
                "password": wavelift::sim::store::base64(b"sim-password") } })),
        )
        .await
        .expect("patch Secret");
    // shop-db-01's name is held by someone else's VM; shop-app-01's MAC by a VM elsewhere.
    let mut foreign = build::virtual_machine(&plan, plan.vm("shop-db-01").expect("vm"));
    foreign.metadata.labels = None;
    foreign.spec.template["spec"]["domain"]["devices"]["interfaces"][0]["macAddress"] =
        serde_json::json!("00:50:56:aa:aa:aa");
    Api::<VirtualMachine>::namespaced(r.client(), ns)
        .create(&PostParams::default(), &foreign)
        .await
        .expect("foreign VM");
    let mut elsewhere = build::virtual_machine(&plan, plan.vm("shop-app-01").expect("vm"));
    elsewhere.metadata.labels = None;
    elsewhere.metadata.name = Some("someone-elses".into());
    elsewhere.metadata.namespace = Some("default".into());
    Api::<VirtualMachine>::namespaced(r.client(), "default")
        .create(&PostParams::default(), &elsewhere)
        .await
        .expect("VM elsewhere");

    let (s, _) = run_to_end(config(&plan, &r), LIMIT).await;
    assert_eq!(s.failed.len(), 3, "{s:?}");
    let why = |vm: &str| common::why_failed(&s, vm);
    for vm in ["shop-db-01", "shop-app-01", "shop-web-01"] {
        let w = why(vm);
        assert!(w.contains("lacks accessKeyId and secretKey"), "{vm}: {w}");
        assert!(w.contains("no VDDK image"), "{vm}: {w}");
        assert!(
            w.contains("do not advertise bridge.network.kubevirt.io/br-missing")
                && w.contains("sim-node-1"),
            "{vm}: {w}"
        );
    }
    assert!(
        why("shop-db-01").contains("VirtualMachine/shop-db-01 already exists"),
        "{}",
        why("shop-db-01")
    );
    assert!(
        why("shop-app-01").contains(
            "MAC 00:50:56:ab:cd:02 is already used by VirtualMachine default/someone-elses"
        ),
        "{}",
        why("shop-app-01")
    );
    // Nothing was created.
    let dvs = Api::<DataVolume>::namespaced(r.client(), ns)
        .list(&Default::default())
        .await
        .expect("list");
    assert!(dvs.items.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_rbac_in_the_namespace_fails_and_a_cluster_scoped_read_only_warns() {
    let plan = quickstart_with(|t| t);
    let mut sc = Scenario::from_plan(&plan);
    sc.speed = 4000.0;
    sc.rbac_deny = vec![AccessRule::new("create", "cdi.kubevirt.io", "datavolumes")];
    let r = Rehearsal::start(sc, 0).await.expect("rehearsal");
    let mut cfg = config(&plan, &r);
    cfg.only_vms = BTreeSet::from(["shop-db-01".to_string()]);
    let (s, _) = run_to_end(cfg, LIMIT).await;
    let (_, why) = s.failed.first().unwrap_or_else(|| panic!("{s:?}"));
    assert!(
        why.contains(
            "missing permissions in namespace mig-quickstart: create datavolumes.cdi.kubevirt.io"
        ),
        "{why}"
    );

    let mut sc = Scenario::from_plan(&plan);
    sc.speed = 4000.0;
    sc.rbac_deny = vec![
        AccessRule::new("get", "storage.k8s.io", "storageclasses"),
        AccessRule::new("list", "kubevirt.io", "virtualmachines"),
    ];
    // Listing VMs in the plan's namespace stays allowed (the engine watches them).
    sc.rbac_deny[1].namespace = Some("default".into());
    let r = Rehearsal::start(sc, 0).await.expect("rehearsal");
    let mut cfg = config(&plan, &r);
    cfg.only_vms = BTreeSet::from(["shop-db-01".to_string()]);
    let (s, events) = run_to_end(cfg, LIMIT).await;
    assert_eq!(s.verified, vec!["shop-db-01".to_string()], "{s:?}");
    let warned: Vec<&String> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Log {
                level: LogLevel::Warn,
                message,
            } if message.starts_with("preflight:") => Some(message),
            _ => None,
        })
        .collect();
    assert!(
        warned
            .iter()
            .any(|m| m
                .contains("missing cluster-wide permissions: get storageclasses.storage.k8s.io")),
        "{warned:?}"
    );
}

/// DataVolumes are dry-run once per shape (`src/engine/preflight/dv_shape.rs`); the one
/// rule of CDI's webhook that reads the cluster, a PVC of the DataVolume's name that no
/// DataVolume controls, is still judged for every disk, from one list of PVCs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leftover_pvc_is_named_though_data_volumes_are_dry_run_once_per_shape() {
    use crate::count::{CountLayer, Counts};
    let plan = quickstart_with(|t| t);
    let mut sc = Scenario::from_plan(&plan);
    sc.speed = 4000.0;
    let r = Rehearsal::start(sc, 0).await.expect("rehearsal");
    let ns = plan.meta.namespace.as_str();
    let pvc: k8s_openapi::api::core::v1::PersistentVolumeClaim =
        serde_json::from_value(serde_json::json!({
            "metadata": { "name": "shop-web-01-disk0" },
            "spec": { "accessModes": ["ReadWriteOnce"],
                      "resources": { "requests": { "storage": "1Gi" } } }
        }))
        .expect("pvc");
    Api::<k8s_openapi::api::core::v1::PersistentVolumeClaim>::namespaced(r.client(), ns)
        .create(&PostParams::default(), &pvc)
        .await
        .expect("leftover PVC");
    let counted = |counts: &Arc<Counts>| {
        let kcfg = kube::Config::new(r.sim.url().parse().expect("url"));
        let client = kube::client::ClientBuilder::try_from(kcfg)
            .expect("builder")
            .with_layer(&CountLayer(counts.clone()))
            .build();
        let mut cfg = config(&plan, &r);
        cfg.client = client;
        cfg
    };
    let dv_posts = |counts: &Counts| {
        counts
            .breakdown()
            .into_iter()
            .find(|(k, _)| k == "POST datavolumes")
            .map_or(0, |(_, n)| n)
    };
    let counts = Arc::new(Counts::default());
    let (s, _) = run_to_end(counted(&counts), LIMIT).await;
    let why = |vm: &str| common::why_failed(&s, vm);
    assert!(
        why("shop-web-01").starts_with(
            "Destination PVC mig-quickstart/shop-web-01-disk0 already exists and no DataVolume controls it"
        ),
        "{s:?}"
    );
    assert!(
        why("shop-db-01").contains("the preflight of shop-web-01 failed"),
        "{s:?}"
    );
    // Every disk of the plan has one shape: one dry run, and nothing was created.
    assert_eq!(dv_posts(&counts), 1, "{:?}", counts.breakdown());

    // The PVC removed, the wave runs: still one dry run, then the three creates.
    Api::<k8s_openapi::api::core::v1::PersistentVolumeClaim>::namespaced(r.client(), ns)
        .delete("shop-web-01-disk0", &Default::default())
        .await
        .expect("delete PVC");
    let counts = Arc::new(Counts::default());
    let (s, _) = run_to_end(counted(&counts), LIMIT).await;
    assert_eq!(s.verified.len(), 3, "{s:?}");
    assert_eq!(dv_posts(&counts), 4, "{:?}", counts.breakdown());
}

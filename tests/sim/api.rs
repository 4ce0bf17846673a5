//! kube-rs typed and dynamic clients against the in-process sim: CRUD, conflicts, apply,
//! patches, dry run, selectors, status isolation, validation and error Statuses.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Secret};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams,
};
use kube::core::Status;
use kube::{Client, ResourceExt};
use serde_json::{json, Value};
use wavelift::sim::{self, SimHandle, SimOptions};

async fn sim() -> SimHandle {
    sim::start(SimOptions::default()).await.expect("sim starts")
}

fn ar(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

fn vm_ar() -> ApiResource {
    ar("kubevirt.io", "v1", "VirtualMachine", "virtualmachines")
}

fn api_err(e: kube::Error) -> Box<Status> {
    match e {
        kube::Error::Api(s) => s,
        other => panic!("expected an API Status error, got {other:?}"),
    }
}

fn vm_json(name: &str) -> Value {
    json!({
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": name, "namespace": "default", "labels": {"wavelift.io/plan": "p1"}},
        "spec": {
            "runStrategy": "Halted",
            "template": {"spec": {
                "domain": {"devices": {
                    "disks": [{"name": "disk0", "disk": {"bus": "virtio"}}],
                    "interfaces": [{"name": "vlan210", "bridge": {}, "macAddress": "00:50:56:ab:cd:01"}]
                }, "memory": {"guest": "4Gi"}},
                "networks": [{"name": "vlan210", "multus": {"networkName": "default/vlan-210"}}],
                "volumes": [{"name": "disk0", "dataVolume": {"name": format!("{name}-disk0")}}]
            }}
        }
    })
}

fn dynamic(v: Value) -> DynamicObject {
    serde_json::from_value(v).expect("valid dynamic object")
}

fn secret(name: &str, labels: &[(&str, &str)]) -> Secret {
    let mut s = Secret::default();
    s.metadata.name = Some(name.into());
    s.metadata.labels = Some(
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    );
    s.string_data = Some([("user".to_string(), "admin".to_string())].into());
    s
}

#[tokio::test]
async fn typed_crud_conflicts_and_already_exists() {
    let sim = sim().await;
    let client = sim.client();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let created = secrets
        .create(&PostParams::default(), &secret("creds", &[("a", "1")]))
        .await
        .expect("create");
    let uid = created.metadata.uid.clone().expect("uid");
    let data = created
        .data
        .clone()
        .expect("stringData is encoded into data");
    assert_eq!(
        data.get("user").map(|b| b.0.as_slice()),
        Some(&b"admin"[..])
    );
    assert!(created.string_data.is_none());
    assert!(created.metadata.creation_timestamp.is_some());
    let rv1 = created.metadata.resource_version.clone().expect("rv");

    let again = secrets
        .create(&PostParams::default(), &secret("creds", &[]))
        .await
        .expect_err("duplicate create");
    let s = api_err(again);
    assert_eq!((s.code, s.reason.as_str()), (409, "AlreadyExists"));

    let mut changed = secrets.get("creds").await.expect("get");
    changed.metadata.labels = Some([("a".to_string(), "2".to_string())].into());
    let updated = secrets
        .replace("creds", &PostParams::default(), &changed)
        .await
        .expect("replace");
    assert_eq!(updated.metadata.uid.as_deref(), Some(uid.as_str()));
    let rv2 = updated.metadata.resource_version.clone().expect("rv");
    assert!(rv2.parse::<u64>().expect("numeric") > rv1.parse::<u64>().expect("numeric"));

    // `changed` still carries rv1: a stale update.
    let stale = secrets
        .replace("creds", &PostParams::default(), &changed)
        .await
        .expect_err("stale update");
    let s = api_err(stale);
    assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));

    let list = secrets.list(&ListParams::default()).await.expect("list");
    assert_eq!(list.items.len(), 1);
    assert!(list.metadata.resource_version.is_some());

    secrets
        .delete("creds", &DeleteParams::background())
        .await
        .expect("delete");
    let s = api_err(secrets.get("creds").await.expect_err("gone"));
    assert_eq!((s.code, s.reason.as_str()), (404, "NotFound"));
    let s = api_err(
        secrets
            .delete("creds", &DeleteParams::default())
            .await
            .expect_err("delete twice"),
    );
    assert_eq!(s.code, 404);
    sim.shutdown().await;
}

/// `limit` and `continue`: pages in name order, the selector applied before the limit,
/// the first page's resourceVersion on every page, and a token the server never issued
/// answered 400 "invalid continue token", as the API server's `storage.DecodeContinue`
/// does (tests/sim/hostile.rs has the forgeries and their messages).
#[tokio::test]
async fn lists_come_in_pages() {
    let sim = sim().await;
    let secrets: Api<Secret> = Api::namespaced(sim.client(), "default");
    for i in 0..7 {
        let team = if i == 3 { "other" } else { "pay" };
        secrets
            .create(
                &PostParams::default(),
                &secret(&format!("s{i}"), &[("team", team)]),
            )
            .await
            .expect("create");
    }
    let mut lp = ListParams::default().labels("team=pay").limit(2);
    let mut names = Vec::new();
    let mut pages = 0;
    let mut first_rv = None;
    loop {
        let page = secrets.list(&lp).await.expect("page");
        pages += 1;
        assert!(page.items.len() <= 2);
        let rv = page.metadata.resource_version.clone();
        assert_eq!(*first_rv.get_or_insert(rv.clone()), rv, "same list version");
        names.extend(page.items.into_iter().filter_map(|s| s.metadata.name));
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => break,
        }
    }
    assert_eq!(names, ["s0", "s1", "s2", "s4", "s5", "s6"]);
    assert_eq!(pages, 3);
    let bad = secrets
        .list(&ListParams::default().limit(2).continue_token("zz"))
        .await
        .expect_err("a token that was never issued");
    assert_eq!(api_err(bad).code, 400);
    sim.shutdown().await;
}

#[tokio::test]
async fn delete_collection_by_label() {
    let sim = sim().await;
    let secrets: Api<Secret> = Api::namespaced(sim.client(), "default");
    for (name, vm) in [("a", "web01"), ("b", "web01"), ("c", "web02")] {
        secrets
            .create(
                &PostParams::default(),
                &secret(name, &[("wavelift.io/vm", vm)]),
            )
            .await
            .expect("create");
    }
    let lp = ListParams::default().labels("wavelift.io/vm=web01");
    secrets
        .delete_collection(&DeleteParams::default().dry_run(), &lp)
        .await
        .expect("dry-run delete collection");
    assert_eq!(secrets.list(&lp).await.expect("list").items.len(), 2);
    secrets
        .delete_collection(&DeleteParams::background(), &lp)
        .await
        .expect("delete collection");
    let left: Vec<String> = secrets
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .filter_map(|s| s.metadata.name)
        .collect();
    assert_eq!(left, vec!["c"]);
    sim.shutdown().await;
}

#[tokio::test]
async fn namespaces_pvcs_and_missing_namespace() {
    let sim = sim().await;
    let client = sim.client();
    let nss: Api<Namespace> = Api::all(client.clone());
    let mut ns = Namespace::default();
    ns.metadata.name = Some("mig".into());
    let created = nss.create(&PostParams::default(), &ns).await.expect("ns");
    assert_eq!(
        created.status.and_then(|s| s.phase).as_deref(),
        Some("Active")
    );
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "mig");
    let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": "d0"},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "40Gi"}}}
    }))
    .expect("pvc");
    pvcs.create(&PostParams::default(), &pvc)
        .await
        .expect("pvc create");

    let missing: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "nope");
    let s = api_err(
        missing
            .create(&PostParams::default(), &pvc)
            .await
            .expect_err("namespace must exist"),
    );
    assert_eq!(s.code, 404);
    assert!(s.message.contains("namespaces \"nope\""), "{}", s.message);

    nss.delete("mig", &DeleteParams::default())
        .await
        .expect("delete ns");
    assert!(pvcs.get_opt("d0").await.expect("get").is_none(), "cascade");
    sim.shutdown().await;
}

#[tokio::test]
async fn dynamic_apply_merge_and_json_patch() {
    let sim = sim().await;
    let vms: Api<DynamicObject> = Api::namespaced_with(sim.client(), "default", &vm_ar());
    let pp = PatchParams::apply("wavelift").force();
    let created = vms
        .patch("web01", &pp, &Patch::Apply(vm_json("web01")))
        .await
        .expect("apply creates");
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.metadata.managed_fields.is_some());

    let mut desired = vm_json("web01");
    desired["spec"]["runStrategy"] = json!("Always");
    let updated = vms
        .patch("web01", &pp, &Patch::Apply(&desired))
        .await
        .expect("apply updates");
    assert_eq!(
        updated.data.pointer("/spec/runStrategy"),
        Some(&json!("Always"))
    );
    assert_eq!(updated.metadata.generation, Some(2));

    // Re-applying the same configuration changes nothing.
    let same = vms
        .patch("web01", &pp, &Patch::Apply(&desired))
        .await
        .expect("no-op apply");
    assert_eq!(
        same.metadata.resource_version,
        updated.metadata.resource_version
    );

    // Another manager without force conflicts.
    let mut other = vm_json("web01");
    other["spec"]["runStrategy"] = json!("Manual");
    let s = api_err(
        vms.patch(
            "web01",
            &PatchParams::apply("someone-else"),
            &Patch::Apply(&other),
        )
        .await
        .expect_err("conflict"),
    );
    assert_eq!(s.code, 409);

    let merged = vms
        .patch(
            "web01",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"wavelift.io/wave": "w1"}}})),
        )
        .await
        .expect("merge patch");
    assert_eq!(
        merged.labels().get("wavelift.io/wave").map(String::as_str),
        Some("w1")
    );
    assert_eq!(
        merged.metadata.generation,
        Some(2),
        "labels do not bump generation"
    );

    let ops: json_patch::Patch = serde_json::from_value(json!([
        {"op": "replace", "path": "/spec/runStrategy", "value": "Halted"},
        {"op": "add", "path": "/metadata/labels/extra", "value": "yes"}
    ]))
    .expect("json patch");
    let patched = vms
        .patch("web01", &PatchParams::default(), &Patch::Json::<()>(ops))
        .await
        .expect("json patch");
    assert_eq!(
        patched.data.pointer("/spec/runStrategy"),
        Some(&json!("Halted"))
    );
    assert_eq!(
        patched.labels().get("extra").map(String::as_str),
        Some("yes")
    );

    let s = api_err(
        vms.patch(
            "web01",
            &PatchParams::default(),
            &Patch::Strategic(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .expect_err("strategic merge on a CR"),
    );
    assert_eq!(s.code, 415);

    let s = api_err(
        vms.patch(
            "missing",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .expect_err("merge patch on a missing object"),
    );
    assert_eq!((s.code, s.reason.as_str()), (404, "NotFound"));
    sim.shutdown().await;
}

#[tokio::test]
async fn strategic_merge_on_builtin_kinds() {
    let sim = sim().await;
    let secrets: Api<Secret> = Api::namespaced(sim.client(), "default");
    secrets
        .create(&PostParams::default(), &secret("s1", &[]))
        .await
        .expect("create");
    let patched = secrets
        .patch(
            "s1",
            &PatchParams::default(),
            &Patch::Strategic(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .expect("strategic merge on a built-in kind");
    assert_eq!(
        patched
            .metadata
            .labels
            .and_then(|l| l.get("x").cloned())
            .as_deref(),
        Some("y")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn dry_run_persists_nothing() {
    let sim = sim().await;
    let vms: Api<DynamicObject> = Api::namespaced_with(sim.client(), "default", &vm_ar());
    let before = sim.store().current_rv();
    let dry = PostParams {
        dry_run: true,
        field_manager: None,
    };
    let answered = vms
        .create(&dry, &dynamic(vm_json("dry")))
        .await
        .expect("dry-run create");
    assert_eq!(answered.metadata.name.as_deref(), Some("dry"));
    assert!(vms.get_opt("dry").await.expect("get").is_none());
    vms.patch(
        "dry",
        &PatchParams::apply("x").force().dry_run(),
        &Patch::Apply(vm_json("dry")),
    )
    .await
    .expect("dry-run apply");
    assert!(vms.get_opt("dry").await.expect("get").is_none());
    assert_eq!(sim.store().current_rv(), before, "no resourceVersion bump");

    // Invalid objects fail a dry run exactly as a real create would.
    let mut bad = vm_json("bad");
    bad["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("template");
    let s = api_err(vms.create(&dry, &dynamic(bad)).await.expect_err("invalid"));
    assert_eq!(s.code, 422);

    vms.create(&PostParams::default(), &dynamic(vm_json("real")))
        .await
        .expect("create");
    let rv = sim.store().current_rv();
    vms.patch(
        "real",
        &PatchParams::default().dry_run(),
        &Patch::Merge(json!({"spec": {"runStrategy": "Always"}})),
    )
    .await
    .expect("dry-run merge");
    vms.delete("real", &DeleteParams::default().dry_run())
        .await
        .expect("dry-run delete");
    let still = vms.get("real").await.expect("still there");
    assert_eq!(
        still.data.pointer("/spec/runStrategy"),
        Some(&json!("Halted"))
    );
    assert_eq!(sim.store().current_rv(), rv);
    sim.shutdown().await;
}

#[tokio::test]
async fn label_and_field_selectors() {
    let sim = sim().await;
    let secrets: Api<Secret> = Api::namespaced(sim.client(), "default");
    for (name, labels) in [
        ("a", vec![("tier", "web"), ("env", "prod")]),
        ("b", vec![("tier", "db"), ("env", "prod")]),
        ("c", vec![("tier", "cache")]),
    ] {
        secrets
            .create(&PostParams::default(), &secret(name, &labels))
            .await
            .expect("create");
    }
    let names = |sel: &'static str| {
        let secrets = secrets.clone();
        async move {
            let mut v: Vec<String> = secrets
                .list(&ListParams::default().labels(sel))
                .await
                .unwrap_or_else(|e| panic!("list {sel}: {e}"))
                .items
                .into_iter()
                .filter_map(|s| s.metadata.name)
                .collect();
            v.sort();
            v.join(",")
        }
    };
    assert_eq!(names("tier=web").await, "a");
    assert_eq!(names("tier==db").await, "b");
    assert_eq!(names("tier!=web").await, "b,c");
    assert_eq!(names("tier in (web,cache)").await, "a,c");
    assert_eq!(names("tier notin (web,cache)").await, "b");
    assert_eq!(names("env").await, "a,b");
    assert_eq!(names("!env").await, "c");
    assert_eq!(names("env=prod,tier!=db").await, "a");

    let by_name = secrets
        .list(&ListParams::default().fields("metadata.name=b"))
        .await
        .expect("field selector");
    assert_eq!(by_name.items.len(), 1);
    let all: Api<Secret> = Api::all(sim.client());
    let in_default = all
        .list(&ListParams::default().fields("metadata.namespace=default,metadata.name!=a"))
        .await
        .expect("field selector across namespaces");
    assert_eq!(in_default.items.len(), 2);
    let s = api_err(
        secrets
            .list(&ListParams::default().fields("spec.bogus=1"))
            .await
            .expect_err("unsupported field"),
    );
    assert_eq!(s.code, 400);
    let s = api_err(
        secrets
            .list(&ListParams::default().labels("tier in web"))
            .await
            .expect_err("bad selector"),
    );
    assert_eq!(s.code, 400);
    sim.shutdown().await;
}

#[tokio::test]
async fn status_subresource_isolation() {
    let sim = sim().await;
    let vms: Api<DynamicObject> = Api::namespaced_with(sim.client(), "default", &vm_ar());
    let mut with_status = vm_json("web02");
    with_status["status"] = json!({"printableStatus": "Running"});
    let created = vms
        .create(&PostParams::default(), &dynamic(with_status))
        .await
        .expect("create");
    assert!(
        created.data.get("status").is_none(),
        "status dropped on create"
    );

    let main = vms
        .patch(
            "web02",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"printableStatus": "Running"}, "metadata": {"labels": {"k": "v"}}})),
        )
        .await
        .expect("main patch");
    assert!(
        main.data.get("status").is_none(),
        "main resource ignores status"
    );
    assert_eq!(main.labels().get("k").map(String::as_str), Some("v"));

    let st = vms
        .patch_status(
            "web02",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"printableStatus": "Starting"}, "spec": {"runStrategy": "Always"}})),
        )
        .await
        .expect("status patch");
    assert_eq!(
        st.data.pointer("/status/printableStatus"),
        Some(&json!("Starting"))
    );
    assert_eq!(
        st.data.pointer("/spec/runStrategy"),
        Some(&json!("Halted")),
        "status ignores spec"
    );
    assert_eq!(st.metadata.generation, Some(1));

    // Server-side apply to /status, as controllers do.
    let applied = vms
        .patch_status(
            "web02",
            &PatchParams::apply("sim-kubevirt").force(),
            &Patch::Apply(json!({
                "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
                "status": {"printableStatus": "Running", "ready": true}
            })),
        )
        .await
        .expect("status apply");
    assert_eq!(applied.data.pointer("/status/ready"), Some(&json!(true)));
    assert_eq!(
        applied.data.pointer("/spec/runStrategy"),
        Some(&json!("Halted"))
    );
    let status_manager = applied
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .find(|m| m.manager.as_deref() == Some("sim-kubevirt"))
        .expect("status manager recorded");
    assert_eq!(status_manager.subresource.as_deref(), Some("status"));
    sim.shutdown().await;
}

#[tokio::test]
async fn validation_answers_422_with_causes() {
    let sim = sim().await;
    let client = sim.client();
    let vms: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &vm_ar());
    let causes = |s: &Status| -> Vec<String> {
        s.details
            .as_ref()
            .map(|d| d.causes.iter().map(|c| c.field.clone()).collect())
            .unwrap_or_default()
    };

    let mut vm = vm_json("bad-vm");
    vm["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"] =
        json!([{"name": "nic0", "bridge": {}, "masquerade": {}}]);
    let s = api_err(
        vms.create(&PostParams::default(), &dynamic(vm))
            .await
            .expect_err("bad vm"),
    );
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
    let fields = causes(&s);
    assert!(
        fields.contains(&"spec.template.spec.domain.devices.interfaces[0]".to_string()),
        "two bindings: {fields:?}"
    );
    assert!(
        fields.contains(&"spec.template.spec.domain.devices.interfaces[0].name".to_string()),
        "interface without network: {fields:?}"
    );
    assert!(
        fields.contains(&"spec.template.spec.networks[0].name".to_string()),
        "network without interface: {fields:?}"
    );

    let mut vm = vm_json("Bad_Name");
    vm["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"][0]
        .as_object_mut()
        .expect("iface")
        .remove("name");
    let s = api_err(
        vms.create(&PostParams::default(), &dynamic(vm))
            .await
            .expect_err("bad name"),
    );
    let fields = causes(&s);
    assert!(fields.contains(&"metadata.name".to_string()), "{fields:?}");
    assert!(
        fields.contains(&"spec.template.spec.domain.devices.interfaces[0].name".to_string()),
        "{fields:?}"
    );

    let dvs: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "default",
        &ar("cdi.kubevirt.io", "v1beta1", "DataVolume", "datavolumes"),
    );
    let dv = dynamic(json!({
        "apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume",
        "metadata": {"name": "d0"}, "spec": {}
    }));
    let s = api_err(
        dvs.create(&PostParams::default(), &dv)
            .await
            .expect_err("bad dv"),
    );
    let fields = causes(&s);
    assert!(fields.contains(&"spec.source".to_string()), "{fields:?}");
    assert!(fields.contains(&"spec.storage".to_string()), "{fields:?}");
    let good_dv = dynamic(json!({
        "apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume",
        "metadata": {"name": "d1"},
        "spec": {"source": {"http": {"url": "https://images.example/x.qcow2"}},
                 "storage": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "40Gi"}}}}
    }));
    dvs.create(&PostParams::default(), &good_dv)
        .await
        .expect("good dv");

    let nads: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "default",
        &ar(
            "k8s.cni.cncf.io",
            "v1",
            "NetworkAttachmentDefinition",
            "network-attachment-definitions",
        ),
    );
    let nad = |config: &str| {
        dynamic(json!({
            "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": "vlan-210"}, "spec": {"config": config}
        }))
    };
    let s = api_err(
        nads.create(&PostParams::default(), &nad("{not json"))
            .await
            .expect_err("bad nad"),
    );
    assert_eq!(causes(&s), vec!["spec.config".to_string()]);
    nads.create(
        &PostParams::default(),
        &nad(r#"{"cniVersion":"0.3.1","name":"vlan-210","type":"bridge","bridge":"br-trunk","vlan":210,"ipam":{}}"#),
    )
    .await
    .expect("good nad");
    sim.shutdown().await;
}

#[tokio::test]
async fn generate_name_and_vm_subresources() {
    let sim = sim().await;
    let client = sim.client();
    let vmims: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "default",
        &ar(
            "kubevirt.io",
            "v1",
            "VirtualMachineInstanceMigration",
            "virtualmachineinstancemigrations",
        ),
    );
    let created = vmims
        .create(
            &PostParams::default(),
            &dynamic(json!({
                "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstanceMigration",
                "metadata": {"generateName": "web01-mig-"}, "spec": {"vmiName": "web01"}
            })),
        )
        .await
        .expect("generateName");
    let name = created.metadata.name.expect("name");
    assert!(name.starts_with("web01-mig-") && name.len() > "web01-mig-".len());

    let vms: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &vm_ar());
    vms.create(&PostParams::default(), &dynamic(vm_json("web03")))
        .await
        .expect("vm");
    let put = |action: &str| {
        http::Request::put(format!(
            "/apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachines/web03/{action}"
        ))
        .header("content-type", "application/json")
        .body(b"{}".to_vec())
        .expect("request")
    };
    client.request_text(put("start")).await.expect("start");
    let vm = vms.get("web03").await.expect("get");
    assert_eq!(vm.data.pointer("/spec/runStrategy"), Some(&json!("Always")));
    let s = api_err(
        client
            .request_text(put("start"))
            .await
            .expect_err("already running"),
    );
    assert_eq!(s.code, 409);
    client.request_text(put("stop")).await.expect("stop");
    let vm = vms.get("web03").await.expect("get");
    assert_eq!(vm.data.pointer("/spec/runStrategy"), Some(&json!("Halted")));
    let s = api_err(
        client
            .request_text(put("migrate"))
            .await
            .expect_err("no vmi"),
    );
    // virt-api `FetchVirtualMachineInstance`: no VMI is 404, not 409.
    assert_eq!(s.code, 404);
    sim.shutdown().await;
}

#[tokio::test]
async fn discovery_finds_every_kind() {
    let sim = sim().await;
    let discovery = kube::Discovery::new(sim.client())
        .run()
        .await
        .expect("discovery");
    for (group, kind) in [
        ("kubevirt.io", "VirtualMachine"),
        ("kubevirt.io", "VirtualMachineInstance"),
        ("kubevirt.io", "VirtualMachineInstanceMigration"),
        ("cdi.kubevirt.io", "DataVolume"),
        ("k8s.cni.cncf.io", "NetworkAttachmentDefinition"),
        ("storage.k8s.io", "StorageClass"),
        ("", "Namespace"),
        ("", "Event"),
    ] {
        let found = discovery
            .groups()
            .filter(|g| g.name() == group)
            .flat_map(|g| g.recommended_resources())
            .any(|(r, _)| r.kind == kind);
        assert!(found, "{group}/{kind} not discovered");
    }
    let gvk = GroupVersionKind::gvk("k8s.cni.cncf.io", "v1", "NetworkAttachmentDefinition");
    let (nad, _) = kube::discovery::pinned_kind(&sim.client(), &gvk)
        .await
        .expect("pinned kind");
    assert_eq!(nad.plural, "network-attachment-definitions");
    sim.shutdown().await;
}

async fn raw(client: &Client, req: http::Request<Vec<u8>>) -> Box<Status> {
    api_err(client.request_text(req).await.expect_err("an error Status"))
}

#[tokio::test]
async fn bad_requests_get_status_objects() {
    let sim = sim().await;
    let client = sim.client();
    let vms = "/apis/kubevirt.io/v1/namespaces/default/virtualmachines";

    let s = raw(
        &client,
        http::Request::post("/api/v1/namespaces")
            .header("content-type", "application/vnd.kubernetes.protobuf")
            .body(vec![0x6b, 0x38, 0x73, 0x00])
            .expect("req"),
    )
    .await;
    assert_eq!(s.code, 415);
    assert!(s.message.contains("kubectl apply -f"), "{}", s.message);

    let s = raw(
        &client,
        http::Request::post(vms)
            .header("content-type", "application/json")
            .body(vec![b' '; 4 * 1024 * 1024])
            .expect("req"),
    )
    .await;
    assert_eq!(s.code, 413);

    let s = raw(
        &client,
        http::Request::post(vms)
            .header("content-type", "application/json")
            .body(b"{\"apiVersion\": ".to_vec())
            .expect("req"),
    )
    .await;
    assert_eq!((s.code, s.reason.as_str()), (400, "BadRequest"));

    let s = raw(
        &client,
        http::Request::get("/apis/example.com/v1/namespaces/default/widgets")
            .body(Vec::new())
            .expect("req"),
    )
    .await;
    assert_eq!(s.code, 404);

    let s = raw(
        &client,
        http::Request::get("/apis/kubevirt.io/v1/namespaces/default/virtualmachines/nope")
            .body(Vec::new())
            .expect("req"),
    )
    .await;
    assert_eq!((s.code, s.reason.as_str()), (404, "NotFound"));
    let details = s.details.expect("details");
    assert_eq!(
        (details.name.as_str(), details.group.as_str()),
        ("nope", "kubevirt.io")
    );

    let mut vm = vm_json("strict");
    vm["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"][0]["macAdress"] =
        json!("00:50:56:ab:cd:01");
    let s = raw(
        &client,
        http::Request::post(format!("{vms}?fieldValidation=Strict"))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&vm).expect("json"))
            .expect("req"),
    )
    .await;
    assert_eq!(s.code, 400);
    assert!(s.message.contains("unknown field"), "{}", s.message);
    assert!(s.message.contains("macAdress"), "{}", s.message);

    let s = raw(
        &client,
        http::Request::patch(format!("{vms}/x"))
            .header("content-type", "text/plain")
            .body(b"hi".to_vec())
            .expect("req"),
    )
    .await;
    assert_eq!(s.code, 415);

    // The server still answers after all of that.
    let vms_api: Api<DynamicObject> = Api::namespaced_with(client, "default", &vm_ar());
    assert!(vms_api.list(&ListParams::default()).await.is_ok());
    sim.shutdown().await;
}

#[tokio::test]
async fn openapi_documents_carry_gvk_and_field_validation() {
    let sim = sim().await;
    let client = sim.client();
    let get = |p: &str| http::Request::get(p).body(Vec::new()).expect("req");
    let index: Value = client.request(get("/openapi/v3")).await.expect("index");
    let url = index
        .pointer("/paths/apis~1kubevirt.io~1v1/serverRelativeURL")
        .and_then(Value::as_str)
        .expect("kubevirt.io/v1 in the index")
        .to_string();
    let doc: Value = client.request(get(&url)).await.expect("document");
    let patch = doc
        .pointer("/paths/~1apis~1kubevirt.io~1v1~1namespaces~1{namespace}~1virtualmachines~1{name}/patch")
        .expect("patch op");
    assert_eq!(
        patch.pointer("/x-kubernetes-group-version-kind/kind"),
        Some(&json!("VirtualMachine"))
    );
    let params = patch
        .get("parameters")
        .and_then(Value::as_array)
        .expect("params");
    assert!(params.iter().any(|p| p["name"] == "fieldValidation"));
    let core: Value = client
        .request(get("/openapi/v3/api/v1"))
        .await
        .expect("core doc");
    assert!(core
        .pointer("/components/schemas/io.k8s.api.core.v1.Secret")
        .is_some());
    let s = api_err(
        client
            .request::<Value>(get("/openapi/v2"))
            .await
            .expect_err("v2 is 404"),
    );
    assert_eq!(s.code, 404);
    sim.shutdown().await;
}

#[tokio::test]
async fn seeded_cluster_and_kubeconfig() {
    let sim = sim().await;
    let client = sim.client();
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    let names: Vec<String> = nodes
        .list(&ListParams::default())
        .await
        .expect("nodes")
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    assert_eq!(names, vec!["sim-node-1", "sim-node-2", "sim-node-3"]);
    let scs: Api<k8s_openapi::api::storage::v1::StorageClass> = Api::all(client.clone());
    let sc = scs
        .get("sim-standard")
        .await
        .expect("default storage class");
    assert_eq!(
        sc.metadata
            .annotations
            .and_then(|a| a
                .get("storageclass.kubernetes.io/is-default-class")
                .cloned())
            .as_deref(),
        Some("true")
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&path).expect("kubeconfig");
    let kc = kube::config::Kubeconfig::read_from(&path).expect("parse kubeconfig");
    assert_eq!(kc.current_context.as_deref(), Some("wavelift-sim"));
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("config from kubeconfig");
    let from_file = Client::try_from(config).expect("client");
    let ns: Api<Namespace> = Api::all(from_file);
    assert!(ns.get("default").await.is_ok());
    sim.shutdown().await;
}

#[tokio::test]
async fn malformed_requests_never_break_the_server() {
    let sim = sim().await;
    let client = sim.client();
    let vms = "/apis/kubevirt.io/v1/namespaces/default/virtualmachines";
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &vm_ar());
    api.create(&PostParams::default(), &dynamic(vm_json("target")))
        .await
        .expect("create");
    let req = |method: &str, path: String, ct: &str, body: &[u8]| {
        http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", ct)
            .body(body.to_vec())
            .expect("request")
    };
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let cases: Vec<(http::Request<Vec<u8>>, u16)> = vec![
        (req("PATCH", format!("{vms}/target"), "application/json-patch+json", br#"[{"op":"replace","path":"","value":5}]"#), 400),
        (req("PATCH", format!("{vms}/target"), "application/json-patch+json", br#"[{"op":"frobnicate","path":"/x"}]"#), 400),
        (req("PATCH", format!("{vms}/target"), "application/json-patch+json", br#"[{"op":"remove","path":"/nope/deeper"}]"#), 422),
        (req("PATCH", format!("{vms}/target"), "application/merge-patch+json", b"[1,2]"), 400),
        (req("PATCH", format!("{vms}/target"), "application/merge-patch+json", deep.as_bytes()), 400),
        (req("PATCH", format!("{vms}/target"), "application/apply-patch+yaml", b"{\"apiVersion\":\"kubevirt.io/v1\",\"kind\":\"VirtualMachine\"}"), 400),
        (req("PATCH", format!("{vms}/target?fieldManager=m"), "application/apply-patch+yaml", b"{\"apiVersion\":\"v1\",\"kind\":\"Secret\"}"), 400),
        (req("PATCH", format!("{vms}/target?fieldManager=m"), "application/apply-patch+yaml", b"key: [unclosed"), 400),
        (req("PATCH", format!("{vms}/target?force=true"), "application/merge-patch+json", b"{}"), 400),
        (req("POST", vms.to_string(), "application/json", b"[]"), 400),
        (req("POST", vms.to_string(), "application/json", br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"}}"#), 400),
        (req("POST", vms.to_string(), "application/json", deep.as_bytes()), 400),
        (req("POST", "/apis/kubevirt.io/v1/virtualmachines".into(), "application/json", b"{}"), 405),
        (req("POST", format!("{vms}?dryRun=Some"), "application/json", b"{}"), 400),
        (req("PUT", format!("{vms}/target"), "application/json", br#"{"apiVersion":"kubevirt.io/v1","kind":"VirtualMachine","metadata":{"name":"other"}}"#), 400),
        (req("PUT", format!("{vms}/missing"), "application/json", br#"{"apiVersion":"kubevirt.io/v1","kind":"VirtualMachine","metadata":{"name":"missing"}}"#), 404),
        (req("DELETE", format!("{vms}/target"), "application/json", b"{garbage"), 400),
        (req("DELETE", format!("{vms}/target"), "application/json", br#"{"preconditions":{"resourceVersion":"1"}}"#), 409),
        (req("GET", format!("{vms}?labelSelector=a%20in%20("), "", b""), 400),
        (req("GET", format!("{vms}?watch=true&resourceVersion=abc"), "", b""), 400),
        (req("GET", format!("{vms}?watch=true&timeoutSeconds=18446744073709551615"), "", b""), 400),
        (req("GET", format!("{vms}/target/frobnicate"), "", b""), 404),
        (req("GET", format!("{vms}/target/x/y"), "", b""), 404),
        (req("GET", "/apis/kubevirt.io/v2/namespaces/default/virtualmachines".into(), "", b""), 404),
        (req("POST", "/version".into(), "application/json", b"{}"), 405),
        (req("PUT", "/apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachines/target/explode".into(), "application/json", b"{}"), 404),
        (req("PUT", "/apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachines/target/start".into(), "application/json", b"[]"), 400),
    ];
    for (r, code) in cases {
        let what = format!("{} {}", r.method(), r.uri());
        let s = api_err(
            client
                .request_text(r)
                .await
                .expect_err(&format!("{what} should fail")),
        );
        assert_eq!(s.code, code, "{what}: {}", s.message);
    }
    // Still healthy, object untouched.
    let target = api.get("target").await.expect("get");
    assert_eq!(
        target.data.pointer("/spec/runStrategy"),
        Some(&json!("Halted"))
    );
    sim.shutdown().await;
}

//! CDI's DataVolume webhook on create, as the rehearsal cluster runs it
//! (containerized-data-importer `pkg/apiserver/webhooks/datavolume-validate.go` `Admit`):
//! a PVC of the DataVolume's name that no DataVolume controls, a VDDK source missing a
//! field, a disk under 1 MiB. Dry runs are judged the same way.

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{Api, PostParams};
use serde_json::json;
use wavelift::cluster::build;
use wavelift::cluster::resources::DataVolume;
use wavelift::plan::Plan;
use wavelift::sim::controllers::rehearsal::Rehearsal;
use wavelift::sim::controllers::scenario::Scenario;

fn quickstart() -> Plan {
    wavelift::plan::check_file(std::path::Path::new("plans/quickstart.toml"))
        .expect("read")
        .plan
        .expect("valid")
}

/// The refusal's message, or a panic naming what was admitted.
async fn refused(api: &Api<DataVolume>, pp: &PostParams, dv: &DataVolume) -> String {
    match api.create(pp, dv).await {
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 422, "{e:?}");
            assert!(
                e.message.contains(
                    "admission webhook \"datavolume-validate.cdi.kubevirt.io\" denied the request:"
                ),
                "{e:?}"
            );
            e.message
        }
        other => panic!("admitted: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_refuses_a_taken_pvc_name_a_bad_vddk_source_and_a_tiny_disk() {
    let plan = quickstart();
    let mut sc = Scenario::from_plan(&plan);
    sc.speed = 1.0; // nothing is imported here
    let r = Rehearsal::start(sc, 0).await.expect("rehearsal");
    let ns = plan.meta.namespace.as_str();
    let dvs: Api<DataVolume> = Api::namespaced(r.client(), ns);
    let dv = |vm: &str| build::data_volume(&plan, plan.vm(vm).expect("vm"), 0).expect("dv");
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };

    // A leftover PVC of shop-web-01's disk, no DataVolume's.
    let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": { "name": "shop-web-01-disk0" },
        "spec": { "accessModes": ["ReadWriteOnce"],
                  "resources": { "requests": { "storage": "1Gi" } } }
    }))
    .expect("pvc");
    Api::<PersistentVolumeClaim>::namespaced(r.client(), ns)
        .create(&PostParams::default(), &pvc)
        .await
        .expect("pvc");
    for pp in [&dry, &PostParams::default()] {
        let m = refused(&dvs, pp, &dv("shop-web-01")).await;
        assert!(
            m.ends_with(&format!(
                "denied the request:  Destination PVC {ns}/shop-web-01-disk0 already exists"
            )),
            "{m}"
        );
    }

    // One bad value each: (where in the DataVolume's spec, the value, the refusal's end).
    for (pointer, value, want) in [
        (
            "/source/vddk/uuid",
            "",
            "spec.source.VDDK source VDDK is not valid",
        ),
        (
            "/source/vddk/url",
            "ftp://vcenter.example.internal",
            "spec.source Invalid source URL scheme: ftp://vcenter.example.internal",
        ),
        (
            "/storage/resources/requests/storage",
            "512Ki",
            "Storage size should be at least 1MiB",
        ),
    ] {
        let mut bad = dv("shop-app-01");
        let mut spec = serde_json::to_value(&bad.spec).expect("spec");
        *spec
            .pointer_mut(pointer)
            .expect("the plan's DataVolume has it") = json!(value);
        bad.spec = serde_json::from_value(spec).expect("spec");
        let m = refused(&dvs, &dry, &bad).await;
        assert!(m.ends_with(want), "{pointer} = {value:?}: {m}");
    }

    // The same DataVolumes as the plan builds them are admitted, and nothing above was
    // stored.
    dvs.create(&dry, &dv("shop-app-01"))
        .await
        .expect("admitted");
    let stored = dvs.list(&Default::default()).await.expect("list");
    assert!(stored.items.is_empty(), "{:?}", stored.items);
}

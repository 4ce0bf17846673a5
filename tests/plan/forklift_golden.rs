//! Golden YAML of every Forklift object wavelift writes (`backend = "forklift"`), with the
//! field names checked against kubev2v/forklift `pkg/apis/forklift/v1beta1/` and the
//! simulated Forklift's structural schema (`src/sim/forklift_crd.rs`, which follows them):
//! nothing wavelift writes would be pruned or refused by `fieldValidation=Strict`.

use crate::common;
use serde_json::{json, Value};
use std::sync::LazyLock;
use wavelift::cluster::forklift::{self as fk, PlanGroup, SourceConn};
use wavelift::plan::{check_str, Migration, NetworkModel, Plan};

static PLAN: LazyLock<String> = LazyLock::new(|| {
    common::plan_header("golden", "mig-golden", "backend = \"forklift\"") + PLAN_BODY
});

const PLAN_BODY: &str = r#"power_off = "vsphere-api"

[defaults]
storage_class = "ceph-rbd"
access_mode = "ReadWriteMany"
volume_mode = "Block"
checks = ["icmp"]

[[network]]
name = "vlan-210"
vlan = 210
provider = "bridge"
bridge = "br-trunk"
cidr = "192.0.2.0/24"
owner = "netsec"
source_network = "VLAN-210"

[[network]]
name = "vlan-310"
vlan = 310
provider = "ovn-localnet"
owner = "netsec"
source_network = "network-12"

[[wave]]
name = "w1"
window = { start = 2026-12-05T22:00:00Z, end = 2026-12-06T04:00:00Z }
max_parallel_cutovers = 2
migration = "warm"

[[vm]]
name = "db-01"
wave = "w1"
source_id = "4207c1b2-5f0e-4c1e-9a7b-0123456789a1"
cpu = 4
memory = "16Gi"
nics = [{ network = "vlan-210", ip = "192.0.2.15", mac = "00:50:56:ab:cd:01" }]
disks = [
  { backing_file = "[ds1] db-01/db-01.vmdk", size = "80Gi" },
  { backing_file = "[ds2] db-01/db-01_1.vmdk", size = "1Ti", storage_class = "ceph-rbd-fast" },
]

[[vm]]
name = "app-01"
wave = "w1"
source_id = "4207c1b2-5f0e-4c1e-9a7b-0123456789a2"
cpu = 2
memory = "4Gi"
nics = [{ network = "vlan-210", ip = "192.0.2.16", mac = "00:50:56:ab:cd:02" }]
disks = [{ backing_file = "[ds1] app-01/app-01.vmdk", size = "40Gi" }]
after = ["db-01"]

[[vm]]
name = "app-02"
wave = "w1"
source_id = "4207c1b2-5f0e-4c1e-9a7b-0123456789a3"
cpu = 2
memory = "4Gi"
nics = [{ network = "vlan-210", ip = "192.0.2.17", mac = "00:50:56:ab:cd:03" }]
disks = [{ backing_file = "[ds1] app-02/app-02.vmdk", size = "40Gi" }]
after = ["db-01"]

[[vm]]
name = "app-03"
wave = "w1"
source_id = "4207c1b2-5f0e-4c1e-9a7b-0123456789a4"
cpu = 2
memory = "4Gi"
nics = [{ network = "vlan-210", ip = "192.0.2.18", mac = "00:50:56:ab:cd:04" }]
disks = [{ backing_file = "[ds1] app-03/app-03.vmdk", size = "40Gi" }]
after = ["db-01"]

[[vm]]
name = "worker-01"
wave = "w1"
source_id = "4207c1b2-5f0e-4c1e-9a7b-0123456789a5"
cpu = 2
memory = "4Gi"
network_model = "l3"
migration = "cold"
nics = [{ network = "vlan-310", mac = "00:50:56:ab:cd:05" }]
disks = [{ backing_file = "[ds2] worker-01/worker-01.vmdk", size = "40Gi", storage_class = "ceph-rbd-fast" }]
"#;

fn plan(text: &str) -> Plan {
    let c = check_str(text, "golden.toml");
    let errs: Vec<String> = c
        .located()
        .iter()
        .filter(|d| d.severity == wavelift::plan::Severity::Error)
        .map(|d| d.render_text())
        .collect();
    c.plan
        .unwrap_or_else(|| panic!("golden plan invalid:\n{}", errs.join("\n")))
}

fn conn() -> SourceConn {
    SourceConn {
        url: SourceConn::sdk_url("https://vcenter.example.internal"),
        ca_pem: fk::pem(b"not a real certificate, a golden fixture"),
    }
}

/// The morefs the sim's vCenter would give, by plan order.
fn ids(p: &Plan) -> impl Fn(&str) -> Option<String> + '_ {
    move |name| {
        p.vms
            .iter()
            .position(|v| v.name.as_str() == name)
            .map(|i| format!("vm-{}", 1001 + i))
    }
}

/// The spec keys of `v` are Forklift's v1beta1 fields (from the Go types). Every path is also
/// checked against the sim's CRD schema by the lib test
/// `sim::kind_schema::tests::objects_pass_the_crd_schema_strictly` (src/sim/kind_schema.rs).
fn assert_known_fields(v: &Value) {
    let kind = v["kind"].as_str().expect("kind");
    let spec_keys: &[&str] = match kind {
        "Provider" => &["type", "url", "secret", "settings"],
        "NetworkMap" | "StorageMap" => &["provider", "map"],
        "Plan" => &[
            "description",
            "provider",
            "map",
            "targetNamespace",
            "type",
            "preserveStaticIPs",
            "targetPowerState",
            "targetLabels",
            "vms",
        ],
        "Migration" => &["plan", "cutover", "cancel"],
        "Secret" => return,
        other => panic!("unexpected kind {other}"),
    };
    for k in v["spec"].as_object().expect("spec").keys() {
        assert!(
            spec_keys.contains(&k.as_str()),
            "{kind}.spec.{k} is not a Forklift field"
        );
    }
    if kind == "Plan" {
        for vm in v["spec"]["vms"].as_array().expect("vms") {
            for k in vm.as_object().expect("vm").keys() {
                assert!(
                    ["id", "name", "targetName"].contains(&k.as_str()),
                    "plan.VM.{k}"
                );
            }
        }
    }
}

#[test]
fn providers_and_secret() {
    let p = plan(&PLAN);
    let secret = fk::provider_secret(
        &p,
        "svc-migrate@vsphere.local",
        "redacted-in-golden",
        &conn(),
    );
    let keys: Vec<&str> = secret["stringData"]
        .as_object()
        .expect("data")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["ca.crt", "cacert", "password", "user"],
        "Forklift reads user, password, and the CA as ca.crt (2.12 on) or cacert (2.10, 2.11); \
         never a thumbprint, never insecureSkipVerify"
    );
    assert_eq!(
        secret["stringData"]["ca.crt"],
        secret["stringData"]["cacert"]
    );
    let src = fk::source_provider(&p, &conn());
    assert_eq!(src["spec"]["url"], "https://vcenter.example.internal/sdk");
    let dst = fk::destination_provider(&p);
    // `secret` is required by the Provider CRD; Forklift's own host Provider has `secret: {}`.
    assert_eq!(
        dst["spec"],
        json!({ "type": "openshift", "url": "", "secret": {} })
    );
    for o in [&secret, &src, &dst] {
        assert_known_fields(o);
    }
    insta::assert_yaml_snapshot!("forklift-provider-secret", secret);
    insta::assert_yaml_snapshot!("forklift-provider-vsphere", src);
    insta::assert_yaml_snapshot!("forklift-provider-host", dst);
}

#[test]
fn existing_provider_is_referenced_not_written() {
    let text = PLAN.replacen(
        "backend = \"forklift\"",
        "backend = \"forklift\"\nforklift_provider = \"vcenter-prod\"",
        1,
    );
    let p = plan(&text);
    assert_eq!(fk::source_provider_name(&p), "vcenter-prod");
    let maps = fk::network_maps(&p);
    assert_eq!(
        maps[0]["spec"]["provider"]["source"]["name"],
        "vcenter-prod"
    );
}

#[test]
fn network_and_storage_maps() {
    let p = plan(&PLAN);
    let maps = fk::network_maps(&p);
    assert_eq!(maps.len(), 2, "an L2 map (multus) and an L3 map (pod)");
    assert_eq!(
        maps[0]["spec"]["map"][0]["source"],
        json!({ "name": "VLAN-210" })
    );
    assert_eq!(
        maps[0]["spec"]["map"][0]["destination"],
        json!({ "type": "multus", "name": "vlan-210", "namespace": "mig-golden" })
    );
    assert_eq!(
        maps[1]["spec"]["map"][0]["source"],
        json!({ "id": "network-12" })
    );
    assert_eq!(
        maps[1]["spec"]["map"][0]["destination"],
        json!({ "type": "pod" })
    );
    let sm = fk::storage_map(&p);
    assert_eq!(
        sm["spec"]["map"].as_array().expect("map").len(),
        2,
        "one entry per datastore"
    );
    assert_eq!(
        sm["spec"]["map"][1]["destination"]["storageClass"],
        "ceph-rbd-fast"
    );
    for o in maps.iter().chain([&sm]) {
        assert_known_fields(o);
    }
    insta::assert_yaml_snapshot!("forklift-networkmaps", maps);
    insta::assert_yaml_snapshot!("forklift-storagemap", sm);
}

#[test]
fn plans_group_by_depth_model_type_and_cutover_batch() {
    let p = plan(&PLAN);
    let groups = fk::plan_groups(&p);
    let shape: Vec<(String, usize, NetworkModel, Migration, Vec<String>)> = groups
        .iter()
        .map(|g| (g.name.clone(), g.depth, g.model, g.migration, g.vms.clone()))
        .collect();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        shape,
        vec![
            (
                "golden-w1-1".into(),
                0,
                NetworkModel::L2,
                Migration::Warm,
                s(&["db-01"])
            ),
            (
                "golden-w1-2".into(),
                0,
                NetworkModel::L3,
                Migration::Cold,
                s(&["worker-01"])
            ),
            // max_parallel_cutovers = 2: three VMs at depth 1 are two batches.
            (
                "golden-w1-3".into(),
                1,
                NetworkModel::L2,
                Migration::Warm,
                s(&["app-01", "app-02"])
            ),
            (
                "golden-w1-4".into(),
                1,
                NetworkModel::L2,
                Migration::Warm,
                s(&["app-03"])
            ),
        ]
    );
    let plans: Vec<Value> = groups
        .iter()
        .map(|g| fk::forklift_plan(&p, g, &ids(&p)).expect("ids"))
        .collect();
    for o in &plans {
        assert_known_fields(o);
        assert_eq!(o["spec"]["targetPowerState"], "off");
    }
    assert_eq!(plans[0]["spec"]["preserveStaticIPs"], true);
    assert_eq!(plans[1]["spec"]["preserveStaticIPs"], false);
    assert_eq!(plans[1]["spec"]["map"]["network"]["name"], "golden-l3");
    assert_eq!(
        plans[2]["spec"]["vms"][1],
        json!({ "id": "vm-1003", "name": "app-02", "targetName": "app-02" })
    );
    insta::assert_yaml_snapshot!("forklift-plan-l2-warm", plans[0]);
    insta::assert_yaml_snapshot!("forklift-plan-l3-cold", plans[1]);
}

#[test]
fn plan_size_splits_plans() {
    let text = PLAN.replacen(
        "backend = \"forklift\"",
        "backend = \"forklift\"\nforklift_plan_size = 1",
        1,
    );
    let p = plan(&text);
    let groups = fk::plan_groups(&p);
    assert_eq!(groups.len(), 5);
    assert!(groups.iter().all(|g: &PlanGroup| g.vms.len() == 1));
}

#[test]
fn a_vm_vcenter_does_not_know_is_an_error() {
    let p = plan(&PLAN);
    let g = &fk::plan_groups(&p)[0];
    let e = fk::forklift_plan(&p, g, &|_| None).expect_err("no id");
    assert!(e.to_string().contains("db-01"), "{e}");
}

#[test]
fn migrations() {
    let p = plan(&PLAN);
    let groups = fk::plan_groups(&p);
    let warm = fk::migration(&p, &groups[0], 1, Some("2026-12-05T22:00:00Z"), &[]);
    let retry = fk::migration(
        &p,
        &groups[2],
        2,
        None,
        &[("vm-1002".into(), "app-01".into())],
    );
    assert_eq!(retry["metadata"]["name"], "golden-w1-3-m2");
    assert_eq!(
        retry["spec"]["cancel"],
        json!([{ "id": "vm-1002", "name": "app-01" }])
    );
    for o in [&warm, &retry] {
        assert_known_fields(o);
    }
    insta::assert_yaml_snapshot!("forklift-migration-warm", warm);
    insta::assert_yaml_snapshot!("forklift-migration-retry", retry);
}

/// `plan check` on the Forklift backend: `[source] shutdown` is not applied (Forklift
/// always shuts the guest down through VMware Tools: a warning), and an L3 VM with two NICs
/// is refused (both map to the pod network: Forklift's `VMMultiplePodNetworkMappings`).
#[test]
fn plan_check_warns_of_shutdown_and_refuses_l3_vms_with_two_nics() {
    let codes = |text: &str| -> Vec<(String, wavelift::plan::Severity)> {
        check_str(text, "golden.toml")
            .located()
            .iter()
            .map(|d| (d.code.to_string(), d.severity))
            .collect()
    };
    let base = codes(&PLAN);
    assert!(
        !base
            .iter()
            .any(|(c, _)| c == "forklift-ignores-shutdown" || c == "forklift-l3-multiple-nics"),
        "{base:?}"
    );
    let hard = PLAN.replacen(
        "power_off = \"vsphere-api\"",
        "power_off = \"vsphere-api\"\nshutdown = \"hard\"",
        1,
    );
    assert!(codes(&hard).contains(&(
        "forklift-ignores-shutdown".to_string(),
        wavelift::plan::Severity::Warning
    )));
    let on_cdi = hard.replacen("backend = \"forklift\"", "", 1);
    assert!(!codes(&on_cdi)
        .iter()
        .any(|(c, _)| c == "forklift-ignores-shutdown"));
    let two = PLAN.replacen(
        "nics = [{ network = \"vlan-310\", mac = \"00:50:56:ab:cd:05\" }]",
        "nics = [{ network = \"vlan-310\", mac = \"00:50:56:ab:cd:05\" }, { network = \"vlan-210\", mac = \"00:50:56:ab:cd:06\" }]",
        1,
    );
    assert_ne!(two, *PLAN);
    assert!(codes(&two).contains(&(
        "forklift-l3-multiple-nics".to_string(),
        wavelift::plan::Severity::Error
    )));
}

/// `plan init` from an RVTools export writes each network's vSphere port group as its
/// `source_network` (what Forklift's NetworkMap needs), so the skeleton on
/// `backend = "forklift"` has no `forklift-network-unmapped`.
#[test]
fn plan_init_writes_source_network_from_rvtools() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("RVTools_tabvInfo.csv"),
        "VM,Powerstate,Template,CPUs,Memory,NICs,Disks,Primary IP Address,Network #1,Firmware,OS according to the configuration file,VM UUID\n\
         web-01,poweredOn,False,2,4096,1,1,192.0.2.10,PG-WEB-120,bios,Red Hat Enterprise Linux 9 (64-bit),4210aaaa-bbbb-cccc-dddd-000000000001\n",
    )
    .expect("vInfo");
    std::fs::write(
        dir.path().join("RVTools_tabvNetwork.csv"),
        "VM,Adapter,Network,Mac Address,IPv4 Address\nweb-01,Vmxnet3,PG-WEB-120,00:50:56:80:00:01,192.0.2.10\n",
    )
    .expect("vNetwork");
    let inv = wavelift::inventory::load(dir.path()).expect("RVTools");
    let toml = wavelift::inventory::plan_skeleton(&inv, &Default::default());
    assert!(toml.contains("source_network = \"PG-WEB-120\""), "{toml}");
    let on_forklift = toml.replacen(
        "network_model = \"l2\"",
        "network_model = \"l2\"\nbackend = \"forklift\"",
        1,
    );
    assert_ne!(on_forklift, toml);
    let checked = check_str(&on_forklift, "init.toml");
    assert!(
        !checked
            .located()
            .iter()
            .any(|d| d.code == "forklift-network-unmapped"),
        "{on_forklift}"
    );
}

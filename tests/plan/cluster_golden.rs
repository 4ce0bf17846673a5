//! Golden YAML of every object wavelift builds from a plan. A change to a builder shows up
//! here as a snapshot diff to review (`cargo insta review`, or INSTA_UPDATE=always).

use crate::common;
use std::sync::LazyLock;
use wavelift::cluster::build;
use wavelift::plan::{check_str, Plan};

static PLAN: LazyLock<String> =
    LazyLock::new(|| common::plan_header("golden", "mig-golden", "") + PLAN_BODY);

const PLAN_BODY: &str = r#"
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

[[network]]
name = "vlan-310"
vlan = 310
provider = "ovn-localnet"
physical_network = "physnet-dc1"
mtu = 1500
owner = "netsec"

[[network]]
name = "vlan-410"
vlan = 410
provider = "ovn-localnet"
owner = "netsec"

[[wave]]
name = "w1"
window = { start = 2026-12-05T22:00:00Z, end = 2026-12-06T04:00:00Z }

[[vm]]
name = "db-01"
wave = "w1"
source_id = "4207c1b2-5f0e-4c1e-9a7b-0123456789a1"
cpu = 4
memory = "16Gi"
nics = [
  { network = "vlan-210", ip = "192.0.2.15", mac = "00:50:56:ab:cd:01", model = "virtio" },
  { network = "vlan-310", ip = "198.51.100.15", mac = "00:50:56:ab:cd:11" },
]
disks = [
  { backing_file = "[ds1] db-01/db-01.vmdk", size = "80Gi" },
  { backing_file = "[ds1] db-01/db-01_1.vmdk", size = "1Ti", storage_class = "ceph-rbd-fast" },
]

[[vm]]
name = "worker-01"
wave = "w1"
source_id = "4207c1b2-5f0e-4c1e-9a7b-0123456789a2"
cpu = 2
memory = "4Gi"
network_model = "l3"
nics = [{ network = "vlan-210", ip = "192.0.2.40", mac = "00:50:56:ab:cd:02" }]
disks = [{ backing_file = "[ds1] worker-01/worker-01.vmdk", size = "40Gi" }]

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

#[test]
fn network_attachments_per_provider() {
    let p = plan(&PLAN);
    for net in p.networks.iter().filter(|n| n.name.as_str() != "vlan-410") {
        let nad = build::network_attachment(&p, net);
        // The CNI config is a JSON string: check it parses, then snapshot it pretty.
        let cfg: serde_json::Value =
            serde_json::from_str(&nad.spec.config).expect("CNI config is JSON");
        assert_eq!(cfg["cniVersion"], "0.3.1");
        insta::assert_yaml_snapshot!(format!("nad-{}", net.provider.as_str()), (&nad, cfg));
    }
}

#[test]
fn bridge_attachment_keeps_untagged_traffic_away_from_the_vm() {
    let p = plan(&PLAN);
    let net = p.network("vlan-210").expect("network");
    let cfg = build::cni_config(&p, net);
    assert_eq!(cfg["vlan"], 210);
    // bridge.go: the default (false from plugins v1.8.0, true from v1.3.0 to v1.7.x) is
    // written out, so no plugin version leaves the port in VLAN 1.
    assert_eq!(cfg["preserveDefaultVlan"], false);
}

#[test]
fn ovn_localnet_without_physical_network_maps_by_its_name() {
    let p = plan(&PLAN);
    let net = p.network("vlan-410").expect("network");
    let nad = build::network_attachment(&p, net);
    let cfg: serde_json::Value = serde_json::from_str(&nad.spec.config).expect("JSON");
    assert!(
        cfg.get("physicalNetworkName").is_none(),
        "no physical_network: no physicalNetworkName (older ovn-kubernetes ignore it anyway)"
    );
    assert_eq!(
        cfg["name"], "vlan-410",
        "OVN maps the localnet by this name"
    );
    assert_eq!(cfg["vlanID"], 410);
    insta::assert_yaml_snapshot!("nad-ovn-localnet-by-name", (&nad, cfg));
}

#[test]
fn calico_l2_is_refused_by_plan_check() {
    let text = PLAN.replacen(
        "provider = \"ovn-localnet\"\nowner = \"netsec\"\n\n[[wave]]",
        "provider = \"calico-l2\"\nowner = \"netsec\"\n\n[[wave]]",
        1,
    );
    assert_ne!(text, *PLAN);
    let c = check_str(&text, "golden.toml");
    assert!(c.plan.is_none());
    assert!(
        c.located()
            .iter()
            .any(|d| d.code == "unsupported-provider" && d.message.contains("calico-l2")),
        "{:?}",
        c.located()
    );
}

#[test]
fn data_volumes_vddk() {
    let p = plan(&PLAN);
    let vm = p.vm("db-01").expect("vm");
    let dvs = build::data_volumes(&p, vm);
    assert_eq!(dvs.len(), 2);
    insta::assert_yaml_snapshot!("dv-vddk", dvs);
}

#[test]
fn data_volume_http() {
    let text = std::fs::read_to_string("plans/http-images.toml").expect("http plan");
    let p = plan(&text);
    let vm = p.vm("wiki-db-01").expect("vm");
    insta::assert_yaml_snapshot!("dv-http", build::data_volumes(&p, vm));
}

#[test]
fn l2_vm_keeps_mac_on_multus_bridge_without_pod_network() {
    let p = plan(&PLAN);
    let vm = build::virtual_machine(&p, p.vm("db-01").expect("vm"));
    let t = &vm.spec.template["spec"];
    assert!(t["networks"]
        .as_array()
        .expect("networks")
        .iter()
        .all(|n| n.get("pod").is_none()));
    assert_eq!(
        t["domain"]["devices"]["interfaces"][0]["macAddress"],
        "00:50:56:ab:cd:01"
    );
    assert!(
        vm.spec.template["metadata"].get("annotations").is_none(),
        "no live-migration annotation needed"
    );
    insta::assert_yaml_snapshot!("vm-l2", vm);
}

#[test]
fn l3_vm_uses_pod_network_with_masquerade() {
    let p = plan(&PLAN);
    let vm = build::virtual_machine(&p, p.vm("worker-01").expect("vm"));
    assert_eq!(
        vm.spec.template["spec"]["networks"][0]["pod"],
        serde_json::json!({})
    );
    insta::assert_yaml_snapshot!("vm-l3", vm);
}

#[test]
fn live_migration_object() {
    let p = plan(&PLAN);
    insta::assert_yaml_snapshot!("vmim", build::migration(&p, p.vm("db-01").expect("vm")));
}

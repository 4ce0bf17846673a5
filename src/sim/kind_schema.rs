//! The known-field schema of every served kind: the built-in kinds' ([`super::schema`]) and
//! Forklift's as this installation's CRDs declare them ([`super::forklift_crd`]: an older
//! Forklift's Plan lacks `targetPowerState`). Apart from both so that neither needs the
//! other.

use super::resources::{Crds, ForkliftCrds, ResourceDef, FORKLIFT_GROUP};
use super::schema::Shape;

/// The known-field schema of a kind as this installation's CRDs declare it.
pub fn for_kind_in(res: &ResourceDef, crds: &Crds) -> Shape {
    if res.group == FORKLIFT_GROUP {
        let f = crds.forklift.clone().unwrap_or_default();
        return super::forklift_crd::shape(res, &f);
    }
    super::schema::builtin(res)
}

/// The known-field schema of a kind (Forklift's at its newest).
pub fn for_kind(res: &ResourceDef) -> Shape {
    if res.group == FORKLIFT_GROUP {
        return super::forklift_crd::shape(res, &ForkliftCrds::default());
    }
    super::schema::builtin(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every object wavelift writes passes the (sim's copy of) Forklift's structural schema
    /// with no unknown field (what `fieldValidation=Strict` refuses) and its validation rules.
    #[test]
    fn objects_pass_the_crd_schema_strictly() {
        use crate::cluster::forklift::*;
        use crate::cluster::forklift_types::API_VERSION;
        use crate::sim::{forklift_crd, resources, schema};
        let text = r#"
[plan]
name = "p"
namespace = "mig"
backend = "forklift"
[source]
type = "vsphere"
url = "https://vc.example.internal"
credentials_secret = "vsphere-creds"
thumbprint = "20:6C:8A:1F:3B:94:D2:77:0E:5C:A1:B8:49:33:F0:6E:12:9D:C4:A3"
vddk_init_image = "registry.example.internal/vddk:8"
power_off = "vsphere-api"
[defaults]
storage_class = "sim-standard"
access_mode = "ReadWriteOnce"
checks = ["icmp"]
[[network]]
name = "vlan-210"
vlan = 210
provider = "bridge"
bridge = "br-trunk"
cidr = "192.0.2.0/24"
owner = "netsec"
source_network = "VLAN-210"
[[wave]]
name = "w1"
migration = "warm"
[[vm]]
name = "a"
wave = "w1"
source_id = "4207c1b2-5f0e-4c1e-9a7b-0123456789a1"
cpu = 1
memory = "1Gi"
nics = [{ network = "vlan-210", ip = "192.0.2.15", mac = "00:50:56:ab:cd:01" }]
disks = [{ backing_file = "[ds1] a/a.vmdk", size = "1Gi" }]
[[vm]]
name = "b"
wave = "w1"
source_id = "4207c1b2-5f0e-4c1e-9a7b-0123456789a2"
cpu = 1
memory = "1Gi"
network_model = "l3"
nics = [{ network = "vlan-210", mac = "00:50:56:ab:cd:02" }]
disks = [{ backing_file = "[ds1] b/b.vmdk", size = "1Gi" }]
"#;
        let plan = crate::plan::check_str(text, "t.toml").plan.expect("valid");
        let conn = SourceConn {
            url: "https://vc.example.internal/sdk".into(),
            ca_pem: pem(b"x"),
        };
        let mut objs = vec![source_provider(&plan, &conn), destination_provider(&plan)];
        objs.extend(network_maps(&plan));
        objs.push(storage_map(&plan));
        let groups = plan_groups(&plan);
        assert_eq!(groups.len(), 2, "L2 and L3 apart");
        for g in &groups {
            objs.push(forklift_plan(&plan, g, &|n| Some(format!("vm-{n}"))).expect("ids"));
            objs.push(migration(
                &plan,
                g,
                2,
                Some("2026-12-05T22:00:00Z"),
                &[("vm-a".into(), "a".into())],
            ));
        }
        let crds = resources::Crds::default();
        for o in &objs {
            let kind = o["kind"].as_str().expect("kind");
            let res = resources::find_kind(API_VERSION, kind).expect("served kind");
            let shape = for_kind_in(res, &crds);
            assert_eq!(
                schema::unknown_fields(&shape, o),
                Vec::<String>::new(),
                "{kind}"
            );
            assert!(forklift_crd::validate(res, o).is_empty(), "{kind}: {o}");
        }
    }
}

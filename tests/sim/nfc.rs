//! The ESXi host's NFC connection limit in the rehearsal cluster (`nfc_per_host`): every
//! importer reads its disk through one NFC connection to its source VM's host; one more
//! than the host serves fails to open its disk, exits, and CDI restarts it in place until
//! the host has room. DataVolumes go straight through the kube-rs client; waits are a
//! watch with an overall deadline.

use futures::StreamExt;
use kube::api::{Api, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::ResourceExt;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use wavelift::cluster::build;
use wavelift::cluster::resources::{DataVolume, DvPhase};
use wavelift::plan::Plan;
use wavelift::sim::controllers::rehearsal::Rehearsal;
use wavelift::sim::controllers::scenario::Scenario;

const LIMIT: Duration = Duration::from_secs(60);

/// Four VMs on ESXi host `esx-01` (`a1`–`a4`) and four without a host (`n1`–`n4`), one
/// 200 GiB disk each (1000 simulated seconds at the default 200 MiB/s: the transfers of
/// DataVolumes created together overlap).
fn plan() -> Plan {
    let mut text = super::common::plan_header("nfc", "mig-nfc", "");
    text.push_str(
        r#"
[defaults]
storage_class = "sim-standard"

[[network]]
name = "vlan-210"
vlan = 210
provider = "bridge"
bridge = "br-trunk"
cidr = "192.0.2.0/24"

[[wave]]
name = "w1"
max_parallel_imports = 8
max_imports_per_host = 2
"#,
    );
    for (i, name) in ["a1", "a2", "a3", "a4", "n1", "n2", "n3", "n4"]
        .iter()
        .enumerate()
    {
        let host = if name.starts_with('a') {
            "host = \"esx-01\"\n"
        } else {
            ""
        };
        text.push_str(&format!(
            r#"
[[vm]]
name = "{name}"
wave = "w1"
source_id = "4207c1b2-5f0e-4c1e-9a7b-0123456789{i:02x}"
{host}cpu = 1
memory = "1Gi"
nics = [{{ network = "vlan-210", ip = "192.0.2.{ip}", mac = "00:50:56:ab:cd:{i:02x}" }}]
disks = [{{ backing_file = "[ds1] {name}/{name}.vmdk", size = "200Gi" }}]
"#,
            ip = 20 + i
        ));
    }
    let checked = wavelift::plan::check_str(&text, "nfc.toml");
    checked
        .plan
        .unwrap_or_else(|| panic!("valid plan: {:?}", checked.diagnostics))
}

async fn start(plan: &Plan) -> Rehearsal {
    let mut scenario = Scenario::from_plan(plan);
    scenario.speed = 2000.0;
    scenario.nfc_per_host = Some(2);
    assert_eq!(
        scenario.host_of("a1"),
        Some("esx-01"),
        "from the plan's `host`"
    );
    assert_eq!(scenario.host_of("n1"), None);
    Rehearsal::start(scenario, 0).await.expect("rehearsal")
}

/// Creates the DataVolumes of `vms` at once and watches them until every one succeeded:
/// every DataVolume as last seen, and the `Running` messages each showed with a restart.
async fn import_all(
    r: &Rehearsal,
    plan: &Plan,
    vms: &[&str],
) -> (
    BTreeMap<String, DataVolume>,
    BTreeMap<String, BTreeSet<String>>,
) {
    let ns = plan.meta.namespace.as_str();
    let dvs: Api<DataVolume> = Api::namespaced(r.client(), ns);
    let mut stream = watcher(dvs.clone(), watcher::Config::default())
        .applied_objects()
        .boxed();
    let mut names = BTreeSet::new();
    for vm in vms {
        for dv in build::data_volumes(plan, plan.vm(vm).expect("vm")) {
            names.insert(dv.name_any());
            dvs.create(&PostParams::default(), &dv).await.expect("DV");
        }
    }
    let mut last: BTreeMap<String, DataVolume> = BTreeMap::new();
    let mut restarted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let watch = async {
        while let Some(item) = stream.next().await {
            let dv = item.expect("watch");
            let name = dv.name_any();
            if let Some(st) = &dv.status {
                if st.restart_count > 0 {
                    if let Some(m) = st
                        .conditions
                        .iter()
                        .find(|c| c.type_ == "Running" && c.status == "False")
                        .and_then(|c| {
                            (c.reason.as_deref() == Some("Error")).then_some(c.message.clone()?)
                        })
                    {
                        restarted.entry(name.clone()).or_default().insert(m);
                    }
                }
            }
            last.insert(name, dv);
            let done = names.iter().all(|n| {
                last.get(n)
                    .and_then(|d| d.status.as_ref()?.phase.clone())
                    .is_some_and(|p| p == DvPhase::Succeeded)
            });
            if done {
                return;
            }
        }
        panic!("the DataVolume watch ended");
    };
    if tokio::time::timeout(LIMIT, watch).await.is_err() {
        panic!(
            "not every DataVolume succeeded within {LIMIT:?}: {:?}",
            last.values()
                .map(|d| (d.name_any(), d.status.clone()))
                .collect::<Vec<_>>()
        );
    }
    (last, restarted)
}

/// Four transfers from one host that serves two: never more than two at once there, the
/// others refused with the NFC limit error and restarted in place, and all succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_host_serves_nfc_per_host_transfers_and_refused_importers_restart() {
    let plan = plan();
    let r = start(&plan).await;
    let (dvs, restarted) = import_all(&r, &plan, &["a1", "a2", "a3", "a4"]).await;
    let imports = &r.controllers.imports;
    assert_eq!(
        imports.host_peaks().get("esx-01"),
        Some(&2),
        "never more than nfc_per_host at once on the host"
    );
    assert_eq!(imports.host_active().get("esx-01"), Some(&0), "all closed");
    assert!(imports.nfc_refusals() >= 1, "{}", imports.nfc_refusals());
    // A refused importer shows the NFC error in its DataVolume's `Running` condition and a
    // restart; the message names the host.
    let nfc: Vec<(&String, &String)> = restarted
        .iter()
        .flat_map(|(dv, ms)| ms.iter().map(move |m| (dv, m)))
        .filter(|(_, m)| m.contains("The host esx-01 has reached its NFC connection limit"))
        .collect();
    assert!(!nfc.is_empty(), "no NFC refusal seen: {restarted:?}");
    for (_, m) in &nfc {
        assert!(
            m.starts_with("Unable to connect to vddk data source: "),
            "{m}"
        );
    }
    // Restarted in place: the DataVolume that was refused still counts its restarts
    // after it succeeded, and none ended `Failed`.
    for (dv, _) in &nfc {
        let st = dvs[*dv].status.as_ref().expect("status");
        assert_eq!(st.phase, Some(DvPhase::Succeeded));
        assert!(st.restart_count >= 1, "{dv}: {st:?}");
    }
}

/// VMs without a host are not limited: four transfers run at once, none refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_of_vms_without_a_host_are_not_limited() {
    let plan = plan();
    let r = start(&plan).await;
    let (dvs, restarted) = import_all(&r, &plan, &["n1", "n2", "n3", "n4"]).await;
    let imports = &r.controllers.imports;
    assert_eq!(imports.nfc_refusals(), 0);
    assert!(
        imports.host_peaks().is_empty(),
        "{:?}",
        imports.host_peaks()
    );
    assert!(restarted.is_empty(), "{restarted:?}");
    assert!(
        imports.peak() > 2,
        "more than nfc_per_host ran at once: peak {}",
        imports.peak()
    );
    for (name, dv) in &dvs {
        let st = dv.status.as_ref().expect("status");
        assert_eq!(st.restart_count, 0, "{name}: {st:?}");
    }
}

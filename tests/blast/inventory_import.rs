//! `plan init`: RVTools xlsx (written here with rust_xlsxwriter), RVTools per-tab CSV and govc
//! JSON → a plan skeleton that `plan check` accepts with no error; malformed rows reported
//! with their location and skipped.

use rust_xlsxwriter::Workbook;
use std::path::Path;
use wavelift::blast::{run_blast, BlastOptions, Flag};
use wavelift::inventory::{load, plan_init};
use wavelift::plan::{check_str, NetworkModel};

const VINFO: &[&str] = &[
    "VM",
    "Powerstate",
    "Template",
    "DNS Name",
    "CPUs",
    "Memory",
    "Primary IP Address",
    "Network #1",
    "Annotation",
    "owner",
    "Backup status",
    "Datacenter",
    "Cluster",
    "VM UUID",
    "VI SDK Server",
];

fn vinfo_rows() -> Vec<Vec<String>> {
    let r = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        r(&[
            "Pay-DB_01",
            "poweredOn",
            "False",
            "pay-db-01.corp.example.internal",
            "4",
            "16384",
            "192.0.2.15",
            "PG-APP-210",
            "payments db",
            "payments",
            "daily",
            "DC1",
            "CL-A",
            "4207c1b2-5f0e-4c1e-9a7b-000000000001",
            "vcenter.example.internal",
        ]),
        r(&[
            "pay-app-01",
            "poweredOn",
            "False",
            "pay-app-01.corp.example.internal",
            "2",
            "8192",
            "192.0.2.16",
            "PG-APP-210",
            "",
            "payments",
            "daily",
            "DC1",
            "CL-A",
            "4207c1b2-5f0e-4c1e-9a7b-000000000002",
            "vcenter.example.internal",
        ]),
        r(&[
            "pay-off-01",
            "poweredOff",
            "False",
            "",
            "2",
            "4096",
            "",
            "PG-APP-210",
            "",
            "",
            "",
            "DC1",
            "CL-A",
            "4207c1b2-5f0e-4c1e-9a7b-000000000003",
            "vcenter.example.internal",
        ]),
        r(&[
            "tpl-rhel9",
            "poweredOff",
            "True",
            "",
            "2",
            "4096",
            "",
            "",
            "",
            "",
            "",
            "DC1",
            "CL-A",
            "4207c1b2-5f0e-4c1e-9a7b-000000000009",
            "vcenter.example.internal",
        ]),
        r(&[
            "bad-cpu",
            "poweredOn",
            "False",
            "",
            "four",
            "4096",
            "192.0.2.99",
            "PG-APP-210",
            "",
            "",
            "",
            "DC1",
            "CL-A",
            "4207c1b2-5f0e-4c1e-9a7b-000000000008",
            "vcenter.example.internal",
        ]),
        r(&[
            "dmz-web-01",
            "poweredOn",
            "False",
            "",
            "2",
            "4096",
            "203.0.113.20",
            "PG-DMZ",
            "",
            "dmz-team",
            "",
            "DC1",
            "CL-B",
            "4207c1b2-5f0e-4c1e-9a7b-000000000004",
            "vcenter.example.internal",
        ]),
        r(&[
            "noid-01",
            "poweredOn",
            "False",
            "",
            "1",
            "2048",
            "192.0.2.30",
            "PG-APP-210",
            "",
            "",
            "",
            "DC1",
            "CL-A",
            "",
            "vcenter.example.internal",
        ]),
        r(&[
            "pay-dup-01",
            "poweredOn",
            "False",
            "",
            "1",
            "2048",
            "192.0.2.16",
            "PG-APP-210",
            "",
            "",
            "",
            "DC1",
            "CL-A",
            "4207c1b2-5f0e-4c1e-9a7b-000000000005",
            "vcenter.example.internal",
        ]),
    ]
}

const VNETWORK: &[&str] = &[
    "VM",
    "NIC label",
    "Adapter",
    "Network",
    "Switch",
    "Connected",
    "Mac Address",
    "IPv4 Address",
    "IPv6 Address",
    "VM UUID",
];

fn vnetwork_rows() -> Vec<Vec<String>> {
    let r = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        r(&[
            "Pay-DB_01",
            "Network adapter 1",
            "Vmxnet3",
            "PG-APP-210",
            "dvs01",
            "True",
            "00:50:56:80:00:01",
            "192.0.2.15",
            "fe80::250:56ff:fe80:1",
            "4207c1b2-5f0e-4c1e-9a7b-000000000001",
        ]),
        r(&[
            "pay-app-01",
            "Network adapter 1",
            "Vmxnet3",
            "PG-APP-210",
            "dvs01",
            "True",
            "00:50:56:80:00:02",
            "192.0.2.16",
            "",
            "4207c1b2-5f0e-4c1e-9a7b-000000000002",
        ]),
        r(&[
            "pay-app-01",
            "Network adapter 2",
            "Vmxnet3",
            "PG-APP-210",
            "dvs01",
            "True",
            "zz:zz",
            "",
            "",
            "4207c1b2-5f0e-4c1e-9a7b-000000000002",
        ]),
        r(&[
            "pay-off-01",
            "Network adapter 1",
            "Vmxnet3",
            "PG-APP-210",
            "dvs01",
            "False",
            "00:50:56:80:00:03",
            "",
            "",
            "4207c1b2-5f0e-4c1e-9a7b-000000000003",
        ]),
        r(&[
            "dmz-web-01",
            "Network adapter 1",
            "E1000e",
            "PG-DMZ",
            "dvs01",
            "True",
            "00:50:56:80:00:04",
            "203.0.113.20",
            "",
            "4207c1b2-5f0e-4c1e-9a7b-000000000004",
        ]),
        r(&[
            "ghost-vm",
            "Network adapter 1",
            "Vmxnet3",
            "PG-APP-210",
            "dvs01",
            "True",
            "00:50:56:80:00:0f",
            "192.0.2.77",
            "",
            "4207c1b2-5f0e-4c1e-9a7b-0000000000ff",
        ]),
        r(&[
            "pay-dup-01",
            "Network adapter 1",
            "Vmxnet3",
            "PG-APP-210",
            "dvs01",
            "True",
            "00:50:56:80:00:05",
            "192.0.2.16",
            "",
            "4207c1b2-5f0e-4c1e-9a7b-000000000005",
        ]),
    ]
}

const VDISK: &[&str] = &["VM", "Disk", "Capacity MiB", "Disk Path", "Thin", "VM UUID"];

fn vdisk_rows() -> Vec<Vec<String>> {
    let r = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        r(&[
            "Pay-DB_01",
            "Hard disk 1",
            "81920",
            "[ds1] Pay-DB_01/Pay-DB_01.vmdk",
            "True",
            "4207c1b2-5f0e-4c1e-9a7b-000000000001",
        ]),
        r(&[
            "Pay-DB_01",
            "Hard disk 2",
            "204800",
            "[ds1] Pay-DB_01/Pay-DB_01_1.vmdk",
            "True",
            "4207c1b2-5f0e-4c1e-9a7b-000000000001",
        ]),
        r(&[
            "pay-app-01",
            "Hard disk 1",
            "40960",
            "[ds2] pay-app-01/pay-app-01.vmdk",
            "True",
            "4207c1b2-5f0e-4c1e-9a7b-000000000002",
        ]),
        r(&[
            "pay-off-01",
            "Hard disk 1",
            "lots",
            "[ds2] pay-off-01/pay-off-01.vmdk",
            "True",
            "4207c1b2-5f0e-4c1e-9a7b-000000000003",
        ]),
        r(&[
            "dmz-web-01",
            "Hard disk 1",
            "20480",
            "[ds3] dmz-web-01/dmz-web-01.vmdk",
            "True",
            "4207c1b2-5f0e-4c1e-9a7b-000000000004",
        ]),
        r(&[
            "pay-dup-01",
            "Hard disk 1",
            "10240",
            "[ds3] pay-dup-01/pay-dup-01.vmdk",
            "True",
            "4207c1b2-5f0e-4c1e-9a7b-000000000005",
        ]),
    ]
}

const DVPORT: &[&str] = &["Port", "Switch", "Type", "VLAN"];

fn dvport_rows() -> Vec<Vec<String>> {
    vec![
        vec![
            "PG-APP-210".into(),
            "dvs01".into(),
            "earlyBinding".into(),
            "210".into(),
        ],
        vec![
            "PG-DMZ".into(),
            "dvs01".into(),
            "earlyBinding".into(),
            "0-4094".into(),
        ],
        vec![
            "PG-BAD".into(),
            "dvs01".into(),
            "earlyBinding".into(),
            "vlan?".into(),
        ],
    ]
}

fn sheet(wb: &mut Workbook, name: &str, headers: &[&str], rows: &[Vec<String>]) {
    let ws = wb.add_worksheet();
    ws.set_name(name).expect("name");
    for (c, h) in headers.iter().enumerate() {
        ws.write_string(0, c as u16, *h).expect("header");
    }
    for (r, row) in rows.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            let (r, c) = (r as u32 + 1, c as u16);
            // Numbers as numbers, as RVTools writes them.
            match v.parse::<f64>() {
                Ok(n) if !v.is_empty() && !v.contains(':') => ws.write_number(r, c, n).map(|_| ()),
                _ => ws.write_string(r, c, v).map(|_| ()),
            }
            .expect("cell");
        }
    }
}

fn write_xlsx(path: &Path) {
    let mut wb = Workbook::new();
    sheet(&mut wb, "vInfo", VINFO, &vinfo_rows());
    sheet(&mut wb, "vNetwork", VNETWORK, &vnetwork_rows());
    sheet(&mut wb, "vDisk", VDISK, &vdisk_rows());
    sheet(&mut wb, "dvPort", DVPORT, &dvport_rows());
    // vNIC is the hosts' physical NICs: present in real exports, must be ignored.
    sheet(
        &mut wb,
        "vNIC",
        &["Host", "Network Device", "MAC", "Switch"],
        &[vec![
            "esx01".into(),
            "vmnic0".into(),
            "00:50:56:80:ff:01".into(),
            "vSwitch0".into(),
        ]],
    );
    wb.save(path).expect("save xlsx");
}

fn write_csv_tabs(dir: &Path) {
    let tab = |name: &str, headers: &[&str], rows: &[Vec<String>]| {
        // Semicolon-delimited with a BOM, as some locales export.
        let mut s = String::from("\u{feff}");
        s.push_str(&headers.join(";"));
        s.push('\n');
        for r in rows {
            s.push_str(&r.join(";"));
            s.push('\n');
        }
        std::fs::write(dir.join(format!("RVTools_tab{name}.csv")), s).expect("write csv");
    };
    tab("vInfo", VINFO, &vinfo_rows());
    tab("vNetwork", VNETWORK, &vnetwork_rows());
    tab("vDisk", VDISK, &vdisk_rows());
    tab("dvPort", DVPORT, &dvport_rows());
}

fn assert_common(toml: &str, warnings: &[String], loc_bad_cpu: &str) {
    let checked = check_str(toml, "init.toml");
    assert_eq!(
        checked.errors(),
        0,
        "plan init output must pass plan check:\n{toml}\n{:#?}",
        checked.located()
    );
    let plan = checked.plan.expect("plan");
    let names: Vec<&str> = plan.vms.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "pay-db-01",
            "pay-app-01",
            "pay-off-01",
            "dmz-web-01",
            "pay-dup-01"
        ]
    );
    let db = plan.vm("pay-db-01").expect("db");
    assert_eq!(
        db.source_id.as_ref().map(|s| s.as_str()),
        Some("4207c1b2-5f0e-4c1e-9a7b-000000000001")
    );
    assert_eq!(db.cpu, 4);
    assert_eq!(db.memory.text, "16Gi");
    assert_eq!(db.owner.as_deref(), Some("payments"));
    assert_eq!(db.nics.len(), 1);
    assert_eq!(db.nics[0].mac.to_string(), "00:50:56:80:00:01");
    assert_eq!(
        db.nics[0].ip.as_ref().map(|i| i.to_string()),
        Some("192.0.2.15".into())
    );
    let disks: Vec<(String, String)> = db
        .disks
        .iter()
        .map(|d| {
            (
                d.backing_file
                    .as_ref()
                    .map(|b| b.value.clone())
                    .unwrap_or_default(),
                d.size.text.clone(),
            )
        })
        .collect();
    assert_eq!(
        disks,
        [
            (
                "[ds1] Pay-DB_01/Pay-DB_01.vmdk".to_string(),
                "80Gi".to_string()
            ),
            (
                "[ds1] Pay-DB_01/Pay-DB_01_1.vmdk".to_string(),
                "200Gi".to_string()
            )
        ]
    );
    let net = plan.network("pg-app-210").expect("network from port group");
    assert_eq!(net.vlan.as_ref().map(|v| v.value), Some(210));
    // Shared address: kept on the first VM, left out (and said) on the second.
    assert!(plan.vm("pay-dup-01").expect("dup").nics[0].ip.is_none());
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("pay-dup-01") && w.contains("192.0.2.16")),
        "{warnings:#?}"
    );
    // No known IP: a warning and a comment.
    assert!(
        warnings
            .iter()
            .any(|w| w == "VM `pay-off-01` has no known IP"),
        "{warnings:#?}"
    );
    assert!(toml.contains("#   - pay-off-01"), "{toml}");
    // Malformed rows: reported with their location, skipped.
    assert!(
        warnings
            .iter()
            .any(|w| w.contains(loc_bad_cpu) && w.contains("bad-cpu")),
        "{warnings:#?}"
    );
    assert!(
        warnings.iter().any(|w| w.contains("ghost-vm")),
        "{warnings:#?}"
    );
    assert!(
        warnings.iter().any(|w| w.contains("zz:zz")),
        "{warnings:#?}"
    );
    assert!(warnings.iter().any(|w| w.contains("lots")), "{warnings:#?}");
    assert!(
        warnings.iter().any(|w| w.contains("PG-BAD")),
        "{warnings:#?}"
    );
    assert!(
        warnings.iter().any(|w| w.contains("noid-01")),
        "{warnings:#?}"
    );
    assert!(
        warnings.iter().any(|w| w.contains("tpl-rhel9")),
        "{warnings:#?}"
    );
}

#[test]
fn xlsx_export_gives_a_plan_that_checks() {
    let dir = tempfile::tempdir().expect("tmp");
    let x = dir.path().join("RVTools_export_all.xlsx");
    write_xlsx(&x);
    let out = plan_init(&x, None).expect("init");
    assert_common(&out.toml, &out.warnings, "vInfo:6");
    let plan = check_str(&out.toml, "x").plan.expect("plan");
    // PG-DMZ is a trunk in dvPort: no single VLAN → the VM is planned L3.
    let dmz = plan.vm("dmz-web-01").expect("dmz");
    assert_eq!(plan.model_of(dmz), NetworkModel::L3);
    // Custom attributes are kept.
    let inv = load(&x).expect("load");
    let db = inv.vms.iter().find(|v| v.name == "Pay-DB_01").expect("db");
    assert_eq!(
        db.attributes.get("Backup status").map(String::as_str),
        Some("daily")
    );
    assert_eq!(db.owner(), Some("payments"));
    assert_eq!(inv.vcenter.as_deref(), Some("vcenter.example.internal"));
}

#[test]
fn vlan_map_adds_vlan_cidr_gateway_owner() {
    let dir = tempfile::tempdir().expect("tmp");
    let x = dir.path().join("estate.xlsx");
    write_xlsx(&x);
    let map = dir.path().join("vlans.csv");
    std::fs::write(
        &map,
        "portgroup,vlan,cidr,gateway,owner\n# comment\nPG-APP-210,210,192.0.2.0/24,192.0.2.1,netsec\nPG-DMZ,410,203.0.113.0/24,203.0.113.1,dmz-team\nPG-X,notavlan\n",
    )
    .expect("map");
    let out = plan_init(&x, Some(&map)).expect("init");
    let checked = check_str(&out.toml, "x");
    assert_eq!(
        checked.errors(),
        0,
        "{}\n{:#?}",
        out.toml,
        checked.located()
    );
    let plan = checked.plan.expect("plan");
    let dmz_net = plan.network("pg-dmz").expect("net");
    assert_eq!(dmz_net.vlan.as_ref().map(|v| v.value), Some(410));
    assert_eq!(
        dmz_net.cidr.as_ref().map(|c| c.to_string()),
        Some("203.0.113.0/24".into())
    );
    assert_eq!(dmz_net.owner.as_deref(), Some("dmz-team"));
    let dmz = plan.vm("dmz-web-01").expect("dmz");
    assert_eq!(plan.model_of(dmz), NetworkModel::L2);
    assert_eq!(plan.name_of_plan(), "estate");
    assert!(
        out.warnings.iter().any(|w| w.contains("vlans.csv:5")),
        "{:#?}",
        out.warnings
    );
}

trait PlanName {
    fn name_of_plan(&self) -> &str;
}
impl PlanName for wavelift::plan::Plan {
    fn name_of_plan(&self) -> &str {
        self.meta.name.as_str()
    }
}

#[test]
fn csv_tabs_with_semicolons_and_bom() {
    let dir = tempfile::tempdir().expect("tmp");
    write_csv_tabs(dir.path());
    let out = plan_init(dir.path(), None).expect("init from directory");
    // Line 6 of the CSV file is the `bad-cpu` row (header on line 1).
    assert_common(&out.toml, &out.warnings, "RVTools_tabvInfo.csv:6");
    let one = plan_init(&dir.path().join("RVTools_tabvInfo.csv"), None).expect("init from one tab");
    assert_eq!(one.toml.matches("[[vm]]").count(), 5);
}

#[test]
fn govc_json_camel_and_pascal_case() {
    let camel = r#"{"virtualMachines":[{
      "config":{"name":"App 01","instanceUuid":"4207c1b2-5f0e-4c1e-9a7b-0000000000a1","uuid":"42070000-0000-0000-0000-000000000000","template":false,
        "hardware":{"numCPU":2,"memoryMB":6144,"device":[
          {"key":4000,"deviceInfo":{"label":"Network adapter 1"},"macAddress":"00:50:56:80:10:01","backing":{"deviceName":"PG-APP-210"}},
          {"key":2000,"deviceInfo":{"label":"Hard disk 1"},"capacityInKB":41943040,"backing":{"fileName":"[ds1] App 01/App 01.vmdk"}}]}},
      "guest":{"hostName":"app01.corp.example.internal","ipAddress":"192.0.2.41","net":[{"network":"PG-APP-210","macAddress":"00:50:56:80:10:01","ipAddress":["192.0.2.41","fe80::1"]}]},
      "runtime":{"powerState":"poweredOn"},
      "availableField":[{"key":101,"name":"owner"}],"customValue":[{"key":101,"value":"team-app"}]},
      {"config":{"uuid":"x"}}]}"#;
    let pascal = r#"{"VirtualMachines":[{
      "Config":{"Name":"app02","InstanceUuid":"4207c1b2-5f0e-4c1e-9a7b-0000000000a2",
        "Hardware":{"NumCPU":1,"MemoryMB":2048,"Device":[
          {"MacAddress":"00:50:56:80:10:02","Backing":{"DeviceName":"PG-APP-210"}},
          {"CapacityInKB":10485760,"Backing":{"FileName":"[ds1] app02/app02.vmdk"}}]}},
      "Guest":{"Net":[{"Network":"PG-APP-210","MacAddress":"00:50:56:80:10:02","IpAddress":["192.0.2.42"]}]},
      "Runtime":{"PowerState":"poweredOn"}}]}"#;
    let dir = tempfile::tempdir().expect("tmp");
    for (name, text, vm, ip, mem) in [
        ("camel.json", camel, "app-01", "192.0.2.41", "6Gi"),
        ("pascal.json", pascal, "app02", "192.0.2.42", "2Gi"),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        let out = plan_init(&p, None).expect("init");
        let checked = check_str(&out.toml, name);
        assert_eq!(
            checked.errors(),
            0,
            "{}\n{:#?}",
            out.toml,
            checked.located()
        );
        let plan = checked.plan.expect("plan");
        let v = plan
            .vm(vm)
            .unwrap_or_else(|| panic!("{vm} in {}", out.toml));
        assert_eq!(
            v.nics[0].ip.as_ref().map(|i| i.to_string()),
            Some(ip.to_string())
        );
        assert_eq!(v.memory.text, mem);
        assert_eq!(v.disks.len(), 1);
        // Without a VLAN for the port group the VM is L3 (planned, not an error).
        assert_eq!(plan.model_of(v), NetworkModel::L3);
    }
    let inv = load(&dir.path().join("camel.json")).expect("load");
    assert_eq!(inv.vms[0].owner(), Some("team-app"));
    assert!(
        inv.warnings
            .iter()
            .any(|w| w.contains("virtualMachines[1]")),
        "{:#?}",
        inv.warnings
    );
}

#[test]
fn blast_from_inventory_flags_shared_ip_and_no_ip() {
    let dir = tempfile::tempdir().expect("tmp");
    let x = dir.path().join("estate.xlsx");
    write_xlsx(&x);
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(
        src.join("app.conf"),
        "backend = 192.0.2.16:8080\ndb = pay-db-01.corp.example.internal\n",
    )
    .expect("write");
    let report = run_blast(&BlastOptions {
        rvtools: Some(x),
        sources: vec![src],
        threads: 1,
        ..BlastOptions::default()
    })
    .expect("blast");
    let vm = |n: &str| report.vm(n).unwrap_or_else(|| panic!("{n}"));
    assert!(vm("pay-app-01").flags.contains(&Flag::SharedIp));
    assert!(vm("pay-dup-01").flags.contains(&Flag::SharedIp));
    assert_eq!(vm("pay-app-01").references.len(), 1);
    assert_eq!(vm("pay-dup-01").references.len(), 1);
    assert!(vm("pay-off-01").flags.contains(&Flag::NoIp));
    let db = vm("pay-db-01");
    assert_eq!(db.references.len(), 1);
    assert_eq!(db.references[0].line, 2);
    assert_eq!(
        db.references[0].owner.as_ref().map(|o| o.source.as_str()),
        Some("rvtools-attribute")
    );
}

/// vInfo's `Host` becomes the VM's `host` (imports are limited per ESXi host).
#[test]
fn plan_init_writes_the_esxi_host_from_vinfo() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(
        dir.path().join("RVTools_tabvInfo.csv"),
        "VM,Powerstate,CPUs,Memory,Primary IP Address,Host,VM UUID\n\
         web-01,poweredOn,2,4096,192.0.2.30,esx-07.corp.example.internal,4207c1b2-5f0e-4c1e-9a7b-000000000042\n",
    )
    .expect("csv");
    let out = plan_init(dir.path(), None).expect("init");
    assert!(
        out.toml.contains("host = \"esx-07.corp.example.internal\""),
        "{}",
        out.toml
    );
    let plan = check_str(&out.toml, "init.toml").plan.expect("plan");
    let vm = plan.vm("web-01").expect("vm");
    assert_eq!(
        vm.host.as_ref().map(|h| h.value.as_str()),
        Some("esx-07.corp.example.internal")
    );
}

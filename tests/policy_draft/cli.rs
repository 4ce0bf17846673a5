//! `wavelift policy draft` end to end: the real binary on the quickstart plan and the
//! fixtures.

use crate::support::read_back;
use std::process::Command;

fn wavelift() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wavelift"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

#[test]
fn drafts_every_vm_of_the_plan_into_out_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("policies");
    let o = wavelift()
        .args(["policy", "draft", "--plan", "plans/quickstart.toml"])
        .args(["--sources", "tests/fixtures/policy", "--out"])
        .arg(&out)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(o.stdout.is_empty());
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .expect("out dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["shop-app-01.yaml", "shop-db-01.yaml", "shop-web-01.yaml"]
    );
    for n in &names {
        let text = std::fs::read_to_string(out.join(n)).expect("read");
        let doc = read_back(&text);
        assert_eq!(
            doc.name,
            format!("wavelift-{}", n.trim_end_matches(".yaml"))
        );
        assert_eq!(doc.namespace, "mig-quickstart");
    }
    let web = std::fs::read_to_string(out.join("shop-web-01.yaml")).expect("read");
    // Every format's rule for the web server's HTTPS is there, with its provenance.
    // Origins are relative to the parent of the `--sources` root.
    for from in [
        "# from policy/edge.iptables:22",
        "# from policy/firewall.csv:8 rule 200 edge-web (owner web-team)",
        "# from policy/asa-running.cfg:49 rule outside_in line 9 (owner shop-app) [broad: any source]",
    ] {
        assert!(web.contains(from), "{from} in\n{web}");
    }
    assert!(stderr.contains("warning: shop-db-01: "), "{stderr}");
    let summary = stderr.lines().last().unwrap_or_default();
    // Six exports (iptables, CSV, ASA, nft, AWS, PAN-OS) among nine files (the README, the
    // ipset and interface exports that serve them).
    assert!(
        summary.starts_with("policy draft: 3 VM(s) from 6 firewall export(s) ("),
        "{summary}"
    );
    assert!(summary.contains(" rules; 9 file(s) read), "), "{summary}");
    assert!(summary.contains("written to"), "{summary}");
}

#[test]
fn stdout_holds_the_selected_vms_and_unknown_vms_are_refused() {
    let o = wavelift()
        .args(["policy", "draft", "--plan", "plans/quickstart.toml"])
        .args(["--sources", "tests/fixtures/policy", "--vm", "shop-web-01"])
        .args(["--mnp-version", "v1beta1"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(0));
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        text.matches("\nkind: MultiNetworkPolicy\n").count(),
        1,
        "{text}"
    );
    assert!(text.contains("apiVersion: k8s.cni.cncf.io/v1beta1\n"));
    assert_eq!(read_back(&text).name, "wavelift-shop-web-01");

    let o = wavelift()
        .args(["policy", "draft", "--plan", "plans/quickstart.toml"])
        .args(["--sources", "tests/fixtures/policy", "--vm", "nope-01"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nope-01"));
    assert!(o.stdout.is_empty());
}

#[test]
fn an_invalid_plan_is_exit_2_with_file_line_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = dir.path().join("bad.toml");
    std::fs::write(&plan, "[plan]\nname = 3\n").expect("write");
    let o = wavelift()
        .args(["policy", "draft", "--plan"])
        .arg(&plan)
        .args(["--sources", "tests/fixtures/policy"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("{}:2:", plan.display())), "{err}");
    assert!(o.stdout.is_empty());
}

#[test]
fn sources_without_a_firewall_export_are_exit_2_naming_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("configs");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("app.conf"), "listen = 192.0.2.17:443\n").expect("write");
    let o = wavelift()
        .args([
            "policy",
            "draft",
            "--plan",
            "plans/quickstart.toml",
            "--sources",
        ])
        .arg(&src)
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "error: --sources {}: no firewall export among the 1 file(s) read",
            src.display()
        )),
        "{err}"
    );
    assert!(o.stdout.is_empty());
}

#[test]
fn two_roots_of_the_same_name_never_print_the_same_origin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rule = |port: u16| {
        format!(
            "*filter\n:FORWARD DROP [0:0]\n-A FORWARD -s 10.0.0.0/8 -d 192.0.2.17/32 -p tcp -m tcp \
             --dport {port} -m comment --comment \"web-{port} owner: shop\" -j ACCEPT\nCOMMIT\n"
        )
    };
    let (a, b) = (dir.path().join("a/fw"), dir.path().join("b/fw"));
    for (d, port) in [(&a, 443), (&b, 8443)] {
        std::fs::create_dir_all(d).expect("mkdir");
        std::fs::write(d.join("edge.iptables"), rule(port)).expect("write");
    }
    let o = wavelift()
        .args(["policy", "draft", "--plan", "plans/quickstart.toml"])
        .args(["--vm", "shop-web-01", "--sources"])
        .arg(&a)
        .arg(&b)
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for (root, port) in [(&a, 443), (&b, 8443)] {
        let want = format!(
            "# from {}/edge.iptables:3 rule web-{port} (owner shop)\n",
            root.display()
        );
        assert!(text.contains(&want), "{want} in\n{text}");
    }
    // One root: its own name.
    let o = wavelift()
        .args(["policy", "draft", "--plan", "plans/quickstart.toml"])
        .args(["--vm", "shop-web-01", "--sources"])
        .arg(&a)
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("# from fw/edge.iptables:3 rule web-443 (owner shop)\n"),
        "{text}"
    );
}

#[test]
fn an_inventory_drafts_every_vm_on_its_port_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inv = dir.path().join("shop");
    std::fs::create_dir_all(&inv).expect("mkdir");
    std::fs::write(
        inv.join("RVTools_tabvInfo.csv"),
        "VM,Powerstate,Primary IP Address\nshop-web-01,poweredOn,192.0.2.17\n\
         shop-db-01,poweredOn,192.0.2.15\n",
    )
    .expect("write");
    std::fs::write(
        inv.join("RVTools_tabvNetwork.csv"),
        "VM,NIC label,Network,Mac Address,IPv4 Address\n\
         shop-web-01,Network adapter 1,VLAN-210,00:50:56:00:00:01,192.0.2.17\n\
         shop-db-01,Network adapter 1,VLAN-210,00:50:56:00:00:02,192.0.2.15\n",
    )
    .expect("write");
    let o = wavelift()
        .args(["policy", "draft", "--rvtools"])
        .arg(&inv)
        .args(["--sources", "tests/fixtures/policy/edge.iptables"])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let text = String::from_utf8_lossy(&o.stdout);
    let docs: Vec<&str> = text.split("---\n").collect();
    assert_eq!(docs.len(), 2, "{text}");
    for (doc, vm) in docs.iter().zip(["shop-web-01", "shop-db-01"]) {
        let p = read_back(doc);
        assert_eq!(p.name, format!("wavelift-{vm}"));
        // Namespace and plan label from the inventory's name, the NAD from the port group.
        assert_eq!(p.namespace, "mig-shop");
        assert!(
            doc.contains("    k8s.v1.cni.cncf.io/policy-for: mig-shop/vlan-210\n"),
            "{doc}"
        );
        assert!(doc.contains("      wavelift.io/plan: shop\n"), "{doc}");
        assert!(
            doc.contains(&format!("      wavelift.io/vm: {vm}\n")),
            "{doc}"
        );
    }
    // A file given as a source is shown by its name; the web server's HTTPS rule is there.
    assert!(docs[0].contains("  # from edge.iptables:22"), "{}", docs[0]);
    assert!(
        err.contains("policy draft: 2 VM(s) from 1 firewall export(s)"),
        "{err}"
    );
}

#[test]
fn repeated_vm_options_select_several_vms() {
    // `--vm a --vm b` and `--vm a b` select the same VMs.
    for vms in [
        &["--vm", "shop-web-01", "--vm", "shop-db-01"][..],
        &["--vm", "shop-web-01", "shop-db-01"][..],
    ] {
        let o = wavelift()
            .args(["policy", "draft", "--plan", "plans/quickstart.toml"])
            .args(["--sources", "tests/fixtures/policy"])
            .args(vms)
            .output()
            .expect("run");
        assert_eq!(
            o.status.code(),
            Some(0),
            "{vms:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let text = String::from_utf8_lossy(&o.stdout);
        let names: Vec<String> = text.split("---\n").map(|d| read_back(d).name).collect();
        // In the plan's order.
        assert_eq!(
            names,
            ["wavelift-shop-db-01", "wavelift-shop-web-01"],
            "{vms:?}"
        );
    }
}

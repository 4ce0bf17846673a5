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
    for from in [
        "# from edge.iptables:22",
        "# from firewall.csv:8 rule 200 edge-web (owner web-team)",
        "# from asa-running.cfg:49 rule outside_in line 9 (owner shop-app) [broad: any source]",
    ] {
        assert!(web.contains(from), "{from} in\n{web}");
    }
    assert!(stderr.contains("warning: shop-db-01: "), "{stderr}");
    let summary = stderr.lines().last().unwrap_or_default();
    assert!(
        summary.starts_with("policy draft: 3 VM(s) from 3 firewall export(s)")
            || summary.starts_with("policy draft: 3 VM(s) from "),
        "{summary}"
    );
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

//! Drafts of the firewall fixtures (`tests/fixtures/policy/`, the quickstart plan's VMs
//! shop-db-01 192.0.2.15, shop-app-01 192.0.2.16, shop-web-01 192.0.2.17), one snapshot per
//! format: the whole YAML of the three VMs, each read back to its object.

use crate::support::{read_back, vm};
use wavelift::policy::draft::{self, DraftOptions};
use wavelift::policy::fw;

const VMS: [(&str, &str); 3] = [
    ("shop-db-01", "192.0.2.15"),
    ("shop-app-01", "192.0.2.16"),
    ("shop-web-01", "192.0.2.17"),
];

fn fixture(name: &str) -> (String, String) {
    let p = format!(
        "{}/tests/fixtures/policy/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"));
    (name.to_string(), text)
}

/// The drafts of the three VMs from these files (parsed together, as the command does).
fn drafts(files: &[&str], format: &str) -> String {
    let texts: Vec<(String, String)> = files.iter().map(|f| fixture(f)).collect();
    let sets = fw::parse_all(&texts);
    assert_eq!(sets.len(), 1, "one export in {files:?}");
    assert_eq!(sets[0].format, format);
    let mut out = String::new();
    for (name, ip) in VMS {
        let d = draft::draft_vm(&vm(name, ip), &sets, &DraftOptions::default());
        assert_eq!(read_back(&d.yaml), d.doc, "roundtrip of {name}");
        if !out.is_empty() {
            out.push_str("---\n");
        }
        out.push_str(&d.yaml);
    }
    out
}

#[test]
fn iptables() {
    insta::assert_snapshot!(drafts(&["edge.iptables", "ipsets.save"], "iptables"));
}

#[test]
fn neutral_csv() {
    insta::assert_snapshot!(drafts(&["firewall.csv"], "firewall-csv"));
}

#[test]
fn asa() {
    insta::assert_snapshot!(drafts(&["asa-running.cfg"], "asa"));
}

#[test]
fn nft() {
    insta::assert_snapshot!(drafts(&["ruleset.nft.json"], "nft"));
}

#[test]
fn aws_security_groups() {
    insta::assert_snapshot!(drafts(&["aws-sg.json", "aws-enis.json"], "aws-sg"));
}

#[test]
fn panos() {
    insta::assert_snapshot!(drafts(&["panos-running.xml"], "panos"));
}

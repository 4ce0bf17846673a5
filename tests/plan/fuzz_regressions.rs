//! The fuzz targets' inputs as tests in the normal suite: every checked-in seed
//! (`fuzz/seeds/TARGET/`) and every finding kept from a fuzzing run
//! (`tests/fuzz_regressions/TARGET/`, see `tools/fuzz`) goes through the same entry point
//! the target calls (`wavelift::fuzzing`). A panic fails the test and names the file.

use std::path::{Path, PathBuf};
use wavelift::fuzzing::{self, Firewall};

type Entry = fn(&[u8]);

const TARGETS: &[(&str, Entry)] = &[
    ("plan", fuzzing::plan),
    ("zone", fuzzing::zone),
    ("firewall_csv", |d| {
        fuzzing::firewall_rules(Firewall::NeutralCsv, d)
    }),
    ("firewall_iptables", |d| {
        fuzzing::firewall_rules(Firewall::Iptables, d)
    }),
    ("firewall_nft", |d| {
        fuzzing::firewall_rules(Firewall::NftJson, d)
    }),
    ("firewall_aws", |d| {
        fuzzing::firewall_rules(Firewall::AwsSecurityGroups, d)
    }),
    ("rvtools_csv", fuzzing::rvtools_csv),
    ("rvtools_xlsx", fuzzing::rvtools_xlsx),
    ("govc_json", fuzzing::govc_json),
    ("sim_body", fuzzing::sim_body),
    ("sim_patch", fuzzing::sim_patch),
];

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

#[test]
fn every_fuzz_seed_and_kept_finding_runs_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The fuzz crate's target list and this one agree.
    let fuzz_toml = std::fs::read_to_string(root.join("fuzz/Cargo.toml")).unwrap();
    let declared = fuzz_toml.matches("[[bin]]").count();
    assert_eq!(
        declared,
        TARGETS.len(),
        "fuzz/Cargo.toml and TARGETS differ"
    );
    let mut ran = 0;
    for (name, entry) in TARGETS {
        assert!(
            fuzz_toml.contains(&format!("name = \"{name}\"")),
            "{name} is no target in fuzz/Cargo.toml"
        );
        let seeds = files(&root.join("fuzz/seeds").join(name));
        assert!(!seeds.is_empty(), "fuzz/seeds/{name} has no seed");
        let kept = files(&root.join("tests/fuzz_regressions").join(name));
        for f in seeds.iter().chain(&kept) {
            let data = std::fs::read(f).unwrap();
            let r = std::panic::catch_unwind(|| entry(&data));
            assert!(r.is_ok(), "{name}: {} panics", f.display());
            ran += 1;
        }
    }
    assert!(ran >= TARGETS.len());
}

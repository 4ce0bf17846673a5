//! `plan check` against the malformed-plan corpus (one file each, with the expected position
//! and message fragment on its first line), the shipped example plans, and arbitrary input.

use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use wavelift::plan::{check_bytes, check_file};

struct Expect {
    line: usize,
    column: usize,
    fragment: String,
}

/// `# expect: LINE:COL: fragment` lines at the top of a corpus file.
fn expectations(bytes: &[u8], file: &Path) -> Vec<Expect> {
    let text = String::from_utf8_lossy(bytes);
    let out: Vec<Expect> = text
        .lines()
        .take_while(|l| l.starts_with("# expect:"))
        .map(|l| {
            let rest = l.trim_start_matches("# expect:").trim();
            let mut parts = rest.splitn(3, ':');
            let line = parts.next().and_then(|s| s.trim().parse().ok());
            let column = parts.next().and_then(|s| s.trim().parse().ok());
            let fragment = parts.next().map(|s| s.trim().to_string());
            match (line, column, fragment) {
                (Some(line), Some(column), Some(fragment)) => Expect {
                    line,
                    column,
                    fragment,
                },
                _ => panic!("{}: malformed expect line `{l}`", file.display()),
            }
        })
        .collect();
    assert!(!out.is_empty(), "{}: no `# expect:` line", file.display());
    out
}

fn corpus() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir("tests/corpus/bad")
        .expect("corpus directory")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn corpus_is_large_enough() {
    assert!(
        corpus().len() >= 30,
        "the corpus must hold at least 30 malformed plans"
    );
}

#[test]
fn every_corpus_plan_fails_at_the_expected_place() {
    let mut failures = Vec::new();
    for path in corpus() {
        let bytes = std::fs::read(&path).expect("read corpus file");
        let name = path.display().to_string();
        let checked = check_bytes(&bytes, &name);
        let located = checked.located();
        if checked.errors() == 0 || checked.plan.is_some() {
            failures.push(format!("{name}: expected errors, got none"));
            continue;
        }
        for e in expectations(&bytes, &path) {
            let hit = located.iter().any(|d| {
                d.line == e.line
                    && d.column == e.column
                    && (d.message.contains(&e.fragment)
                        || d.hint.as_deref().is_some_and(|h| h.contains(&e.fragment)))
            });
            if !hit {
                let got: Vec<String> = located
                    .iter()
                    .map(|d| format!("  {}:{}: {} ({:?})", d.line, d.column, d.message, d.hint))
                    .collect();
                failures.push(format!(
                    "{name}: expected `{}` at {}:{}; got:\n{}",
                    e.fragment,
                    e.line,
                    e.column,
                    got.join("\n")
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn cli_exits_2_with_file_line_column_on_each_corpus_plan() {
    for path in corpus() {
        let bytes = std::fs::read(&path).expect("read corpus file");
        let out = Command::new(env!("CARGO_BIN_EXE_wavelift"))
            .args(["plan", "check"])
            .arg(&path)
            .env(
                "WAVELIFT_LOG_DIR",
                std::env::temp_dir().join("wavelift-test-logs"),
            )
            .output()
            .expect("run wavelift");
        assert_eq!(out.status.code(), Some(2), "{}: {:?}", path.display(), out);
        let stdout = String::from_utf8_lossy(&out.stdout);
        for e in expectations(&bytes, &path) {
            let loc = format!("{}:{}:{}", path.display(), e.line, e.column);
            assert!(
                stdout.contains(&loc),
                "{}: no `{loc}` in\n{stdout}",
                path.display()
            );
        }
        assert!(stdout.contains('^'), "caret missing for {}", path.display());
    }
}

#[test]
fn cli_json_output_is_machine_readable() {
    let path = Path::new("tests/corpus/bad/unknown-network-ref.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_wavelift"))
        .args(["plan", "check", "--format", "json"])
        .arg(path)
        .env(
            "WAVELIFT_LOG_DIR",
            std::env::temp_dir().join("wavelift-test-logs"),
        )
        .output()
        .expect("run wavelift");
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON output");
    assert_eq!(v["valid"], false);
    assert_eq!(v["errors"], 1);
    let d = &v["diagnostics"][0];
    assert_eq!(d["code"], "unknown-network");
    assert_eq!(d["severity"], "error");
    assert_eq!(d["hint"], "did you mean `vlan-210`?");
    assert!(d["line"].as_u64().is_some() && d["column"].as_u64().is_some());
    assert_eq!(v["summary"]["vms"], 2);
}

#[test]
fn every_shipped_plan_is_valid() {
    let mut plans: Vec<PathBuf> = std::fs::read_dir("plans")
        .expect("plans directory")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    plans.sort();
    assert!(plans.len() >= 3, "plans/ must hold at least three examples");
    for p in plans {
        let checked = check_file(&p).expect("read plan");
        let errs: Vec<String> = checked
            .located()
            .iter()
            .filter(|d| d.severity == wavelift::plan::Severity::Error)
            .map(|d| d.render_text())
            .collect();
        assert!(errs.is_empty(), "{}:\n{}", p.display(), errs.join("\n"));
        assert!(checked.plan.is_some());
        // Every example's waves fit their windows at the assumed throughput.
        assert!(
            !checked
                .located()
                .iter()
                .any(|d| d.code == "window-too-short"),
            "{}",
            p.display()
        );
        let out = Command::new(env!("CARGO_BIN_EXE_wavelift"))
            .args(["plan", "check"])
            .arg(&p)
            .env(
                "WAVELIFT_LOG_DIR",
                std::env::temp_dir().join("wavelift-test-logs"),
            )
            .output()
            .expect("run wavelift");
        assert_eq!(out.status.code(), Some(0), "{}: {:?}", p.display(), out);
    }
}

#[test]
fn strict_turns_warnings_into_exit_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = std::fs::read_to_string("plans/quickstart.toml")
        .expect("quickstart")
        .replace("owner = \"netsec\"\n", "");
    let p = dir.path().join("no-owner.toml");
    std::fs::write(&p, text).expect("write");
    let run = |strict: bool| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_wavelift"));
        c.args(["plan", "check"]).arg(&p);
        if strict {
            c.arg("--strict");
        }
        c.env("WAVELIFT_LOG_DIR", dir.path()).output().expect("run")
    };
    let lax = run(false);
    assert_eq!(lax.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&lax.stdout).contains("has no owner"));
    assert_eq!(run(true).status.code(), Some(1));
}

#[test]
fn quickstart_summary_counts() {
    let checked = check_file(Path::new("plans/quickstart.toml")).expect("read");
    let s = checked.summary.expect("summary");
    assert_eq!(
        (s.waves, s.vms, s.networks, s.l2_vms, s.l3_vms),
        (1, 3, 1, 3, 0)
    );
    assert_eq!(s.disk_bytes, 140 << 30);
    let estate = check_file(Path::new("plans/payments-estate.toml")).expect("read");
    let s = estate.summary.expect("summary");
    assert_eq!((s.waves, s.vms, s.networks), (3, 40, 4));
    assert!(s.l2_vms > 0 && s.l3_vms > 0);
}

#[test]
fn validation_is_total() {
    // Three independent problems in three places: all three are reported.
    let text = std::fs::read_to_string("plans/quickstart.toml")
        .expect("quickstart")
        .replace("vlan = 210", "vlan = 5000")
        .replace("memory = \"8Gi\"", "memory = \"8GB\"")
        .replace("\"tcp:443\"", "\"tcp:0\"");
    let checked = wavelift::plan::check_str(&text, "t.toml");
    let codes: Vec<&str> = checked.diagnostics.iter().map(|d| d.code).collect();
    for want in ["bad-vlan", "bad-quantity", "bad-check"] {
        assert!(codes.contains(&want), "{want} missing from {codes:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let c = check_bytes(&bytes, "fuzz.toml");
        let _ = c.located();
    }

    #[test]
    fn mutated_plans_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..12)
    ) {
        let mut bytes = std::fs::read("plans/http-images.toml").expect("plan").to_vec();
        for (at, b, op) in edits {
            let len = bytes.len();
            let i = at.index(len.max(1));
            match op {
                0 if len > 0 => bytes[i.min(len - 1)] = b,
                1 => bytes.insert(i.min(len), b),
                _ if len > 0 => {
                    bytes.remove(i.min(len - 1));
                }
                _ => {}
            }
        }
        let c = check_bytes(&bytes, "fuzz.toml");
        for d in c.located() {
            let _ = d.render_text();
            prop_assert!(d.line >= 1 && d.column >= 1);
        }
    }
}

/// The in-cluster probe keys (issue 14) parse, and a network the per-node L2 proof cannot
/// ARP (no gateway, no `l2_probe_target`) is warned about.
#[test]
fn probe_keys_parse_and_an_unprovable_l2_path_is_warned() {
    let text = std::fs::read_to_string("plans/quickstart.toml")
        .expect("quickstart")
        .replace(
            "namespace = \"mig-quickstart\"",
            "namespace = \"mig-quickstart\"\nchecks_from = \"cluster\"\nprobe_image = \"registry.example.internal/wavelift:0.1\"",
        )
        .replace(
            "gateway = \"192.0.2.1\"",
            "probe_ip = \"192.0.2.250\"\nl2_path = \"required\"",
        );
    let checked = wavelift::plan::check_str(&text, "q.toml");
    let codes: Vec<&str> = checked.diagnostics.iter().map(|d| d.code).collect();
    let plan = checked.plan.as_ref().unwrap_or_else(|| panic!("{codes:?}"));
    assert_eq!(
        plan.meta.checks_from.value,
        wavelift::plan::ChecksFrom::Cluster
    );
    assert_eq!(
        plan.networks[0]
            .probe_ip
            .as_ref()
            .map(|p| p.value.to_string()),
        Some("192.0.2.250".into())
    );
    assert_eq!(plan.networks[0].l2_path, wavelift::plan::L2Path::Required);
    assert!(codes.contains(&"l2-path-unprovable"), "{codes:?}");
}

/// `window-too-short`: the fixture's three cold VMs (140 GiB) at an assumed 10 MiB/s per
/// import, two at a time, need about 2h21m (the longest lane: 80 GiB in 2h16m plus 5 min
/// besides the copy); its window is 2h. The warning points at the window's end and names
/// the figures; `wavelift plan check` still exits 0 (a warning).
#[test]
fn a_wave_that_cannot_fit_its_window_is_warned_with_its_figures() {
    let checked = check_file(std::path::Path::new("tests/fixtures/window-too-short.toml"))
        .expect("read fixture");
    let d: Vec<_> = checked
        .located()
        .into_iter()
        .filter(|d| d.code == "window-too-short")
        .collect();
    assert_eq!(d.len(), 1, "{d:?}");
    let text = d[0].render_text();
    for needle in [
        "wave `w1` needs about 2h21m for its 3 cutover(s)",
        "copy 140 GiB at an assumed 10 MiB/s per import, 2 at a time",
        "but its window is 2h",
        "window-too-short.toml:34:48",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
    // At 150 MiB/s (the default) the same wave fits.
    let text = std::fs::read_to_string("tests/fixtures/window-too-short.toml")
        .expect("fixture")
        .replace("import_throughput = \"10MiB/s\"\n", "");
    let checked = wavelift::plan::check_str(&text, "fits.toml");
    assert!(!checked
        .located()
        .iter()
        .any(|d| d.code == "window-too-short"));
}

/// The network-policy keys (issue 17) parse, and each refusal names its reason at the key:
/// `apply` with no exports, no probe sources, and a Linux-bridge network nobody enforces
/// policy on; naming the implementation (and the sources) makes the plan valid.
#[test]
fn policy_keys_parse_and_apply_is_refused_until_it_can_be_enforced() {
    let base = std::fs::read_to_string("plans/quickstart.toml").expect("quickstart");
    let with = |plan_keys: &str, net_keys: &str| {
        let text = base
            .replace(
                "namespace = \"mig-quickstart\"",
                &format!("namespace = \"mig-quickstart\"\n{plan_keys}"),
            )
            .replace(
                "gateway = \"192.0.2.1\"",
                &format!("gateway = \"192.0.2.1\"\n{net_keys}"),
            );
        wavelift::plan::check_str(&text, "q.toml")
    };
    let codes = |c: &wavelift::plan::Checked| -> Vec<&'static str> {
        c.diagnostics.iter().map(|d| d.code).collect()
    };
    let bare = with("policy = \"apply\"", "");
    let got = codes(&bare);
    for code in [
        "policy-needs-sources",
        "policy-needs-probe-sources",
        "policy-unenforced-network",
    ] {
        assert!(got.contains(&code), "{code} missing from {got:?}");
    }
    let located = bare.located();
    let unenforced = located
        .iter()
        .find(|d| d.code == "policy-unenforced-network")
        .expect("located");
    assert!(
        unenforced.render_text().contains("vlan-210"),
        "{}",
        unenforced.render_text()
    );

    let ok = with(
        "policy = \"apply\"\npolicy_sources = [\"exports/fw\"]\nprobe_sources = [\"198.51.100.254\", \"203.0.113.0/28\"]\npolicy_settle = \"3s\"",
        "multi_network_policy = \"multi-networkpolicy-iptables\"",
    );
    let plan = ok
        .plan
        .as_ref()
        .unwrap_or_else(|| panic!("{:?}", codes(&ok)));
    assert_eq!(plan.meta.policy.value, wavelift::plan::PolicyMode::Apply);
    assert_eq!(
        plan.meta
            .probe_sources
            .iter()
            .map(|c| c.value.to_string())
            .collect::<Vec<_>>(),
        ["198.51.100.254/32", "203.0.113.0/28"]
    );
    assert_eq!(plan.meta.policy_settle, std::time::Duration::from_secs(3));
    assert_eq!(
        plan.networks[0]
            .multi_network_policy
            .as_ref()
            .map(|m| m.value.as_str()),
        Some("multi-networkpolicy-iptables")
    );
    assert!(!codes(&ok).iter().any(|c| c.starts_with("policy-")));

    // `draft` needs only the exports; a bad probe source is an error at its entry.
    let draft = with(
        "policy = \"draft\"\npolicy_sources = [\"exports/fw\"]\nprobe_sources = [\"198.51.100.3/24\"]",
        "",
    );
    let got = codes(&draft);
    assert!(got.contains(&"bad-cidr"), "{got:?}");
    assert!(!got.contains(&"policy-unenforced-network"), "{got:?}");
}

/// Network policy is opt-in: a plan without the keys has `policy` off and the default
/// `policy_settle` of 10 s, and no policy diagnostic.
#[test]
fn policy_is_off_by_default_with_a_ten_second_settle() {
    let checked = check_file(Path::new("plans/quickstart.toml")).expect("read");
    let plan = checked.plan.as_ref().expect("valid");
    assert_eq!(plan.meta.policy.value, wavelift::plan::PolicyMode::Off);
    assert_eq!(plan.meta.policy_settle, std::time::Duration::from_secs(10));
    assert!(plan.meta.policy_sources.is_empty());
    assert!(
        !checked
            .diagnostics
            .iter()
            .any(|d| d.code.starts_with("policy-")),
        "{:?}",
        checked
            .diagnostics
            .iter()
            .map(|d| d.code)
            .collect::<Vec<_>>()
    );
}

/// `apply` with in-cluster checks admits the probe pods by their network's `probe_ip`: a
/// network an L2 VM uses without one is refused at its name; with one, the plan is valid.
#[test]
fn apply_with_cluster_checks_needs_each_networks_probe_ip() {
    let with = |net_keys: &str| {
        let text = std::fs::read_to_string("plans/quickstart.toml")
            .expect("quickstart")
            .replace(
                "namespace = \"mig-quickstart\"",
                "namespace = \"mig-quickstart\"\nchecks_from = \"cluster\"\nprobe_image = \"registry.example.internal/wavelift:0.1\"\npolicy = \"apply\"\npolicy_sources = [\"exports\"]",
            )
            .replace(
                "gateway = \"192.0.2.1\"",
                &format!("gateway = \"192.0.2.1\"\nmulti_network_policy = \"multi-networkpolicy-iptables\"\n{net_keys}"),
            );
        wavelift::plan::check_str(&text, "q.toml")
    };
    let missing = with("");
    assert!(missing.plan.is_none(), "refused");
    let located = missing.located();
    let d = located
        .iter()
        .find(|d| d.code == "policy-needs-probe-ip")
        .unwrap_or_else(|| panic!("{:?}", located.iter().map(|d| d.code).collect::<Vec<_>>()));
    let text = d.render_text();
    assert!(
        text.contains("network `vlan-210` has none") && text.contains("name = \"vlan-210\""),
        "{text}"
    );
    // Cluster checks need no `probe_sources`.
    assert!(!located
        .iter()
        .any(|d| d.code == "policy-needs-probe-sources"));
    let ok = with("probe_ip = \"192.0.2.250\"");
    let codes: Vec<&str> = ok.diagnostics.iter().map(|d| d.code).collect();
    assert!(ok.plan.is_some(), "{codes:?}");
    assert!(!codes.iter().any(|c| c.starts_with("policy-")), "{codes:?}");
}

/// OVN-Kubernetes enforces MultiNetworkPolicy on a localnet network only with multi-network
/// policy enabled, which the plan cannot see: as on a Linux bridge, `apply` is refused
/// until the network names what enforces it.
#[test]
fn apply_on_an_ovn_localnet_network_needs_multi_network_policy_named() {
    let with = |net_keys: &str| {
        let text = std::fs::read_to_string("plans/quickstart.toml")
            .expect("quickstart")
            .replace(
                "namespace = \"mig-quickstart\"",
                "namespace = \"mig-quickstart\"\npolicy = \"apply\"\npolicy_sources = [\"exports\"]\nprobe_sources = [\"198.51.100.254\"]",
            )
            .replace(
                "provider = \"bridge\"\nbridge = \"br-trunk\"",
                &format!("provider = \"ovn-localnet\"\nphysical_network = \"physnet-dc1\"\n{net_keys}"),
            );
        wavelift::plan::check_str(&text, "q.toml")
    };
    let unnamed = with("");
    assert!(unnamed.plan.is_none(), "refused");
    let located = unnamed.located();
    let d = located
        .iter()
        .find(|d| d.code == "policy-unenforced-network")
        .unwrap_or_else(|| panic!("{:?}", located.iter().map(|d| d.code).collect::<Vec<_>>()));
    let text = d.render_text();
    assert!(
        text.contains("OVN-Kubernetes localnet network `vlan-210`")
            && text.contains("enable-multi-networkpolicy"),
        "{text}"
    );
    let named = with("multi_network_policy = \"ovn-kubernetes\"");
    let codes: Vec<&str> = named.diagnostics.iter().map(|d| d.code).collect();
    let plan = named.plan.as_ref().unwrap_or_else(|| panic!("{codes:?}"));
    assert_eq!(
        plan.networks[0].provider.value,
        wavelift::plan::Provider::OvnLocalnet
    );
    assert!(!codes.iter().any(|c| c.starts_with("policy-")), "{codes:?}");
}

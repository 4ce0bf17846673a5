//! The runner, baseline diff, reports (JUnit validated against an XSD) and `verify::run`,
//! end to end on loopback with real probes and with a scripted prober.

use crate::common;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use wavelift::checks::baseline::{diff, exit_code, Baseline, DiffStatus};
use wavelift::checks::probe::{DnsQuery, Probe, ProbeFuture, Prober, RealProber};
use wavelift::checks::report::{self, Format, Report};
use wavelift::checks::result::{now_rfc3339, CheckResult, Outcome};
use wavelift::checks::runner::{Observations, RunSettings};
use wavelift::checks::verify;
use wavelift::plan::Plan;

fn plan(text: &str) -> Plan {
    let checked = wavelift::plan::check_str(text, "test.toml");
    let errors: Vec<String> = checked.located().iter().map(|d| format!("{d:?}")).collect();
    checked
        .plan
        .unwrap_or_else(|| panic!("plan does not validate: {errors:#?}"))
}

/// The plan up to its VMs, with `{dns}` and `{cidr}` to fill in.
fn head() -> String {
    common::plan_header("verify-test", "mig-test", "{dns}") + HEAD_REST
}

const HEAD_REST: &str = r#"
[defaults]
guest_agent = true
storage_class = "sim-standard"
checks = ["ip-preserved", "mac-preserved"]
check_timeout = "700ms"
check_retries = 0

[[network]]
name = "vlan-210"
vlan = 210
provider = "bridge"
bridge = "br-trunk"
cidr = "{cidr}"

[[wave]]
name = "w1"

[[wave]]
name = "w2"
"#;

fn vm(name: &str, wave: &str, ip: &str, mac: &str, checks: &str) -> String {
    let uid = name
        .bytes()
        .fold(7u64, |a, b| a.wrapping_mul(31).wrapping_add(u64::from(b)))
        & 0xffff_ffff_ffff;
    format!(
        r#"
[[vm]]
name = "{name}"
wave = "{wave}"
source_id = "4207c1b2-5f0e-4c1e-9a7b-{uid:012x}"
cpu = 1
memory = "1Gi"
nics = [{{ network = "vlan-210", ip = "{ip}", mac = "{mac}" }}]
disks = [{{ backing_file = "[ds1] {name}/{name}.vmdk", size = "10Gi" }}]
checks = [{checks}]
"#
    )
}

/// Answers with `Pass` for targets in `up`, `Fail` otherwise; records what it was asked.
#[derive(Default)]
struct Scripted {
    up: Vec<String>,
    asked: Mutex<Vec<String>>,
}

impl Scripted {
    fn answer(&self, target: String) -> Probe {
        let ok = self.up.contains(&target);
        if let Ok(mut a) = self.asked.lock() {
            a.push(target.clone());
        }
        if ok {
            Probe::pass(format!("{target} up"), Duration::from_millis(1))
        } else {
            Probe::fail(format!("{target} down"))
        }
    }
}

impl Prober for Scripted {
    fn icmp(&self, ip: IpAddr, _t: Duration) -> ProbeFuture<'_> {
        let p = self.answer(format!("icmp {ip}"));
        Box::pin(async move { p })
    }
    fn tcp(&self, addr: SocketAddr, _t: Duration) -> ProbeFuture<'_> {
        let p = self.answer(format!("tcp {addr}"));
        Box::pin(async move { p })
    }
    fn http<'a>(&'a self, url: &'a str, _e: &'a [u16], _t: Duration) -> ProbeFuture<'a> {
        let p = self.answer(format!("http {url}"));
        Box::pin(async move { p })
    }
    fn dns<'a>(&'a self, q: DnsQuery<'a>, _t: Duration) -> ProbeFuture<'a> {
        let p = self.answer(format!("dns {} {}", q.name, q.expected));
        Box::pin(async move { p })
    }
}

fn doc_plan() -> Plan {
    let mut text = head()
        .replace("{dns}", "dns_server = \"192.0.2.53\"")
        .replace("{cidr}", "192.0.2.0/24");
    text += &vm(
        "db-01",
        "w1",
        "192.0.2.15",
        "00:50:56:ab:cd:01",
        r#""icmp", "tcp:5432", "dns:db-01.corp.example""#,
    );
    text += &vm(
        "web-01",
        "w2",
        "192.0.2.16",
        "00:50:56:ab:cd:02",
        r#""tcp:443", { check = "https://{ip}:8443/health", expect = [200], retries = 2 }"#,
    );
    plan(&text)
}

fn vmi(ifaces: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"kind": "VirtualMachineInstance", "status": {"phase": "Running", "interfaces": ifaces}})
}

#[tokio::test]
async fn runner_probes_the_planned_targets_and_evaluates_vmis() {
    let plan = doc_plan();
    let prober = Scripted {
        up: vec![
            "icmp 192.0.2.15".into(),
            "tcp 192.0.2.15:5432".into(),
            "dns db-01.corp.example 192.0.2.15".into(),
            "tcp 192.0.2.16:443".into(),
        ],
        ..Default::default()
    };
    let mut obs = Observations::new();
    obs.insert_vmi(
        "db-01",
        &vmi(
            serde_json::json!([{"name": "nic0", "mac": "00:50:56:AB:CD:01",
            "ipAddress": "192.0.2.15", "ipAddresses": ["192.0.2.15/24", "fe80::1"],
            "infoSource": "domain, guest-agent", "interfaceName": "eth0"}]),
        ),
    );
    // web-01 came up with the right MAC but the guest configured another address.
    obs.insert_vmi(
        "web-01",
        &vmi(
            serde_json::json!([{"name": "nic0", "mac": "00:50:56:ab:cd:02",
            "ipAddresses": ["192.0.2.99"], "infoSource": "domain, guest-agent"}]),
        ),
    );
    // The same observations, built from VMI objects as listed from a cluster.
    let listed = [
        serde_json::json!({"metadata": {"name": "x", "labels": {"wavelift.io/vm": "db-01"}},
            "status": {"interfaces": [{"mac": "00:50:56:ab:cd:01"}]}}),
        serde_json::json!({"metadata": {"name": "web-01"}}),
        serde_json::json!({"metadata": {}}),
    ];
    let from_list = Observations::from_vmis(&listed);
    assert_eq!(from_list.interfaces("db-01").map(<[_]>::len), Some(1));
    assert_eq!(from_list.interfaces("web-01").map(<[_]>::len), Some(0));
    assert_eq!(from_list.vmis.len(), 2);

    let mut settings = RunSettings::from_plan(&plan);
    settings.retry_pause = Duration::from_millis(1);
    let out = verify::run_with(&plan, &prober, &obs, None, &settings).await;
    let by: HashMap<(String, String), &CheckResult> = out
        .results
        .iter()
        .map(|r| ((r.vm.clone(), r.check.clone()), r))
        .collect();
    let get = |vm: &str, c: &str| {
        *by.get(&(vm.to_string(), c.to_string()))
            .unwrap_or_else(|| panic!("no result {vm} {c}: {:#?}", out.results))
    };
    assert_eq!(out.results.len(), 9, "{:#?}", out.results);
    // Plan order: wave w1 first, defaults before the VM's own checks.
    assert_eq!(out.results[0].vm, "db-01");
    assert_eq!(out.results[0].check, "ip-preserved");
    assert_eq!(get("db-01", "ip-preserved").outcome, Outcome::Pass);
    assert_eq!(get("db-01", "mac-preserved").outcome, Outcome::Pass);
    assert_eq!(get("db-01", "icmp").outcome, Outcome::Pass);
    assert_eq!(get("db-01", "tcp:5432").target, "192.0.2.15:5432");
    assert_eq!(
        get("db-01", "dns:db-01.corp.example").outcome,
        Outcome::Pass
    );
    let ip = get("web-01", "ip-preserved");
    assert_eq!(ip.outcome, Outcome::Fail);
    assert!(ip.detail.contains("192.0.2.99"), "{}", ip.detail);
    assert_eq!(get("web-01", "mac-preserved").outcome, Outcome::Pass);
    let https = get("web-01", "https://{ip}:8443/health");
    assert_eq!(https.target, "https://192.0.2.16:8443/health");
    assert_eq!(https.outcome, Outcome::Fail);
    assert_eq!(https.attempts, 3, "per-check retries = 2");
    assert_eq!(get("db-01", "icmp").attempts, 1, "plan retries = 0");
    assert_eq!(out.exit_code, 1);

    // Without observations, ip/mac checks are skipped, never passed.
    let out = verify::run_with(&plan, &prober, &Observations::new(), None, &settings).await;
    let skipped: Vec<_> = out
        .results
        .iter()
        .filter(|r| r.outcome == Outcome::Skipped)
        .map(|r| r.check.as_str())
        .collect();
    assert_eq!(
        skipped,
        [
            "ip-preserved",
            "mac-preserved",
            "ip-preserved",
            "mac-preserved"
        ]
    );
}

fn result(vm: &str, check: &str, outcome: Outcome) -> CheckResult {
    CheckResult {
        wave: if vm.starts_with('b') { "w2" } else { "w1" }.into(),
        vm: vm.into(),
        check: check.into(),
        kind: check.split(':').next().unwrap_or(check).into(),
        target: "192.0.2.15:5432".into(),
        outcome,
        detail: format!("{outcome} <&> \"detail\" | pipe"),
        latency: (outcome == Outcome::Pass).then(|| Duration::from_micros(2500)),
        at: now_rfc3339(),
        attempts: 1,
    }
}

fn sample() -> (Baseline, Vec<CheckResult>) {
    use Outcome::*;
    let before = Baseline::new(
        "p",
        vec![
            result("a", "tcp:1", Pass),
            result("a", "tcp:2", Pass),
            result("a", "tcp:3", Fail),
            result("a", "tcp:4", Error),
            result("a", "tcp:5", Skipped),
            result("b", "tcp:1", Pass),
        ],
    );
    let now = vec![
        result("a", "tcp:1", Pass),
        result("a", "tcp:2", Fail),
        result("a", "tcp:3", Fail),
        result("a", "tcp:4", Pass),
        result("a", "tcp:5", Error),
        result("a", "tcp:6", Pass),
        result("b", "tcp:1", Error),
        result("b", "icmp", Skipped),
    ];
    (before, now)
}

#[test]
fn baseline_diff_classifies_every_case() {
    let (before, now) = sample();
    let d = diff(Some(&before), &now);
    let statuses: Vec<DiffStatus> = d.iter().map(|d| d.status).collect();
    use DiffStatus::*;
    assert_eq!(
        statuses,
        [
            Ok,
            Regression,
            StillFailing,
            Fixed,
            New,
            Ok,
            Regression,
            Skipped
        ]
    );
    assert_eq!(d[1].before, Some(Outcome::Pass));
    assert_eq!(d[5].before, None);
    assert_eq!(exit_code(&d), 2);

    // Without a baseline: failures are new, exit code 1.
    let d = diff(None, &now);
    assert!(d.iter().all(|x| x.status != Regression));
    assert_eq!(exit_code(&d), 1);
    let passing: Vec<_> = now
        .iter()
        .filter(|r| r.outcome == Outcome::Pass)
        .cloned()
        .collect();
    assert_eq!(exit_code(&diff(Some(&before), &passing)), 0);
}

#[test]
fn baseline_file_round_trips() {
    let (before, _) = sample();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("baseline.json");
    before.save(&path).expect("save");
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(
        text.contains("\"format\": \"wavelift.baseline/v1\""),
        "{text}"
    );
    let back = Baseline::load(&path).expect("load");
    assert_eq!(back, before);

    std::fs::write(
        &path,
        "{\"format\":\"other\",\"plan\":\"p\",\"taken_at\":\"x\",\"results\":[]}",
    )
    .expect("write");
    let err = Baseline::load(&path).expect_err("wrong format");
    assert!(err.to_string().contains("wavelift.baseline/v1"), "{err}");
    std::fs::write(&path, "not json").expect("write");
    assert!(Baseline::load(&path).is_err());
    assert!(Baseline::load(&dir.path().join("missing.json")).is_err());
}

/// The sample's cutovers: one warm VM, one cold after a hard stop.
fn sample_cutovers() -> Vec<report::CutoverRecord> {
    vec![
        report::CutoverRecord {
            vm: "a".into(),
            migration: "warm".into(),
            downtime_ms: 82_000,
            precopy_rounds: 3,
            consistent_copy: true,
            backend: None,
            backend_steps: vec![],
        },
        report::CutoverRecord {
            vm: "b".into(),
            migration: "cold".into(),
            downtime_ms: 4_076_000,
            precopy_rounds: 0,
            consistent_copy: false,
            backend: Some("forklift".into()),
            backend_steps: vec![
                report::BackendStep {
                    name: "Initialize".into(),
                    phase: "Completed".into(),
                    started: Some("2026-12-06T00:00:02Z".into()),
                    completed: Some("2026-12-06T00:00:09Z".into()),
                },
                report::BackendStep {
                    name: "DiskTransferV2v".into(),
                    phase: "Completed".into(),
                    started: Some("2026-12-06T00:00:09Z".into()),
                    completed: Some("2026-12-06T01:02:00Z".into()),
                },
            ],
        },
    ]
}

fn sample_report_text(format: Format) -> String {
    let (before, now) = sample();
    let d = diff(Some(&before), &now);
    report::render(
        format,
        &Report {
            plan: "p & <q>",
            generated_at: "2026-12-06T01:12:44.210Z",
            baseline_taken_at: Some(&before.taken_at),
            diffs: &d,
            cutovers: &sample_cutovers(),
        },
    )
}

#[test]
fn reports_carry_each_vms_downtime() {
    let md = sample_report_text(Format::Markdown);
    assert!(md.contains("median 34m39s, max 1h07m over 2 VM(s)"), "{md}");
    assert!(
        md.contains("| a | warm | 1m22s | 3 | after a guest shutdown |"),
        "{md}"
    );
    assert!(
        md.contains("| b | cold | 1h07m | 0 | crash-consistent (hard stop) |"),
        "{md}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&sample_report_text(Format::Json)).expect("json");
    assert_eq!(v["cutovers"][0]["vm"], "a");
    assert_eq!(v["cutovers"][0]["downtime_ms"], 82_000);
    assert_eq!(v["cutovers"][1]["consistent_copy"], false);
    // Forklift's own steps (issue 16): in every format, absent for CDI cutovers.
    assert!(v["cutovers"][0].get("backend_steps").is_none());
    assert_eq!(v["cutovers"][1]["backend"], "forklift");
    assert_eq!(
        v["cutovers"][1]["backend_steps"][1]["name"],
        "DiskTransferV2v"
    );
    assert!(
        md.contains("forklift steps of b:\n\n- Initialize Completed 2026-12-06T00:00:02Z–2026-12-06T00:00:09Z\n- DiskTransferV2v Completed"),
        "{md}"
    );
    let xml = sample_report_text(Format::Junit);
    assert!(
        xml.contains("<property name=\"cutover.a\" value=\"warm migration, downtime 82000 ms, 3 precopy rounds, guest shut down\"/>"),
        "{xml}"
    );
    assert!(
        xml.contains("<property name=\"cutover.b.forklift\" value=\"Initialize Completed 2026-12-06T00:00:02Z–2026-12-06T00:00:09Z; DiskTransferV2v Completed"),
        "{xml}"
    );
}

#[test]
fn markdown_report_puts_regressions_first() {
    let md = sample_report_text(Format::Markdown);
    println!("{md}");
    assert!(md.contains("**FAILED**: 2 regression(s)"), "{md}");
    assert!(md.contains("## Summary"));
    assert!(
        md.contains("| **total** | 2 | 8 | 3 | 2 | 2 | 1 | 2 | 1 | 1 | 1 |"),
        "{md}"
    );
    let reg = md.find("## Regressions").expect("regressions section");
    let w1 = md.find("## Wave w1").expect("wave w1");
    let w2 = md.find("## Wave w2").expect("wave w2");
    assert!(reg < w1 && w1 < w2);
    // Within a VM the regression row comes before ok rows.
    let vm_a = &md[w1..w2];
    let first_reg = vm_a.find("**regression**").expect("regression row");
    let first_ok = vm_a.find("| ok |").expect("ok row");
    assert!(first_reg < first_ok, "{vm_a}");
    assert!(md.contains("\\| pipe"), "pipes escaped");
}

#[test]
fn json_report_has_the_documented_shape() {
    let text = sample_report_text(Format::Json);
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(v["schema"], "wavelift.verify/v1");
    assert_eq!(v["plan"], "p & <q>");
    assert_eq!(v["passed"], false);
    assert_eq!(v["exit_code"], 2);
    assert_eq!(v["summary"]["checks"], 8);
    assert_eq!(v["summary"]["regressions"], 2);
    assert!(v["baseline_taken_at"].is_string());
    let waves = v["waves"].as_array().expect("waves");
    assert_eq!(waves.len(), 2);
    assert_eq!(waves[0]["name"], "w1");
    let c = &waves[0]["vms"][0]["checks"][1];
    assert_eq!(c["check"], "tcp:2");
    assert_eq!(c["outcome"], "fail");
    assert_eq!(c["status"], "regression");
    assert_eq!(c["before"], "pass");
    assert!(c["latency_ms"].is_null());
    assert_eq!(waves[0]["vms"][0]["checks"][0]["latency_ms"], 2.5);
    for key in ["kind", "target", "detail", "at", "attempts"] {
        assert!(!c[key].is_null(), "{key}");
    }
}

/// Validates `xml` against tests/fixtures/junit.xsd with xmllint.
fn validate_junit(xml: &str) {
    let xsd = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/junit.xsd");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("report.xml");
    std::fs::write(&file, xml).expect("write");
    let out = match Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(xsd)
        .arg(&file)
        .output()
    {
        Ok(o) => o,
        Err(e) => panic!(
            "xmllint is needed to validate the JUnit report ({e}): apt-get install libxml2-utils"
        ),
    };
    assert!(
        out.status.success(),
        "JUnit report does not validate against junit.xsd:\n{}\n{xml}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn junit_report_counts_and_escapes() {
    let xml = sample_report_text(Format::Junit);
    println!("{xml}");
    assert!(xml.contains("classname=\"w1.a\""), "{xml}");
    assert!(
        xml.contains(
            "<testsuite name=\"w2\" tests=\"2\" failures=\"0\" errors=\"1\" skipped=\"1\""
        ),
        "{xml}"
    );
    assert!(xml.contains("type=\"regression\""), "{xml}");
    assert!(xml.contains("&lt;&amp;&gt;"), "escaped: {xml}");
    assert_eq!(xml.matches("<testcase ").count(), 8);
    assert_eq!(xml.matches("<failure ").count(), 2);
    assert_eq!(xml.matches("<error ").count(), 2);
    assert_eq!(xml.matches("<skipped>").count(), 1);
}

#[test]
#[ignore = "needs xmllint (libxml2-utils)"]
fn junit_report_validates_against_the_xsd() {
    validate_junit(&sample_report_text(Format::Junit));
    // An empty run and one without a baseline validate too.
    let empty = report::render(
        Format::Junit,
        &Report {
            plan: "p",
            generated_at: "2026-12-06T01:12:44.210Z",
            baseline_taken_at: None,
            diffs: &[],
            cutovers: &[],
        },
    );
    validate_junit(&empty);
}

#[test]
#[ignore = "needs xmllint (libxml2-utils)"]
fn the_xsd_check_rejects_invalid_junit() {
    // Guards the guard: a testcase without a name and an unknown element must not validate.
    let xsd = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/junit.xsd");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bad.xml");
    std::fs::write(
        &file,
        "<testsuites><testsuite name=\"w\" tests=\"1\"><testcase classname=\"w.v\"/>\
         <bogus/></testsuite></testsuites>",
    )
    .expect("write");
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(xsd)
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("xmllint is needed ({e}): apt-get install libxml2-utils"));
    assert!(!out.status.success(), "invalid JUnit accepted");
}

// ------------------------------------------------------------ real probes on loopback

async fn http_ok_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn verify_on_loopback_with_real_probes_and_baseline() {
    let up = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let up_port = up.local_addr().expect("addr").port();
    let web = http_ok_server().await;
    let dead_dns = {
        let s = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("udp");
        s.local_addr().expect("addr")
    };
    let mut text = head()
        .replace("{dns}", &format!("dns_server = \"{dead_dns}\""))
        .replace("{cidr}", "127.0.0.0/24");
    text += &vm(
        "lo-db",
        "w1",
        "127.0.0.1",
        "02:00:00:00:00:01",
        &format!(
            r#""tcp:{up_port}", "http://{{ip}}:{}/health", "dns:lo-db.test.example""#,
            web.port()
        ),
    );
    let plan = plan(&text);
    let prober = RealProber::new();
    let obs = Observations::new();

    let before = verify::run(&plan, &prober, &obs, None).await;
    let outcomes: Vec<(String, Outcome)> = before
        .results
        .iter()
        .map(|r| (r.check.clone(), r.outcome))
        .collect();
    assert_eq!(outcomes[2].1, Outcome::Pass, "{:#?}", before.results);
    assert_eq!(outcomes[3].1, Outcome::Pass, "{:#?}", before.results);
    assert_eq!(
        outcomes[4].1,
        Outcome::Error,
        "unreachable resolver is an error: {:#?}",
        before.results
    );
    let baseline = before.baseline();
    assert_eq!(baseline.plan, "verify-test");

    // "Cutover" breaks the TCP service.
    drop(up);
    let after = verify::run(&plan, &prober, &obs, Some(&baseline)).await;
    let tcp = after
        .diffs
        .iter()
        .find(|d| d.result.kind == "tcp")
        .expect("tcp result");
    assert_eq!(tcp.status, DiffStatus::Regression, "{tcp:#?}");
    assert_eq!(after.exit_code, 2);
    let dns = after
        .diffs
        .iter()
        .find(|d| d.result.kind == "dns")
        .expect("dns");
    assert_eq!(dns.status, DiffStatus::StillFailing);
    validate_junit(&after.render(Format::Junit));
    assert!(after.render(Format::Markdown).contains("## Regressions"));
}

//! `wavelift policy test`, run as the real binary: verdicts, the rules named, exit codes.

use std::path::Path;
use std::process::Command;

const POLICIES: &str = r#"# drafted for shop-web-01
apiVersion: k8s.cni.cncf.io/v1beta2
kind: MultiNetworkPolicy
metadata:
  name: shop-web-01
  namespace: mig-quickstart
  annotations:
    k8s.v1.cni.cncf.io/policy-for: vlan-210
spec:
  podSelector:
    matchLabels:
      wavelift.io/plan: quickstart
      wavelift.io/vm: shop-web-01
  policyTypes: [Ingress]
  ingress:
  - from:
    - ipBlock: {cidr: 192.0.2.0/24, except: [192.0.2.128/25]}
    ports:
    - {port: 443}
  - from:
    - ipBlock: {cidr: 10.20.0.0/16}
    ports:
    - {port: 8000, endPort: 8100, protocol: TCP}
  - ports:
    - {port: 53, protocol: UDP}
---
apiVersion: k8s.cni.cncf.io/v1beta2
kind: MultiNetworkPolicy
metadata:
  name: ops
  namespace: mig-quickstart
  annotations:
    k8s.v1.cni.cncf.io/policy-for: mig-quickstart/vlan-210
spec:
  podSelector:
    matchLabels:
      wavelift.io/plan: quickstart
  ingress:
  - from:
    - ipBlock: {cidr: 192.0.2.10/32}
"#;

fn run(dir: &Path, policy: &str, args: &[&str]) -> (i32, String, String) {
    let file = dir.join("p.yaml");
    std::fs::write(&file, policy).expect("write policy");
    let out = Command::new(env!("CARGO_BIN_EXE_wavelift"))
        .args(["policy", "test", "--policy"])
        .arg(&file)
        .args(args)
        .output()
        .expect("run wavelift");
    (
        out.status.code().expect("exited"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn allow_names_every_rule_that_allows() {
    let d = tempfile::tempdir().expect("tmp");
    let (code, out, err) = run(
        d.path(),
        POLICIES,
        &[
            "--vm",
            "shop-web-01",
            "--from",
            "192.0.2.10",
            "--port",
            "443",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with(
            "allow (192.0.2.10 -> shop-web-01 443/tcp on network mig-quickstart/vlan-210)"
        ),
        "{out}"
    );
    assert!(
        out.contains("allowed by MultiNetworkPolicy mig-quickstart/shop-web-01 ingress[0]\n"),
        "{out}"
    );
    assert!(
        out.contains("allowed by MultiNetworkPolicy mig-quickstart/ops ingress[0]\n"),
        "{out}"
    );
    // endPort range, and UDP with any source.
    let (code, out, _) = run(
        d.path(),
        POLICIES,
        &[
            "--vm",
            "shop-web-01",
            "--from",
            "10.20.3.4",
            "--port",
            "8100/tcp",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("shop-web-01 ingress[1]"), "{out}");
    let (code, out, _) = run(
        d.path(),
        POLICIES,
        &[
            "--vm",
            "shop-web-01",
            "--from",
            "203.0.113.1",
            "--port",
            "53/udp",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("shop-web-01 ingress[2]"), "{out}");
}

#[test]
fn deny_names_the_default_deny() {
    let d = tempfile::tempdir().expect("tmp");
    // In `except`.
    let (code, out, err) = run(
        d.path(),
        POLICIES,
        &[
            "--vm",
            "shop-web-01",
            "--from",
            "192.0.2.200",
            "--port",
            "443",
        ],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.starts_with(
            "deny (192.0.2.200 -> shop-web-01 443/tcp on network mig-quickstart/vlan-210)"
        ),
        "{out}"
    );
    assert!(
        out.contains("default deny of MultiNetworkPolicy mig-quickstart/shop-web-01\n"),
        "{out}"
    );
    assert!(
        out.contains("default deny of MultiNetworkPolicy mig-quickstart/ops\n"),
        "{out}"
    );
    // Past endPort; UDP where only TCP is allowed.
    let (code, _, _) = run(
        d.path(),
        POLICIES,
        &[
            "--vm",
            "shop-web-01",
            "--from",
            "10.20.3.4",
            "--port",
            "8101",
        ],
    );
    assert_eq!(code, 1);
    let (code, _, _) = run(
        d.path(),
        POLICIES,
        &[
            "--vm",
            "shop-web-01",
            "--from",
            "192.0.2.9",
            "--port",
            "443/udp",
        ],
    );
    assert_eq!(code, 1);
}

#[test]
fn a_vm_no_policy_selects_is_an_error_naming_the_vms_the_file_selects() {
    let d = tempfile::tempdir().expect("tmp");
    let only_web = POLICIES.split("\n---\n").next().expect("first doc");
    let (code, out, err) = run(
        d.path(),
        only_web,
        &[
            "--vm",
            "shop-db-01",
            "--from",
            "192.0.2.200",
            "--port",
            "5432",
        ],
    );
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains("no policy in the file selects shop-db-01"),
        "{err}"
    );
    assert!(
        err.trim_end().ends_with("the file selects: shop-web-01"),
        "{err}"
    );
}

/// A file as `policy draft` writes it: a comment naming the firewall rule above each rule.
const DRAFTED: &str = r#"# wavelift policy draft for VM shop-db-01 (192.0.2.15)
# no warnings
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: wavelift-shop-db-01
  namespace: mig-quickstart
spec:
  podSelector:
    matchLabels:
      wavelift.io/plan: quickstart
      wavelift.io/vm: shop-db-01
  policyTypes:
  - Ingress
  ingress:
  # from fw/edge.iptables:7 rule app-to-db (owner dba)
  - from:
    - ipBlock:
        cidr: 192.0.2.0/29
    ports:
    - protocol: TCP
      port: 5432
  - from:
    - ipBlock:
        cidr: 192.0.2.0/24
        except:
        - 192.0.2.128/25
    ports:
    - protocol: TCP
      port: 5432
  # from fw/core.csv:3 rule 12 dba-net (owner dba) [broad: any service]
  #   except what fw/core.csv:2 rule 11 no-batch denies first
  - from:
    - ipBlock:
        cidr: 192.0.2.0/28
        except:
        - 192.0.2.8/29
"#;

#[test]
fn allowing_rules_are_shown_with_the_firewall_rule_written_above_them() {
    let d = tempfile::tempdir().expect("tmp");
    let (code, out, err) = run(
        d.path(),
        DRAFTED,
        &[
            "--vm",
            "shop-db-01",
            "--from",
            "192.0.2.5",
            "--port",
            "5432",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out,
        "allow (192.0.2.5 -> shop-db-01 5432/tcp on the pod network)\n\
         \x20 allowed by NetworkPolicy mig-quickstart/wavelift-shop-db-01 ingress[0]: from fw/edge.iptables:7 rule app-to-db (owner dba)\n\
         \x20 allowed by NetworkPolicy mig-quickstart/wavelift-shop-db-01 ingress[1]\n\
         \x20 allowed by NetworkPolicy mig-quickstart/wavelift-shop-db-01 ingress[2]: from fw/core.csv:3 rule 12 dba-net (owner dba) [broad: any service]\n\
         \x20   except what fw/core.csv:2 rule 11 no-batch denies first\n"
    );
}

#[test]
fn invalid_input_exits_2_with_a_location() {
    let d = tempfile::tempdir().expect("tmp");
    let (code, _, err) = run(
        d.path(),
        POLICIES,
        &[
            "--vm",
            "shop-web-01",
            "--from",
            "192.0.2.1",
            "--port",
            "443/icmp",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown protocol"), "{err}");
    let bad = POLICIES.replace("10.20.0.0/16", "10.20.0.0/33");
    let (code, _, err) = run(
        d.path(),
        &bad,
        &[
            "--vm",
            "shop-web-01",
            "--from",
            "192.0.2.1",
            "--port",
            "443",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("p.yaml:2:1:"), "{err}");
    assert!(
        err.contains("spec.ingress[1].from[0].ipBlock.cidr"),
        "{err}"
    );
    let (code, _, err) = run(
        d.path(),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
        &["--vm", "a", "--from", "192.0.2.1", "--port", "1"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("kind \"ConfigMap\""), "{err}");
    let (code, _, err) = run(
        d.path(),
        "kind: [\n",
        &["--vm", "a", "--from", "192.0.2.1", "--port", "1"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("p.yaml:"), "{err}");
}

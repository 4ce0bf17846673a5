//! The translator on hand-built rule sets: every case names the exact rules it expects.

use crate::support::*;
use wavelift::policy::draft::{self, DraftOptions, ProbeSource, VmNetwork};
use wavelift::policy::k8s::{MnpVersion, PolicyKind};
use wavelift::policy::rules::{Action, Direction, Proto};

#[test]
fn deny_before_allow_becomes_except_and_names_both_rules() {
    let d = draft1(
        vec![
            deny(6, "block-scanner", "10.0.0.5", WEB, "tcp/443"),
            allow(7, "web-in", "10.0.0.0/24", WEB, "tcp/443"),
        ],
        Action::Deny,
    );
    assert_eq!(
        shown(&d.ingress),
        ["10.0.0.0/24 except 10.0.0.5/32 | tcp/443 | 7 -6"]
    );
    assert_warning(
        &d,
        &[
            "fw/edge.iptables:6 rule block-scanner (owner netsec)",
            "fw/edge.iptables:7 rule web-in (owner netsec)",
            "except",
        ],
    );
    assert!(d
        .yaml
        .contains("  # from fw/edge.iptables:7 rule web-in (owner netsec)\n"));
    assert!(d
        .yaml
        .contains("except what fw/edge.iptables:6 rule block-scanner (owner netsec) denies first"));
    assert!(
        d.yaml.contains("        except:\n        - 10.0.0.5/32\n"),
        "{}",
        d.yaml
    );
}

#[test]
fn a_deny_after_the_allow_changes_nothing() {
    let d = draft1(
        vec![
            allow(7, "web-in", "10.0.0.0/24", WEB, "tcp/443"),
            deny(8, "late", "10.0.0.5", WEB, "tcp/443"),
        ],
        Action::Deny,
    );
    assert_eq!(shown(&d.ingress), ["10.0.0.0/24 | tcp/443 | 7"]);
    assert!(!has_warning(&d, &["late"]), "{:#?}", d.warnings);
}

#[test]
fn partially_overlapping_services_are_split_into_rules() {
    let d = draft1(
        vec![
            deny(6, "no-85", "10.0.0.5", WEB, "tcp/85"),
            allow(7, "range", "10.0.0.0/24", WEB, "tcp/80-90,udp/53"),
            allow(8, "second", "10.0.1.0/24", WEB, "tcp/88-100"),
        ],
        Action::Deny,
    );
    assert_eq!(
        shown(&d.ingress),
        [
            "10.0.0.0/24 | tcp/80-84,tcp/86-90,udp/53 | 7 -6",
            "10.0.0.0/24 except 10.0.0.5/32 | tcp/85 | 7 -6",
            "10.0.1.0/24 | tcp/88-100 | 8",
        ]
    );
    assert!(
        d.yaml.contains("      port: 80\n      endPort: 84\n"),
        "{}",
        d.yaml
    );
}

#[test]
fn any_source_and_any_service_stay_broad_with_warnings() {
    let d = draft1(vec![allow(7, "open", "any", WEB, "any")], Action::Deny);
    assert_eq!(shown(&d.ingress), ["0.0.0.0/0 | all | 7"]);
    assert_warning(&d, &["fw/edge.iptables:7 rule open", "any source"]);
    assert_warning(
        &d,
        &["fw/edge.iptables:7 rule open", "every protocol and port"],
    );
    assert!(
        d.yaml.contains("[broad: any source, any service]"),
        "{}",
        d.yaml
    );
    // No `ports`: every protocol.
    assert!(!d.yaml.contains("ports:"), "{}", d.yaml);
}

#[test]
fn icmp_deny_before_allow_any_is_narrower_and_warned() {
    let d = draft1(
        vec![
            deny(6, "no-ping", "10.0.0.0/24", WEB, "icmp"),
            allow(7, "open", "any", WEB, "any"),
        ],
        Action::Deny,
    );
    assert_eq!(
        shown(&d.ingress),
        [
            "0.0.0.0/0 except 10.0.0.0/24 | all | 7 -6",
            "10.0.0.0/24 | tcp,udp,sctp | 7 -6",
        ]
    );
    // What cannot be said: every protocol but ICMP from 10.0.0.0/24.
    assert_warning(
        &d,
        &[
            "fw/edge.iptables:7 rule open",
            "every other IP protocol from 10.0.0.0/24",
            "fw/edge.iptables:6 rule no-ping",
            "left out",
        ],
    );
}

#[test]
fn icmp_alone_cannot_be_admitted() {
    let d = draft1(
        vec![
            allow(7, "ping", "10.0.0.0/24", WEB, "icmp"),
            allow(8, "ssh", "10.0.0.0/24", WEB, "tcp/22"),
        ],
        Action::Deny,
    );
    assert_eq!(shown(&d.ingress), ["10.0.0.0/24 | tcp/22 | 8"]);
    assert_warning(
        &d,
        &["rule ping", "admits ICMP from 10.0.0.0/24", "left out"],
    );
}

#[test]
fn a_range_or_cidr_covering_the_vm_applies_and_any_alone_does_not_name_it() {
    // `any` applies here because the list (so the export) names the VM; see
    // any_destinations_apply_in_an_export_that_names_the_vm_elsewhere.
    let d = draft1(
        vec![
            allow(
                5,
                "to-range",
                "10.1.0.0/16",
                "192.0.2.10-192.0.2.20",
                "tcp/8443",
            ),
            allow(6, "to-net", "10.2.0.0/16", "192.0.2.0/24", "udp/161"),
            allow(
                7,
                "not-us",
                "10.3.0.0/16",
                "192.0.2.100-192.0.2.120",
                "tcp/1",
            ),
            allow(8, "to-any", "10.4.0.0/16", "any", "tcp/9000"),
        ],
        Action::Deny,
    );
    assert_eq!(
        shown(&d.ingress),
        [
            "10.1.0.0/16 | tcp/8443 | 5",
            "10.2.0.0/16 | udp/161 | 6",
            "10.4.0.0/16 | tcp/9000 | 8",
        ]
    );
    // An export that reaches the VM only through `any` never names it: it is about other
    // machines.
    let only_any = draft1(
        vec![allow(8, "to-any", "10.4.0.0/16", "any", "tcp/9000")],
        Action::Deny,
    );
    assert!(only_any.ingress.is_empty());
    assert_warning(
        &only_any,
        &["no firewall rule admits anything to 192.0.2.17"],
    );
}

#[test]
fn any_destinations_apply_in_an_export_that_names_the_vm_elsewhere() {
    // One export: FORWARD names the VM; INPUT reaches it only through `any` destinations,
    // with a deny before an allow and a default that allows.
    let mut input = list(
        "filter/INPUT",
        vec![
            deny(3, "no-telnet", "10.9.0.0/16", "any", "tcp/23"),
            allow(4, "admin-any", "10.9.0.0/16", "0.0.0.0/0", "tcp/22-23"),
            allow(5, "other-host", "10.7.0.0/16", "203.0.113.9", "tcp/80"),
        ],
        Action::Allow,
    );
    input.default_origin = origin(2, "INPUT policy");
    let forward = list(
        "filter/FORWARD",
        vec![allow(7, "web", "10.0.0.0/24", WEB, "tcp/443")],
        Action::Deny,
    );
    let named = set(vec![input.clone(), forward]);
    // Another export that never names the VM: its `any` rule does not apply.
    let mut elsewhere = set(vec![list(
        "access-list dmz_in",
        vec![allow(9, "dmz-any", "10.5.0.0/16", "any", "tcp/8080")],
        Action::Deny,
    )]);
    elsewhere.file = "fw/dmz.cfg".into();
    for r in &mut elsewhere.lists[0].rules {
        r.origin.file = "fw/dmz.cfg".into();
    }
    let d = draft_with(&vm("web", WEB), &[named, elsewhere], MnpVersion::V1beta2);
    assert_eq!(
        shown(&d.ingress),
        [
            // INPUT: the `any` allow, minus what the deny before it takes (tcp/23); its
            // rule to another host and its default allow do not apply.
            "10.9.0.0/16 | tcp/22 | 4 -3",
            "10.0.0.0/24 | tcp/443 | 7",
        ]
    );
    assert_warning(
        &d,
        &[
            "fw/edge.iptables:4 rule admin-any",
            "its destination is `any`, not 192.0.2.17 by name",
            "its export names 192.0.2.17",
            "kept as broad",
        ],
    );
    assert_warning(
        &d,
        &[
            "fw/edge.iptables:2 rule INPUT policy",
            "the list default (filter/INPUT) allows, but the list names 192.0.2.17 nowhere",
            "not applied (narrower)",
        ],
    );
    assert!(!has_warning(&d, &["dmz-any"]), "{:?}", d.warnings);
    // The same INPUT list alone names no VM: nothing applies.
    let alone = draft_with(&vm("web", WEB), &[set(vec![input])], MnpVersion::V1beta2);
    assert!(alone.ingress.is_empty(), "{:?}", shown(&alone.ingress));
    assert_warning(&alone, &["no firewall rule admits anything to 192.0.2.17"]);
}

#[test]
fn port_ranges_use_end_port_on_v1beta2_and_expand_up_to_32_ports_on_v1beta1() {
    let rules = vec![
        allow(7, "small", "10.0.0.0/24", WEB, "tcp/8000-8031"),
        allow(8, "large", "10.0.1.0/24", WEB, "tcp/9000-9032"),
    ];
    let sets = [set(vec![list("filter/FORWARD", rules, Action::Deny)])];
    let v2 = draft_with(&vm("web", WEB), &sets, MnpVersion::V1beta2);
    assert_eq!(
        shown(&v2.ingress),
        [
            "10.0.0.0/24 | tcp/8000-8031 | 7",
            "10.0.1.0/24 | tcp/9000-9032 | 8"
        ]
    );
    assert!(v2.yaml.starts_with("# wavelift policy draft for VM web"));
    assert!(v2.yaml.contains("apiVersion: k8s.cni.cncf.io/v1beta2\n"));
    let v1 = draft_with(&vm("web", WEB), &sets, MnpVersion::V1beta1);
    assert!(v1.yaml.contains("apiVersion: k8s.cni.cncf.io/v1beta1\n"));
    assert!(!v1.yaml.contains("endPort:"), "{}", v1.yaml);
    assert_eq!(v1.ingress.len(), 1, "{:?}", shown(&v1.ingress));
    assert_eq!(v1.ingress[0].ports.len(), 32);
    assert!(v1.ingress[0].ports.iter().all(|p| p.lo == p.hi));
    assert_warning(&v1, &["rule large", "9000-9032", "v1beta1", "left out"]);
    // A NetworkPolicy (L3) always has endPort.
    let mut l3 = vm("web", WEB);
    l3.network = VmNetwork::Pod;
    let np = draft_with(&l3, &sets, MnpVersion::V1beta1);
    assert_eq!(np.doc.kind, PolicyKind::NetworkPolicy);
    assert!(np
        .yaml
        .contains("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"));
    assert!(np.yaml.contains("endPort: 9032"));
    assert!(!np.yaml.contains("policy-for"));
}

#[test]
fn egress_rules_come_from_rules_with_the_vm_as_source() {
    let mut out = allow(9, "web-to-app", WEB, "192.0.2.16", "tcp/8080");
    out.direction = Some(Direction::Out);
    let mut inbound_only = allow(10, "in-only", "192.0.2.16", WEB, "tcp/22");
    inbound_only.direction = Some(Direction::In);
    let d = draft1(vec![out, inbound_only], Action::Deny);
    assert_eq!(shown(&d.egress), ["192.0.2.16/32 | tcp/8080 | 9"]);
    assert_eq!(shown(&d.ingress), ["192.0.2.16/32 | tcp/22 | 10"]);
    assert_eq!(
        d.doc.spec.policy_types.as_deref(),
        Some(&["Ingress".to_string(), "Egress".to_string()][..])
    );
    assert!(d
        .yaml
        .contains("  egress:\n  # from fw/edge.iptables:9 rule web-to-app"));
    assert!(d.yaml.contains("  - to:\n"));
    assert!(
        !has_warning(&d, &["admits anything from"]),
        "{:?}",
        d.warnings
    );
    // A list naming the VM as a source that admits nothing out of it: egress is
    // restricted to nothing, and warned as ingress is.
    let mut blocked = deny(9, "no-out", WEB, "any", "any");
    blocked.direction = Some(Direction::Out);
    let d = draft1(
        vec![blocked, allow(7, "in", "10.0.0.0/24", WEB, "tcp/443")],
        Action::Deny,
    );
    assert!(d.egress.is_empty());
    assert!(d.yaml.contains("  egress: []\n"), "{}", d.yaml);
    assert_warning(&d, &["no firewall rule admits anything from 192.0.2.17"]);
    // No rule with the VM as source: no Egress type at all.
    let d = draft1(
        vec![allow(7, "in", "10.0.0.0/24", WEB, "tcp/443")],
        Action::Deny,
    );
    assert_eq!(
        d.doc.spec.policy_types.as_deref(),
        Some(&["Ingress".to_string()][..])
    );
    assert!(d.doc.spec.egress.is_none());
}

#[test]
fn a_default_allow_chain_admits_everything_not_denied_broadly() {
    let d = draft1(
        vec![
            deny(6, "no-ssh", "any", WEB, "tcp/22"),
            allow(7, "web", "10.0.0.0/24", WEB, "tcp/443"),
        ],
        Action::Allow,
    );
    assert_eq!(
        shown(&d.ingress),
        [
            "10.0.0.0/24 | tcp/443 | 7",
            "0.0.0.0/0 | tcp/1-21,tcp/23-65535,udp,sctp | 1 -6",
        ]
    );
    assert_warning(
        &d,
        &["fw/edge.iptables:1 rule default", "list default", "allows"],
    );
    // Every protocol but TCP 22: other protocols cannot be said.
    assert_warning(&d, &["every other IP protocol", "left out"]);
}

#[test]
fn unresolved_names_are_never_widened() {
    let d = draft1(
        vec![
            allow(7, "from-bastion", "10.0.0.1,bastion.corp", WEB, "tcp/22"),
            deny(8, "block-legacy", "legacy-hosts", WEB, "tcp/443"),
            allow(9, "web", "10.0.0.0/24", WEB, "tcp/443,tcp/80"),
        ],
        Action::Deny,
    );
    assert_eq!(
        shown(&d.ingress),
        ["10.0.0.1/32 | tcp/22 | 7", "10.0.0.0/24 | tcp/80 | 9 -8"]
    );
    assert_warning(
        &d,
        &[
            "rule from-bastion",
            "bastion.corp",
            "not resolved",
            "left out",
        ],
    );
    assert_warning(
        &d,
        &[
            "rule block-legacy",
            "rule web",
            "legacy-hosts",
            "taken as denying every peer",
        ],
    );
}

#[test]
fn disabled_rules_never_match() {
    let mut off_deny = deny(6, "off-deny", "10.0.0.5", WEB, "tcp/443");
    off_deny.disabled = true;
    let mut off_allow = allow(8, "off-allow", "10.9.0.0/16", WEB, "tcp/22");
    off_allow.disabled = true;
    let d = draft1(
        vec![
            off_deny,
            allow(7, "web", "10.0.0.0/24", WEB, "tcp/443"),
            off_allow,
        ],
        Action::Deny,
    );
    assert_eq!(shown(&d.ingress), ["10.0.0.0/24 | tcp/443 | 7"]);
}

#[test]
fn narrowed_allows_are_left_out_and_narrowed_denies_taken_whole() {
    let mut sport = allow(7, "sport", "10.0.0.0/24", WEB, "tcp/443");
    sport.narrowed_by = vec!["source port 1024-65535".into()];
    let mut iface = deny(8, "iface", "10.0.1.0/24", WEB, "tcp/22");
    iface.narrowed_by = vec!["interface eth1".into()];
    let d = draft1(
        vec![sport, iface, allow(9, "ssh", "10.0.0.0/16", WEB, "tcp/22")],
        Action::Deny,
    );
    assert_eq!(
        shown(&d.ingress),
        ["10.0.0.0/16 except 10.0.1.0/24 | tcp/22 | 9 -8"]
    );
    assert_warning(&d, &["rule sport", "source port 1024-65535", "left out"]);
    assert_warning(&d, &["rule iface", "rule ssh", "interface eth1"]);
}

#[test]
fn exports_are_unioned_each_with_its_provenance() {
    let a = set(vec![list(
        "filter/FORWARD",
        vec![allow(7, "web", "10.0.0.0/24", WEB, "tcp/443")],
        Action::Deny,
    )]);
    let mut b = set(vec![list(
        "access-list outside_in",
        vec![
            deny(3, "deny-10", "10.0.0.0/8", WEB, "any"),
            allow(4, "mon", "10.8.0.0/16", WEB, "udp/161"),
        ],
        Action::Deny,
    )]);
    b.file = "fw/asa.cfg".into();
    for r in &mut b.lists[0].rules {
        r.origin.file = "fw/asa.cfg".into();
    }
    let d = draft_with(&vm("web", WEB), &[a, b], MnpVersion::V1beta2);
    assert_eq!(shown(&d.ingress), ["10.0.0.0/24 | tcp/443 | 7"]);
    // The ASA list names the VM and denies 10/8 before its allow: its own allow admits
    // nothing; the iptables list's allow stands (union).
    assert_warning(&d, &["fw/asa.cfg:3 rule deny-10", "fw/asa.cfg:4 rule mon"]);
    let origins: Vec<String> = draft::rules_for(&d, Proto::Tcp, Some(443))
        .iter()
        .map(|o| o.to_string())
        .collect();
    assert_eq!(origins, ["fw/edge.iptables:7 rule web (owner netsec)"]);
    assert!(draft::rules_for(&d, Proto::Udp, Some(161)).is_empty());
}

#[test]
fn probe_sources_get_their_own_commented_rule() {
    let mut v = vm("web", WEB);
    v.probes = vec![ProbeSource {
        cidr: "198.51.100.0/28".parse().expect("cidr"),
        why: "probe_sources".into(),
    }];
    let d = draft_with(
        &v,
        &[set(vec![list("filter/FORWARD", vec![], Action::Deny)])],
        MnpVersion::V1beta2,
    );
    assert_eq!(
        shown(&d.ingress),
        ["198.51.100.0/28 | all | probe probe_sources"]
    );
    assert!(d
        .yaml
        .contains("  # wavelift probes (probe_sources)\n  - from:\n"));
    assert_warning(&d, &["no firewall rule admits anything to 192.0.2.17"]);
    let mut c = vm("web", WEB);
    c.probes = vec![ProbeSource {
        cidr: "192.0.2.250/32".parse().expect("cidr"),
        why: "probe_ip of network vlan-210".into(),
    }];
    let d = draft_with(&c, &[], MnpVersion::V1beta2);
    assert!(d
        .yaml
        .contains("# wavelift probes (probe_ip of network vlan-210)"));
    assert!(!has_warning(&d, &["no probe sources"]));
    // The probe rule is not a firewall rule a check relies on.
    assert!(draft::rules_for(&d, Proto::Tcp, Some(443)).is_empty());
}

#[test]
fn the_policy_object_names_selects_and_labels_the_vm() {
    let d = draft1(
        vec![allow(7, "web", "10.0.0.0/24", WEB, "tcp/443")],
        Action::Deny,
    );
    assert_eq!(d.doc.name, "wavelift-web");
    assert_eq!(d.doc.namespace, "mig-quickstart");
    assert_eq!(
        d.doc.kind,
        PolicyKind::MultiNetworkPolicy {
            version: MnpVersion::V1beta2,
            policy_for: vec!["mig-quickstart/vlan-210".into()]
        }
    );
    assert_eq!(d.doc.labels["app.kubernetes.io/managed-by"], "wavelift");
    let sel = d
        .doc
        .spec
        .pod_selector
        .as_ref()
        .and_then(|s| s.match_labels.as_ref());
    let sel = sel.expect("matchLabels");
    assert_eq!(sel.len(), 2);
    assert_eq!(sel["wavelift.io/vm"], "web");
    assert!(d
        .yaml
        .contains("  annotations:\n    k8s.v1.cni.cncf.io/policy-for: mig-quickstart/vlan-210\n"));
}

/// Labels whose values YAML would read as something else are quoted.
#[test]
fn yaml_roundtrips_odd_label_values() {
    let mut v = vm("web", WEB);
    v.labels.insert("wavelift.io/wave".into(), "yes".into());
    v.labels.insert("x".into(), "0123".into());
    v.labels.insert("y".into(), "a: b # c".into());
    let d = draft_with(&v, &[], MnpVersion::V1beta2);
    assert_eq!(d.doc.labels["x"], "0123");
}

/// The indexed evaluation equals a scan of every rule: many VMs against a generated rule
/// set, each drafted with the full set and with only its own rules.
#[test]
fn the_index_finds_the_same_rules_as_a_scan() {
    let mut rules = Vec::new();
    for i in 0..200u32 {
        let dst = match i % 4 {
            0 => format!("10.0.{}.{}", i % 3, i % 250),
            1 => format!("10.0.{}.0/24", i % 3),
            2 => format!("10.0.0.{}-10.0.2.{}", i % 100, i % 200),
            _ => "10.0.0.0/16".into(),
        };
        let src = format!("172.16.{}.0/24", i % 50);
        let svc = format!("tcp/{}", 1000 + i % 17);
        if i % 7 == 0 {
            rules.push(deny(i as usize + 1, "d", &src, &dst, &svc));
        } else {
            rules.push(allow(i as usize + 1, "a", &src, &dst, &svc));
        }
    }
    let full = [set(vec![list("l", rules.clone(), Action::Deny)])];
    for last in [1u8, 5, 77, 130, 250] {
        for third in 0..3 {
            let ip = format!("10.0.{third}.{last}");
            let ipa: std::net::IpAddr = ip.parse().expect("ip");
            let own: Vec<_> = rules
                .iter()
                .filter(|r| r.dst.contains(ipa))
                .cloned()
                .collect();
            let a = draft::draft_vm(&vm("v", &ip), &full, &DraftOptions::default());
            let b = draft::draft_vm(
                &vm("v", &ip),
                &[set(vec![list("l", own, Action::Deny)])],
                &DraftOptions::default(),
            );
            assert_eq!(shown(&a.ingress), shown(&b.ingress), "{ip}");
            assert_eq!(a.yaml, b.yaml);
        }
    }
}

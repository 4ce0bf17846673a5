//! nft JSON, AWS security groups and PAN-OS XML: every rule at its JSON/XML element's line.

use super::*;
use Action::{Allow, Deny};

#[test]
fn nft_json() {
    let f = "ruleset.nft.json";
    let rs = parse_fixture(f);
    assert_eq!(rs.format, "nft");
    assert_eq!(
        rs.warnings,
        [
            "policy/ruleset.nft.json:11: set `@legacy_batch` is not in the export; left unresolved",
            "policy/ruleset.nft.json:16: conditional RETURN: the rules after it in this chain are kept, narrowed by `not matching` it",
        ]
    );
    let o = |l, n, w| origin(f, l, Some(n), w);
    let partners = set(
        &[
            r("198.51.100.0", "198.51.100.255"),
            r("198.51.100.64", "198.51.100.127"),
            r("203.0.113.1", "203.0.113.50"),
        ],
        &[],
    );
    let forward = RuleList {
        name: "inet fw/forward".into(),
        rules: vec![
            // `ct state established,related accept` is return traffic: left out
            narrowed(
                rule(
                    o(10, "no ping", Some("netsec")),
                    Deny,
                    None,
                    AddrSet::Any,
                    set(&[r("192.0.2.0", "192.0.2.15")], &[]),
                    svc(&[(Proto::Icmp, None)]),
                ),
                &["icmp type == \"echo-request\""],
            ),
            rule(
                o(11, "legacy batch", Some("shop-dba")),
                Deny,
                None,
                set(&[], &["@legacy_batch"]),
                AddrSet::Any,
                svc(&[tcp(5432, 5432)]),
            ),
            // chain `shop` inlined under `ip saddr @partners`
            rule(
                o(15, "partners to app", Some("shop-app")),
                Allow,
                None,
                partners.clone(),
                set(&[h("192.0.2.16")], &[]),
                svc(&[tcp(8080, 8080)]),
            ),
            narrowed(
                rule(
                    o(17, "handle 22", Some("shop-app")),
                    Deny,
                    None,
                    partners,
                    AddrSet::Any,
                    svc(&[(Proto::Tcp, None)]),
                ),
                &[
                    "not matching the RETURN at policy/ruleset.nft.json:16",
                    "tcp sport == {\"range\":[1024,65535]}",
                ],
            ),
            rule(
                o(13, "web", Some("web-team")),
                Allow,
                None,
                AddrSet::Any,
                set(&[r("192.0.2.10", "192.0.2.20")], &[]),
                svc(&[tcp(80, 80), tcp(443, 443), tcp(8000, 8090)]),
            ),
            rule(
                o(14, "handle 15", None),
                Allow,
                None,
                set(&[h("192.0.2.16"), r("198.51.100.0", "198.51.100.255")], &[]),
                set(&[h("192.0.2.15")], &[]),
                svc(&[tcp(5432, 5432)]),
            ),
        ],
        default: Deny,
        default_origin: o(4, "inet fw/forward policy", None),
        implicit_default: false,
    };
    let input = RuleList {
        name: "inet fw/input".into(),
        rules: vec![
            // `iifname lo accept` is left out; `!=` is complemented
            rule(
                o(19, "ssh", Some("netsec")),
                Deny,
                Some(Direction::In),
                set(
                    &[
                        r("0.0.0.0", "198.51.99.255"),
                        r("198.51.101.0", "255.255.255.255"),
                    ],
                    &[],
                ),
                AddrSet::Any,
                svc(&[tcp(22, 22)]),
            ),
        ],
        default: Allow,
        default_origin: o(5, "inet fw/input policy", None),
        implicit_default: false,
    };
    assert_eq!(rs.lists.len(), 2);
    assert_list(&rs.lists[0], &forward);
    assert_list(&rs.lists[1], &input);
}

/// The AWS fixtures parsed together, as `policy draft` reads a sources directory.
fn aws_with_interfaces() -> RuleSet {
    let files = [fixture("aws-sg.json"), fixture("aws-enis.json")];
    let mut sets = fw::parse_all(&files);
    assert_eq!(sets.len(), 1, "the interfaces export is not a rule set");
    sets.remove(0)
}

#[test]
fn aws_security_groups_with_their_members_from_the_interfaces_export() {
    let f = "aws-sg.json";
    let rs = aws_with_interfaces();
    assert_eq!(rs.format, "aws-sg");
    // Only the group no interface lists is warned about, by id and name.
    assert_eq!(
        rs.warnings,
        [
            "policy/aws-sg.json:66: security group sg-0ba0000000000004 (shop-batch): no `aws ec2 \
          describe-network-interfaces` export among the sources lists its members, so its \
          rules apply to no VM (narrower)"
        ]
    );
    let o = |l, n, w| origin(f, l, Some(n), w);
    let (inb, out) = (Some(Direction::In), Some(Direction::Out));
    // Members: every private address of each interface, and its public one.
    let db_members = set(&[h("192.0.2.15")], &[]);
    let web_members = set(&[h("192.0.2.17"), h("203.0.113.80")], &[]);
    let app = [h("192.0.2.16"), h("192.0.2.116")];
    let app_members = set(&app, &[]);
    let db = RuleList {
        name: "sg-0db0000000000001 (shop-db)".into(),
        rules: vec![
            rule(
                o(9, "sg-0db0000000000001 ingress 1", Some("shop-dba")),
                Allow,
                inb,
                // Overlapping ranges kept as written; the peer group's members resolved.
                set(
                    &[
                        h("192.0.2.16"),
                        r("198.51.100.0", "198.51.100.255"),
                        r("198.51.100.64", "198.51.100.127"),
                        h("192.0.2.16"),
                        h("192.0.2.116"),
                    ],
                    &[],
                ),
                db_members.clone(),
                svc(&[tcp(5432, 5432)]),
            ),
            narrowed(
                rule(
                    o(22, "sg-0db0000000000001 ingress 2", Some("netsec")),
                    Allow,
                    inb,
                    set(&[r("192.0.2.0", "192.0.2.15")], &[]),
                    db_members.clone(),
                    svc(&[(Proto::Icmp, None)]),
                ),
                &["icmp type 8 code -1"],
            ),
            rule(
                o(30, "sg-0db0000000000001 egress 1", Some("shop-dba")),
                Allow,
                out,
                db_members,
                AddrSet::Any,
                Services::Any,
            ),
        ],
        default: Deny,
        default_origin: o(3, "sg-0db0000000000001 implicit deny", None),
        implicit_default: true,
    };
    let web = RuleList {
        name: "sg-0eb0000000000002 (shop-web)".into(),
        rules: vec![
            rule(
                o(39, "sg-0eb0000000000002 ingress 1", Some("web-team")),
                Allow,
                inb,
                AddrSet::Any,
                web_members.clone(),
                svc(&[tcp(80, 443)]),
            ),
            rule(
                o(40, "sg-0eb0000000000002 ingress 2", Some("web-team")),
                Allow,
                inb,
                set(&[r("203.0.113.0", "203.0.113.255")], &["pl-0abc"]),
                web_members.clone(),
                svc(&[tcp(8000, 8090)]),
            ),
            rule(
                o(41, "sg-0eb0000000000002 ingress 3", Some("web-team")),
                Allow,
                inb,
                set(&[h("203.0.113.7")], &[]),
                web_members.clone(),
                svc(&[(Proto::Other(50), None)]),
            ),
            // No egress rule: the members may send nothing, written out.
            rule(
                o(
                    33,
                    "sg-0eb0000000000002 implicit deny (egress: no rule)",
                    None,
                ),
                Deny,
                out,
                web_members,
                AddrSet::Any,
                Services::Any,
            ),
        ],
        default: Deny,
        default_origin: o(33, "sg-0eb0000000000002 implicit deny", None),
        implicit_default: true,
    };
    let app_list = RuleList {
        name: "sg-0a99000000000099 (shop-app)".into(),
        rules: vec![
            rule(
                o(51, "sg-0a99000000000099 ingress 1", Some("shop-app")),
                Allow,
                inb,
                set(
                    &[
                        r("10.0.0.0", "10.255.255.255"),
                        r("10.1.0.0", "10.1.255.255"),
                        h("192.0.2.17"),
                        h("203.0.113.80"),
                    ],
                    &[],
                ),
                app_members.clone(),
                svc(&[tcp(8080, 8080)]),
            ),
            rule(
                o(58, "sg-0a99000000000099 ingress 2", Some("shop-app")),
                Allow,
                inb,
                set(&[r("10.1.2.0", "10.1.2.255")], &[]),
                app_members.clone(),
                svc(&[(Proto::Udp, Some((9000, 9100)))]),
            ),
            rule(
                o(61, "sg-0a99000000000099 egress 1", Some("shop-app")),
                Allow,
                out,
                app_members.clone(),
                set(&[h("192.0.2.15")], &[]),
                svc(&[tcp(5432, 5432)]),
            ),
            rule(
                o(62, "sg-0a99000000000099 egress 2", Some("shop-app")),
                Allow,
                out,
                app_members.clone(),
                AddrSet::Any,
                svc(&[(Proto::Udp, Some((53, 53)))]),
            ),
            rule(
                o(63, "sg-0a99000000000099 egress 3", Some("shop-app")),
                Allow,
                out,
                app_members,
                set(
                    &[
                        r("198.51.100.0", "198.51.100.255"),
                        r("198.51.100.128", "198.51.100.255"),
                    ],
                    &[],
                ),
                svc(&[tcp(443, 443)]),
            ),
        ],
        default: Deny,
        default_origin: o(45, "sg-0a99000000000099 implicit deny", None),
        implicit_default: true,
    };
    let batch_members = set(&[], &["members of sg-0ba0000000000004"]);
    let batch = RuleList {
        name: "sg-0ba0000000000004 (shop-batch)".into(),
        rules: vec![rule(
            o(71, "sg-0ba0000000000004 ingress 1", None),
            Allow,
            inb,
            AddrSet::Any,
            batch_members,
            svc(&[tcp(22, 22)]),
        )],
        default: Deny,
        default_origin: o(66, "sg-0ba0000000000004 implicit deny", None),
        implicit_default: true,
    };
    assert_eq!(rs.lists.len(), 4);
    assert_list(&rs.lists[0], &db);
    assert_list(&rs.lists[1], &web);
    assert_list(&rs.lists[2], &app_list);
    assert_list(&rs.lists[3], &batch);
}

#[test]
fn aws_security_groups_without_an_interfaces_export_protect_unknown_members_and_say_so() {
    let rs = parse_fixture("aws-sg.json");
    // Every group is warned about, by id and name; none has a member.
    let warned: Vec<&str> = rs
        .warnings
        .iter()
        .map(|w| w.split(": no `aws ec2").next().unwrap_or(""))
        .collect();
    assert_eq!(
        warned,
        [
            "policy/aws-sg.json:3: security group sg-0db0000000000001 (shop-db)",
            "policy/aws-sg.json:33: security group sg-0eb0000000000002 (shop-web)",
            "policy/aws-sg.json:45: security group sg-0a99000000000099 (shop-app)",
            "policy/aws-sg.json:66: security group sg-0ba0000000000004 (shop-batch)",
        ]
    );
    for l in &rs.lists {
        let id = l.name.split(' ').next().unwrap_or("");
        let unknown = set(&[], &[&format!("members of {id}")]);
        for rule in &l.rules {
            let protected = match rule.direction {
                Some(Direction::In) => &rule.dst,
                _ => &rule.src,
            };
            assert_eq!(protected, &unknown, "{}", rule.origin);
            assert_eq!(rule.action, Allow, "security groups only allow");
        }
    }
    // The peer group stays unresolved too.
    assert_eq!(
        rs.lists[0].rules[0].src,
        set(
            &[
                h("192.0.2.16"),
                r("198.51.100.0", "198.51.100.255"),
                r("198.51.100.64", "198.51.100.127"),
            ],
            &["sg-0a99000000000099"],
        )
    );
}

#[test]
fn the_interfaces_export_alone_is_no_rule_set_but_serves_the_security_groups() {
    let (f, t) = fixture("aws-enis.json");
    assert!(fw::parse(&f, &t).is_none());
    assert!(fw::is_auxiliary(&t));
    let (f2, t2) = fixture("aws-sg.json");
    assert!(!fw::is_auxiliary(&t2));
    // Order does not matter: the interfaces may come after the groups or before.
    let before = fw::parse_all(&[(f.clone(), t.clone()), (f2.clone(), t2.clone())]);
    assert_eq!(before, vec![aws_with_interfaces()]);
}

#[test]
fn panos_xml() {
    let f = "panos-running.xml";
    let rs = parse_fixture(f);
    assert_eq!(rs.format, "panos");
    assert_eq!(
        rs.warnings,
        [
            "policy/panos-running.xml:31: address `unknown-host-obj` is defined nowhere; left unresolved",
            "policy/panos-running.xml:46: intrazone-default (allow within one zone) is not modelled: the default is interzone-default",
        ]
    );
    let o = |l, n, w| origin(f, l, Some(n), w);
    let list = RuleList {
        name: "vsys1 security rules".into(),
        rules: vec![
            narrowed(
                rule(
                    o(49, "no-ping", Some("netsec")),
                    Deny,
                    None,
                    AddrSet::Any,
                    set(&[h("192.0.2.15"), h("192.0.2.16")], &[]),
                    // `application ping` with `service application-default`: ICMP.
                    Services::List(vec![Service {
                        proto: Proto::Icmp,
                        ports: None,
                    }]),
                ),
                &["from zone untrust", "to zone shop", "application ping"],
            ),
            rule(
                o(59, "block-legacy", Some("shop-dba")),
                Deny,
                None,
                set(&[], &["legacy-batch.example.internal", "unknown-host-obj"]),
                set(&[h("192.0.2.15")], &[]),
                svc(&[tcp(5432, 5432)]),
            ),
            rule(
                o(69, "partners-to-shop", Some("shop-app")),
                Allow,
                None,
                set(
                    &[
                        r("198.51.100.0", "198.51.100.255"),
                        r("198.51.100.64", "198.51.100.127"),
                        r("203.0.113.0", "203.0.113.127"),
                    ],
                    &[],
                ),
                set(&[r("192.0.2.10", "192.0.2.20")], &[]),
                svc(&[tcp(80, 80), tcp(443, 443), tcp(8000, 8090), tcp(5432, 5432)]),
            ),
            narrowed(
                rule(
                    o(79, "app-source-ports", None),
                    Allow,
                    None,
                    set(&[h("192.0.2.17")], &[]),
                    set(&[h("192.0.2.16")], &[]),
                    svc(&[tcp(8080, 8080)]),
                ),
                &["service svc-app source-port 1024-65535"],
            ),
            rule(
                o(88, "web-public", None),
                Allow,
                None,
                set(
                    &[
                        r("0.0.0.0", "192.0.2.9"),
                        r("192.0.2.21", "255.255.255.255"),
                    ],
                    &[],
                ),
                set(&[h("192.0.2.17")], &[]),
                svc(&[tcp(443, 443)]),
            ),
            disabled(rule(
                o(98, "old-any", None),
                Allow,
                None,
                AddrSet::Any,
                AddrSet::Any,
                Services::Any,
            )),
        ],
        default: Deny,
        default_origin: o(46, "interzone-default", None),
        implicit_default: true,
    };
    assert_eq!(rs.lists.len(), 1);
    assert_list(&rs.lists[0], &list);
}

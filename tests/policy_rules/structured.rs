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
                    o(10, "no ping owner: netsec", Some("netsec")),
                    Deny,
                    None,
                    AddrSet::Any,
                    set(&[r("192.0.2.0", "192.0.2.15")], &[]),
                    svc(&[(Proto::Icmp, None)]),
                ),
                &["icmp type == \"echo-request\""],
            ),
            rule(
                o(11, "legacy batch owner: shop-dba", Some("shop-dba")),
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
                o(13, "web owner: web-team", Some("web-team")),
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
                o(19, "ssh owner: netsec", Some("netsec")),
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

#[test]
fn aws_security_groups() {
    let f = "aws-sg.json";
    let rs = parse_fixture(f);
    assert_eq!(rs.format, "aws-sg");
    assert_eq!(rs.warnings, Vec::<String>::new());
    let o = |l, n, w| origin(f, l, Some(n), w);
    let (inb, out) = (Some(Direction::In), Some(Direction::Out));
    let db_members = set(&[], &["members of sg-0db0000000000001"]);
    let web_members = set(&[], &["members of sg-0eb0000000000002"]);
    let db = RuleList {
        name: "sg-0db0000000000001 (shop-db)".into(),
        rules: vec![
            rule(
                o(9, "sg-0db0000000000001 ingress 1", Some("shop-dba")),
                Allow,
                inb,
                set(
                    &[
                        h("192.0.2.16"),
                        r("198.51.100.0", "198.51.100.255"),
                        r("198.51.100.64", "198.51.100.127"),
                    ],
                    &["sg-0a99000000000099"],
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
                web_members,
                svc(&[(Proto::Other(50), None)]),
            ),
        ],
        default: Deny,
        default_origin: o(33, "sg-0eb0000000000002 implicit deny", None),
        implicit_default: true,
    };
    assert_eq!(rs.lists.len(), 2);
    assert_list(&rs.lists[0], &db);
    assert_list(&rs.lists[1], &web);
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

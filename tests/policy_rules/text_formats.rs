//! Neutral CSV, iptables-save (with ipset save) and Cisco ASA.

use super::*;
use Action::{Allow, Deny};

#[test]
fn neutral_csv() {
    let f = "firewall.csv";
    let rs = parse_fixture(f);
    assert_eq!(rs.format, "firewall-csv");
    assert_eq!(rs.warnings, Vec::<String>::new());
    let o = |l, n, w| origin(f, l, Some(n), w);
    let inb = Some(Direction::In);
    let core = RuleList {
        name: "fw-core/fw01".into(),
        rules: vec![
            rule(
                o(2, "100 no-ping", Some("netsec")),
                Deny,
                inb,
                AddrSet::Any,
                set(&[r("192.0.2.0", "192.0.2.15")], &[]),
                svc(&[(Proto::Icmp, None)]),
            ),
            rule(
                o(3, "101 block-legacy", Some("shop-dba")),
                Deny,
                inb,
                set(&[], &["legacy-batch.example.internal"]),
                set(&[h("192.0.2.15")], &[]),
                svc(&[tcp(5432, 5432)]),
            ),
            rule(
                o(4, "110 app-to-db", Some("shop-dba")),
                Allow,
                inb,
                set(&[h("192.0.2.16"), r("198.51.100.0", "198.51.100.255")], &[]),
                set(&[h("192.0.2.15")], &[]),
                svc(&[tcp(5432, 5432)]),
            ),
            rule(
                o(5, "120 partners-to-app", Some("shop-app")),
                Allow,
                inb,
                set(
                    &[
                        r("198.51.100.0", "198.51.100.127"),
                        r("198.51.100.64", "198.51.100.200"),
                    ],
                    &[],
                ),
                set(&[r("192.0.2.10", "192.0.2.20")], &[]),
                svc(&[tcp(8000, 8090)]),
            ),
            rule(
                o(6, "130 web-public", Some("web-team")),
                Allow,
                inb,
                AddrSet::Any,
                set(&[h("192.0.2.17")], &[]),
                svc(&[tcp(80, 80), tcp(443, 443)]),
            ),
            rule(
                o(7, "140 db-backup", Some("backup-team")),
                Allow,
                Some(Direction::Out),
                set(&[h("192.0.2.15")], &[]),
                set(&[h("203.0.113.50")], &[]),
                svc(&[tcp(873, 873)]),
            ),
        ],
        default: Deny,
        default_origin: origin(f, 2, Some("implicit deny"), None),
        implicit_default: true,
    };
    let edge = RuleList {
        name: "fw-edge/fw02".into(),
        rules: vec![
            rule(
                o(8, "200 edge-web", Some("web-team")),
                Allow,
                None,
                set(&[r("203.0.113.0", "203.0.113.255")], &[]),
                set(&[h("192.0.2.17")], &[]),
                svc(&[tcp(443, 443)]),
            ),
            rule(
                o(9, "210 edge-dns", None),
                Allow,
                Some(Direction::Out),
                set(&[r("192.0.2.0", "192.0.2.255")], &[]),
                AddrSet::Any,
                svc(&[
                    tcp(53, 53),
                    (Proto::Udp, Some((53, 53))),
                    (Proto::Sctp, Some((53, 53))),
                ]),
            ),
        ],
        default: Deny,
        default_origin: origin(f, 8, Some("implicit deny"), None),
        implicit_default: true,
    };
    assert_eq!(rs.lists.len(), 2);
    assert_list(&rs.lists[0], &core);
    assert_list(&rs.lists[1], &edge);
}

/// An export saved with a byte-order mark (Excel's "CSV UTF-8") reads as the same rules, on
/// the same lines: the blast scan and the policy reader share one CSV reader.
#[test]
fn neutral_csv_with_a_byte_order_mark() {
    let (f, t) = fixture("firewall.csv");
    let plain = fw::parse(&f, &t).expect("detected");
    let marked = fw::parse(&f, &format!("\u{feff}{t}")).expect("detected with a BOM");
    assert_eq!(marked.warnings, Vec::<String>::new());
    assert_eq!(marked.lists, plain.lists);
}

fn iptables_forward(partners: AddrSet) -> Vec<Rule> {
    let f = "edge.iptables";
    let o = |l, n: Option<&str>, w| origin(f, l, n, w);
    let db = set(&[h("192.0.2.15")], &[]);
    vec![
        narrowed(
            rule(
                o(17, Some("no ping"), Some("netsec")),
                Deny,
                None,
                AddrSet::Any,
                set(&[r("192.0.2.0", "192.0.2.15")], &[]),
                svc(&[(Proto::Icmp, None)]),
            ),
            &["--icmp-type 8"],
        ),
        narrowed(
            rule(
                o(18, Some("legacy batch"), Some("shop-dba")),
                Deny,
                None,
                set(&[], &["ipset legacy-batch"]),
                AddrSet::Any,
                svc(&[tcp(5432, 5432)]),
            ),
            &["--sport 1024:65535"],
        ),
        // SHOP inlined under `--match-set partners src`
        rule(
            o(24, Some("partners to app"), Some("shop-app")),
            Allow,
            None,
            partners.clone(),
            set(&[h("192.0.2.16")], &[]),
            svc(&[tcp(8080, 8080)]),
        ),
        narrowed(
            rule(
                o(26, Some("partners"), Some("shop-app")),
                Deny,
                None,
                partners,
                db.clone(),
                Services::Any,
            ),
            &["not matching the RETURN at policy/edge.iptables:25"],
        ),
        rule(
            o(20, Some("app-to-db"), Some("shop-dba")),
            Allow,
            None,
            set(&[h("192.0.2.16")], &[]),
            db,
            svc(&[tcp(5432, 5432)]),
        ),
        rule(
            o(21, Some("web and app"), Some("web-team")),
            Allow,
            None,
            AddrSet::Any,
            set(&[r("192.0.2.10", "192.0.2.20")], &[]),
            svc(&[tcp(80, 80), tcp(443, 443), tcp(8000, 8090)]),
        ),
        rule(
            o(22, None, None),
            Allow,
            None,
            set(
                &[
                    r("0.0.0.0", "192.0.1.255"),
                    r("192.0.3.0", "255.255.255.255"),
                ],
                &[],
            ),
            set(&[h("192.0.2.17")], &[]),
            svc(&[tcp(443, 443)]),
        ),
    ]
}

#[test]
fn iptables_with_ipsets_from_another_file() {
    let f = "edge.iptables";
    let files = vec![fixture("firewall.csv"), fixture("ipsets.save"), fixture(f)];
    let all = fw::parse_all(&files);
    // the ipset file alone is no firewall export
    assert_eq!(
        all.iter().map(|r| r.format).collect::<Vec<_>>(),
        ["firewall-csv", "iptables"]
    );
    let rs = &all[1];
    assert_eq!(rs.file, "policy/edge.iptables");
    assert_eq!(
        rs.warnings,
        [
            "policy/edge.iptables:18: ipset `legacy-batch` is defined in no `ipset save` output",
            "policy/edge.iptables:25: conditional RETURN: the rules after it in this chain are kept, narrowed by `not matching` it",
        ]
    );
    let o = |l, n: Option<&str>, w| origin(f, l, n, w);
    let input = RuleList {
        name: "filter/INPUT".into(),
        rules: vec![
            // `-i lo` is left out
            rule(
                o(13, Some("ssh from admins"), Some("netsec")),
                Allow,
                Some(Direction::In),
                set(&[r("198.51.100.0", "198.51.100.255")], &[]),
                AddrSet::Any,
                svc(&[tcp(22, 22)]),
            ),
            rule(
                o(14, None, None),
                Deny,
                Some(Direction::In),
                AddrSet::Any,
                AddrSet::Any,
                svc(&[tcp(22, 22)]),
            ),
        ],
        default: Allow,
        default_origin: origin(f, 8, Some("INPUT policy"), None),
        implicit_default: false,
    };
    // partners: 198.51.100.0/24, 198.51.100.64/26 (overlapping), 203.0.113.0/25 minus the
    // nomatch 203.0.113.64/26, intersected with the SHOP rules' own addresses (normalized)
    let partners = set(
        &[
            r("198.51.100.0", "198.51.100.255"),
            r("203.0.113.0", "203.0.113.63"),
        ],
        &[],
    );
    let forward = RuleList {
        name: "filter/FORWARD".into(),
        rules: iptables_forward(partners),
        default: Deny,
        default_origin: origin(f, 9, Some("FORWARD policy"), None),
        implicit_default: false,
    };
    let output = RuleList {
        name: "filter/OUTPUT".into(),
        rules: vec![],
        default: Allow,
        default_origin: origin(f, 10, Some("OUTPUT policy"), None),
        implicit_default: false,
    };
    assert_eq!(rs.lists.len(), 3);
    assert_list(&rs.lists[0], &input);
    assert_list(&rs.lists[1], &forward);
    assert_list(&rs.lists[2], &output);
}

#[test]
fn iptables_alone_leaves_sets_unresolved() {
    let rs = parse_fixture("edge.iptables");
    let fwd = &rs.lists[1];
    // the jump's `partners` set is unknown: the inlined rules keep it as an unresolved name
    assert_eq!(fwd.rules[2].src, set(&[], &["ipset partners"]));
    assert_eq!(fwd.rules[3].src, set(&[], &["ipset partners"]));
    assert!(
        rs.warnings.iter().any(|w| w
            == "policy/edge.iptables:19: ipset `partners` is defined in no `ipset save` output"),
        "{:?}",
        rs.warnings
    );
}

#[test]
fn cisco_asa() {
    let f = "asa-running.cfg";
    let rs = parse_fixture(f);
    assert_eq!(rs.format, "asa");
    assert_eq!(rs.warnings, Vec::<String>::new());
    let o = |l, n, w| origin(f, l, Some(n), w);
    let outside = RuleList {
        name: "access-list outside_in (in on outside)".into(),
        rules: vec![
            narrowed(
                rule(
                    o(42, "outside_in line 2", Some("netsec")),
                    Deny,
                    None,
                    AddrSet::Any,
                    set(&[r("192.0.2.0", "192.0.2.15")], &[]),
                    svc(&[(Proto::Icmp, None)]),
                ),
                &["icmp-type echo"],
            ),
            rule(
                o(44, "outside_in line 4", Some("shop-dba")),
                Deny,
                None,
                set(&[h("203.0.113.66")], &["legacy-batch.example.internal"]),
                set(&[h("192.0.2.15")], &[]),
                svc(&[tcp(5432, 5432)]),
            ),
            rule(
                o(46, "outside_in line 6", Some("shop-app")),
                Allow,
                None,
                set(
                    &[
                        r("198.51.100.0", "198.51.100.255"),
                        r("198.51.100.64", "198.51.100.127"),
                        h("203.0.113.10"),
                        r("203.0.113.128", "203.0.113.255"),
                    ],
                    &[],
                ),
                set(&[r("192.0.2.10", "192.0.2.20")], &[]),
                svc(&[tcp(80, 80), tcp(443, 443), tcp(8000, 8090)]),
            ),
            rule(
                o(47, "outside_in line 7", Some("shop-app")),
                Allow,
                None,
                set(&[h("192.0.2.16")], &[]),
                set(&[h("192.0.2.15")], &[]),
                svc(&[tcp(5432, 5432)]),
            ),
            narrowed(
                rule(
                    o(48, "outside_in line 8", Some("shop-app")),
                    Allow,
                    None,
                    set(&[r("203.0.113.0", "203.0.113.255")], &[]),
                    set(&[h("192.0.2.16")], &[]),
                    svc(&[tcp(8080, 8080)]),
                ),
                &["source port eq 1234"],
            ),
            rule(
                o(49, "outside_in line 9", Some("shop-app")),
                Allow,
                None,
                AddrSet::Any,
                set(&[h("192.0.2.17")], &[]),
                svc(&[tcp(443, 443)]),
            ),
            disabled(rule(
                o(50, "outside_in line 10", Some("shop-app")),
                Allow,
                None,
                AddrSet::Any,
                AddrSet::Any,
                Services::Any,
            )),
        ],
        default: Deny,
        default_origin: o(41, "outside_in implicit deny", None),
        implicit_default: true,
    };
    let inside = RuleList {
        name: "access-list inside_in (in on inside)".into(),
        rules: vec![
            rule(
                o(51, "inside_in line 1", None),
                Allow,
                None,
                set(&[r("192.0.2.0", "192.0.2.15")], &[]),
                AddrSet::Any,
                svc(&[tcp(53, 53), (Proto::Udp, Some((53, 53)))]),
            ),
            narrowed(
                rule(
                    o(52, "inside_in line 2", None),
                    Deny,
                    None,
                    set(&[r("0.0.0.0", "255.255.255.255")], &[]),
                    set(&[], &["interface outside"]),
                    Services::Any,
                ),
                &["interface outside"],
            ),
        ],
        default: Deny,
        default_origin: o(51, "inside_in implicit deny", None),
        implicit_default: true,
    };
    assert_eq!(rs.lists.len(), 2);
    assert_list(&rs.lists[0], &outside);
    assert_list(&rs.lists[1], &inside);
}

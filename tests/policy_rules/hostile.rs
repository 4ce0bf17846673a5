//! Malformed and hostile inputs: clear warnings, no panic.

use super::*;

fn warnings_of(file: &str, text: &str) -> Vec<String> {
    fw::parse(file, text)
        .map(|r| r.warnings)
        .unwrap_or_else(|| panic!("{file} not detected"))
}

#[test]
fn not_firewall_exports() {
    for (f, t) in [
        ("a.txt", "hello\n"),
        ("b.json", "{\"foo\": 1}"),
        ("c.xml", "<html><body/></html>"),
        ("ipsets.save", "create x hash:ip\nadd x 192.0.2.1\n"),
        ("empty", ""),
    ] {
        assert_eq!(fw::parse(f, t), None, "{f}");
    }
}

#[test]
fn truncated_panos_xml() {
    let (_, t) = fixture("panos-running.xml");
    let cut = &t[..t.len() / 2];
    let rs = fw::parse("p.xml", cut).expect("detected");
    assert!(rs.lists.is_empty());
    assert_eq!(rs.warnings.len(), 1);
    assert!(rs.warnings[0].starts_with("p.xml:"), "{:?}", rs.warnings);
    assert!(
        rs.warnings[0].contains("not a readable PAN-OS XML configuration"),
        "{:?}",
        rs.warnings
    );
}

#[test]
fn panos_entities_and_cycles() {
    let dtd = "<?xml version=\"1.0\"?><!DOCTYPE config [<!ENTITY a \"aaaa\"><!ENTITY b \"&a;&a;&a;\">]><config><devices/><x>&b;</x></config>";
    let rs = fw::parse("dtd.xml", dtd).expect("detected");
    assert!(rs.lists.is_empty() && rs.warnings.len() == 1, "{rs:?}");
    let cyc = r#"<config><devices><entry name="d"><vsys><entry name="vsys1">
<address-group><entry name="g1"><static><member>g2</member></static></entry>
<entry name="g2"><static><member>g1</member></static></entry></address-group>
<service-group><entry name="s1"><members><member>s1</member></members></entry></service-group>
<rulebase><security><rules><entry name="r"><source><member>g1</member></source>
<destination><member>any</member></destination><service><member>s1</member></service><action>allow</action></entry>
</rules></security></rulebase></entry></vsys></entry></devices></config>"#;
    let rs = fw::parse("cyc.xml", cyc).expect("detected");
    let r0 = &rs.lists[0].rules[0];
    assert_eq!(r0.src, set(&[], &["g1"]));
    assert_eq!(r0.services, Services::List(vec![]));
    assert_eq!(r0.narrowed_by, ["unresolved services s1"]);
    assert!(
        rs.warnings
            .iter()
            .any(|w| w
                == "cyc.xml:3: address group `g1` contains itself; the loop is left unresolved"),
        "{:?}",
        rs.warnings
    );
    assert!(
        rs.warnings
            .iter()
            .any(|w| w.contains("service group `s1` contains itself")),
        "{:?}",
        rs.warnings
    );
}

#[test]
fn asa_bad_masks_unknown_objects_and_loops() {
    let t = "ASA Version 9.16(4)\n\
object-group network loop-a\n group-object loop-b\n\
object-group network loop-b\n group-object loop-a\n\
access-list out extended permit tcp 192.0.2.0 255.0.255.0 any eq 80\n\
access-list out extended deny ip object-group nowhere any\n\
access-list out extended permit tcp object-group loop-a any eq https\n\
access-list out extended permit tcp host not-a-name any eq 99999\n\
access-list out extended bogus\n";
    let rs = fw::parse("asa.cfg", t).expect("detected");
    let rules = &rs.lists[0].rules;
    assert_eq!(rules[0].src, set(&[], &["192.0.2.0 255.0.255.0"]));
    assert_eq!(rules[1].action, Action::Deny);
    assert_eq!(rules[1].src, set(&[], &["object-group nowhere"]));
    assert_eq!(rules[2].src, set(&[], &["object-group loop-a"]));
    assert_eq!(
        rs.warnings,
        [
            "asa.cfg:6: `255.0.255.0` is not a contiguous netmask; `192.0.2.0 255.0.255.0` left unresolved",
            "asa.cfg:7: object-group nowhere is not defined; left unresolved",
            "asa.cfg:8: object-group loop-a contains itself; the loop is left unresolved",
            "asa.cfg:9: host `not-a-name` is neither an address nor a `name`; left unresolved",
            "asa.cfg:9: `eq` not understood at the end of the entry; ignored",
            "asa.cfg:9: `99999` not understood at the end of the entry; ignored",
            "asa.cfg:10: access-list entry `bogus` not understood; skipped",
        ]
    );
}

#[test]
fn iptables_malformed_and_loops() {
    let t = "*filter\n:INPUT DROP [0:0]\n:A - [0:0]\n:B - [0:0]\n\
-A INPUT -s 192.0.2.300 -j ACCEPT\n\
-A INPUT -j A\n\
-A A -j B\n\
-A B -j A\n\
-A INPUT -j NOWHERE\n\
-A INPUT -p tcp --dport 70000 -j DROP\n";
    let rs = fw::parse("ipt", t).expect("detected");
    assert_eq!(rs.lists.len(), 1);
    let rules = &rs.lists[0].rules;
    // a bad address is kept as a name (matches nothing); a bad port keeps every port, narrowed
    assert_eq!(rules[0].src, set(&[], &["192.0.2.300"]));
    assert_eq!(rules[1].action, Action::Deny);
    assert_eq!(rules[1].services, svc(&[(Proto::Tcp, None)]));
    assert_eq!(rules[1].narrowed_by, ["--dport 70000"]);
    assert_eq!(
        rs.warnings,
        [
            "ipt:5: `192.0.2.300` is not an address, range or host name; kept as an unresolved name",
            "ipt:10: `70000` is not a port or port range; the rule is kept with every port, narrowed",
            "ipt:1: table filter has no COMMIT (truncated export?); its rules are read as far as they go",
            "ipt:8: jump to chain `A` loops (or nests too deep); rule skipped",
            "ipt:9: jump to chain `NOWHERE`, which the export does not define; rule skipped",
        ]
    );
}

#[test]
fn json_garbage() {
    for (t, n) in [
        ("{\"nftables\": [".to_string(), 1),
        (
            "{\"SecurityGroups\": [{\"GroupId\": 5}, 7, \"x\"]}".to_string(),
            3,
        ),
        (format!("{{\"nftables\": {}", "[".repeat(5000)), 1),
    ] {
        let rs = fw::parse("x.json", &t).expect("detected");
        assert!(rs.lists.is_empty(), "{rs:?}");
        assert_eq!(rs.warnings.len(), n, "{rs:?}");
    }
    let rs = fw::parse("x.json", "{\"nftables\": [\n{\"chain\": {\"type\": \"filter\", \"hook\": \"input\", \"policy\": 5}},\n{\"rule\": {\"expr\": [{\"match\": 3}, {\"accept\": null}]}}]}").expect("detected");
    assert_eq!(rs.lists.len(), 1);
    let vmap = "{\"nftables\": [{\"chain\": {\"family\": \"ip\", \"table\": \"t\", \"name\": \"in\", \"type\": \"filter\", \"hook\": \"input\", \"policy\": \"accept\"}},\n{\"rule\": {\"family\": \"ip\", \"table\": \"t\", \"chain\": \"in\", \"expr\": [{\"vmap\": {\"key\": {\"payload\": {\"protocol\": \"ip\", \"field\": \"saddr\"}}, \"data\": {\"set\": [[\"192.0.2.1\", {\"drop\": null}]]}}}]}}]}";
    let rs = fw::parse("v.json", vmap).expect("detected");
    assert_eq!(
        rs.warnings,
        ["v.json:2: verdict map (vmap) not modelled; rule skipped"]
    );
}

#[test]
fn csv_bad_rows() {
    let t = "source,device,rule_id,rule_name,direction,src,dst,proto,dport,action,owner,ticket,comment\n\
fw,a,1,x,in,192.0.2.1,192.0.2.15,tcp,abc,allow,,,\n\
fw,a,2,y,sideways,not an address!,any,any,,deny,,,\n\
fw,a,3,z,in,any,any,tcp,80,maybe,,,\n\
fw,a,4\n";
    let rs = fw::parse("fw.csv", t).expect("detected");
    assert_eq!(rs.lists[0].rules.len(), 2);
    assert_eq!(rs.lists[0].rules[0].narrowed_by, ["dport abc"]);
    assert_eq!(rs.lists[0].rules[1].src, set(&[], &["not an address!"]));
    assert_eq!(
        rs.warnings,
        [
            "fw.csv:2: dport `abc` is not a port or range; the rule is kept for every port, narrowed",
            "fw.csv:3: direction `sideways` is not in/out; read as transit",
            "fw.csv:3: src: `not an address!` is not an address, range or host name; kept as an unresolved name",
            "fw.csv:4: action `maybe` is neither allow nor deny; row skipped",
            "fw.csv:5: 3 fields where the header has 13; row skipped",
        ]
    );
}

#[test]
fn huge_jump_fanout_is_bounded() {
    // 20 chains, each jumping twice to the next: 2^20 paths, cut by the rule budget
    let mut t = String::from("*filter\n:FORWARD DROP [0:0]\n");
    for i in 0..20 {
        t.push_str(&format!(":C{i} - [0:0]\n"));
    }
    t.push_str("-A FORWARD -j C0\n");
    for i in 0..19 {
        t.push_str(&format!(
            "-A C{i} -p tcp -j C{}\n-A C{i} -p udp -j C{}\n",
            i + 1,
            i + 1
        ));
    }
    t.push_str("-A C19 -j ACCEPT\nCOMMIT\n");
    let rs = fw::parse("fan", &t).expect("detected");
    assert!(rs.lists[0].rules.len() <= 100_000);
    let _ = warnings_of("fan", &t);
}

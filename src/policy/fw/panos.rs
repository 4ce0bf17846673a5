//! Palo Alto PAN-OS XML configuration (`show config running` / an exported `running-config.xml`).
//!
//! One list per vsys: `VSYS security rules`, the `<rulebase><security><rules><entry>` in order
//! (Direction None: security rules are transit rules), each named by its entry name at the
//! entry's line. Objects: `<address>` (`ip-netmask`, `ip-range`; `fqdn`/`ip-wildcard` stay
//! unresolved), `<address-group>` (`static` members; `dynamic` stays unresolved), `<service>`
//! (`<protocol><tcp|udp|sctp><port>80,443,8000-8080`; `source-port` → `narrowed_by`),
//! `<service-group>`, looked up in the vsys then in `<shared>`; the predefined
//! `service-http` (tcp 80, 8080) and `service-https` (tcp 443); a bare address or range
//! as a member. Groups are memoized; a group containing itself is warned about.
//!
//! Narrowing: `from`/`to` zones other than `any`, `application` other than `any`, `service
//! application-default` (read as every service: the applications' default ports are not in
//! the export; except when every application is one of [`APP_DEFAULTS`], whose
//! App-ID default ports are well known: `ping` is ICMP, `ssh` TCP 22…), `source-user`,
//! `category`, `source-hip`/`destination-hip`, `schedule`.
//! `negate-source`/`negate-destination` complement the resolved ranges. `disabled yes` →
//! disabled. Actions: `allow` → Allow; `deny`, `drop`, `reset-*` → Deny. Owner: `owner: X`
//! in a `<tag>` member, else in `<description>`.
//!
//! Default: the predefined `interzone-default` rule, deny, implicit, unless
//! `<default-security-rules>` overrides it (then explicit, at that entry). The predefined
//! `intrazone-default` (allow inside one zone) is not modelled: the model has no zones, a VM's
//! traffic that crosses the firewall goes between zones, and deny is the conservative
//! reading; a warning says so when a list has rules.

use super::common::{addr_token, dash_range, negate, origin, port_range, services, Tok};
use crate::blast::model::owner_in_text;
use crate::policy::rules::{
    Action, AddrRange, AddrSet, Proto, Rule, RuleList, RuleSet, Service, Services,
};
use roxmltree::{Document, Node, ParsingOptions};
use std::collections::HashMap;

/// Applications whose App-ID default services are well known (Palo Alto's Applipedia):
/// `service application-default` on a rule naming only these is read as their services.
const APP_DEFAULTS: &[(&str, &[(Proto, u16)])] = &[
    ("ping", &[(Proto::Icmp, 0)]),
    ("icmp", &[(Proto::Icmp, 0)]),
    ("ssh", &[(Proto::Tcp, 22)]),
    ("web-browsing", &[(Proto::Tcp, 80)]),
    ("ssl", &[(Proto::Tcp, 443)]),
    ("dns", &[(Proto::Tcp, 53), (Proto::Udp, 53)]),
    ("ntp", &[(Proto::Udp, 123)]),
    ("snmp", &[(Proto::Udp, 161)]),
    ("ldap", &[(Proto::Tcp, 389)]),
    ("ms-rdp", &[(Proto::Tcp, 3389)]),
];

/// The default services of `apps` when every one is in [`APP_DEFAULTS`].
fn app_default_services(apps: &[String]) -> Option<Vec<Service>> {
    if apps.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    for a in apps {
        let (_, svcs) = APP_DEFAULTS.iter().find(|(n, _)| *n == a.as_str())?;
        out.extend(svcs.iter().map(|&(proto, port)| Service {
            proto,
            ports: (proto != Proto::Icmp).then_some((port, port)),
        }));
    }
    Some(out)
}

pub fn looks_like(head: &str) -> bool {
    head.contains("<config") && (head.contains("<devices") || head.contains("<shared"))
}

fn child<'a, 'i>(n: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    n.children().find(|c| c.has_tag_name(name))
}

fn path<'a, 'i>(n: Node<'a, 'i>, p: &[&str]) -> Option<Node<'a, 'i>> {
    p.iter().try_fold(n, |n, s| child(n, s))
}

fn entries<'a, 'i>(n: Option<Node<'a, 'i>>) -> impl Iterator<Item = Node<'a, 'i>> {
    n.into_iter()
        .flat_map(|n| n.children().filter(|c| c.has_tag_name("entry")))
}

fn members(n: Option<Node>) -> Vec<String> {
    n.map(|n| {
        n.children()
            .filter(|c| c.has_tag_name("member"))
            .filter_map(|c| c.text())
            .map(|t| t.trim().to_string())
            .collect()
    })
    .unwrap_or_default()
}

fn text(n: Option<Node>) -> Option<String> {
    n.and_then(|n| n.text()).map(|t| t.trim().to_string())
}

/// Ranges and unresolved names.
type Addrs = (Vec<AddrRange>, Vec<String>);
/// Services, narrowings and unresolved names.
type Svcs = (Vec<Service>, Vec<String>, Vec<String>);

#[derive(Clone)]
enum Memo<T> {
    Visiting,
    Done(T),
}

/// Objects by kind and name: one index per vsys, one for `<shared>`.
type Index<'a, 'i> = HashMap<(&'static str, String), Node<'a, 'i>>;

fn index<'a, 'i>(root: Option<Node<'a, 'i>>) -> Index<'a, 'i> {
    let mut m = HashMap::new();
    let Some(root) = root else { return m };
    for kind in ["address", "address-group", "service", "service-group"] {
        for e in entries(child(root, kind)) {
            if let Some(n) = e.attribute("name") {
                m.entry((kind, n.to_string())).or_insert(e);
            }
        }
    }
    m
}

struct Scope<'s, 'a, 'i> {
    vsys: Index<'a, 'i>,
    shared: &'s Index<'a, 'i>,
}

impl<'a, 'i> Scope<'_, 'a, 'i> {
    fn find(&self, kind: &'static str, name: &str) -> Option<Node<'a, 'i>> {
        let k = (kind, name.to_string());
        self.vsys.get(&k).or_else(|| self.shared.get(&k)).copied()
    }
}

struct Cx<'s, 'a, 'i, 'w> {
    file: &'w str,
    doc: &'a Document<'i>,
    scope: Scope<'s, 'a, 'i>,
    addr_memo: HashMap<String, Memo<Addrs>>,
    svc_memo: HashMap<String, Memo<Svcs>>,
    warnings: &'w mut Vec<String>,
}

impl Cx<'_, '_, '_, '_> {
    fn line(&self, n: Node) -> usize {
        self.doc.text_pos_at(n.range().start).row as usize
    }

    fn warn(&mut self, line: usize, m: String) {
        self.warnings.push(format!("{}:{line}: {m}", self.file));
    }

    fn address(&mut self, line: usize, name: &str) -> (Vec<AddrRange>, Vec<String>) {
        match self.addr_memo.get(name) {
            Some(Memo::Done(v)) => return v.clone(),
            Some(Memo::Visiting) => {
                self.warn(
                    line,
                    format!("address group `{name}` contains itself; the loop is left unresolved"),
                );
                return (vec![], vec![name.to_string()]);
            }
            None => {}
        }
        self.addr_memo.insert(name.to_string(), Memo::Visiting);
        let out = self.address_uncached(line, name);
        self.addr_memo
            .insert(name.to_string(), Memo::Done(out.clone()));
        out
    }

    fn address_uncached(&mut self, line: usize, name: &str) -> (Vec<AddrRange>, Vec<String>) {
        if let Some(a) = self.scope.find("address", name) {
            let al = self.line(a);
            if let Some(v) = text(child(a, "ip-netmask")) {
                return match addr_token(&v) {
                    Ok(Tok::Range(r)) => (vec![r], vec![]),
                    _ => {
                        self.warn(
                            al,
                            format!("address `{name}`: `{v}` is not an address; left unresolved"),
                        );
                        (vec![], vec![name.to_string()])
                    }
                };
            }
            if let Some(v) = text(child(a, "ip-range")) {
                return match v.split_once('-').map(|(x, y)| dash_range(x, y)) {
                    Some(Ok(r)) => (vec![r], vec![]),
                    _ => {
                        self.warn(
                            al,
                            format!("address `{name}`: `{v}` is not a range; left unresolved"),
                        );
                        (vec![], vec![name.to_string()])
                    }
                };
            }
            if let Some(v) = text(child(a, "fqdn")) {
                return (vec![], vec![v]);
            }
            self.warn(
                al,
                format!("address `{name}` has no ip-netmask or ip-range; left unresolved"),
            );
            return (vec![], vec![name.to_string()]);
        }
        if let Some(g) = self.scope.find("address-group", name) {
            let gl = self.line(g);
            if child(g, "dynamic").is_some() {
                return (vec![], vec![format!("dynamic group {name}")]);
            }
            let (mut rs, mut un) = (vec![], vec![]);
            for m in members(child(g, "static")) {
                let (r, u) = self.address(gl, &m);
                rs.extend(r);
                un.extend(u);
            }
            return (rs, un);
        }
        // a literal address, CIDR or range as a member
        match addr_token(name) {
            Ok(Tok::Range(r)) => (vec![r], vec![]),
            _ => {
                self.warn(
                    line,
                    format!("address `{name}` is defined nowhere; left unresolved"),
                );
                (vec![], vec![name.to_string()])
            }
        }
    }

    fn addr_set(&mut self, line: usize, ms: &[String]) -> AddrSet {
        if ms.is_empty() || ms.iter().any(|m| m == "any") {
            return AddrSet::Any;
        }
        let (mut ranges, mut unresolved) = (vec![], vec![]);
        for m in ms {
            let (r, u) = self.address(line, m);
            ranges.extend(r);
            unresolved.extend(u);
        }
        AddrSet::Some { ranges, unresolved }
    }

    /// (services, narrowings, unresolved)
    fn service(&mut self, line: usize, name: &str) -> (Vec<Service>, Vec<String>, Vec<String>) {
        match self.svc_memo.get(name) {
            Some(Memo::Done(v)) => return v.clone(),
            Some(Memo::Visiting) => {
                self.warn(
                    line,
                    format!("service group `{name}` contains itself; the loop is left unresolved"),
                );
                return (vec![], vec![], vec![name.to_string()]);
            }
            None => {}
        }
        self.svc_memo.insert(name.to_string(), Memo::Visiting);
        let out = self.service_uncached(line, name);
        self.svc_memo
            .insert(name.to_string(), Memo::Done(out.clone()));
        out
    }

    fn service_uncached(
        &mut self,
        line: usize,
        name: &str,
    ) -> (Vec<Service>, Vec<String>, Vec<String>) {
        if let Some(s) = self.scope.find("service", name) {
            let sl = self.line(s);
            let (mut out, mut nb) = (vec![], vec![]);
            for (tag, proto) in [
                ("tcp", Proto::Tcp),
                ("udp", Proto::Udp),
                ("sctp", Proto::Sctp),
            ] {
                let Some(p) = path(s, &["protocol", tag]) else {
                    continue;
                };
                let mut ps = vec![];
                for x in text(child(p, "port"))
                    .unwrap_or_default()
                    .split(',')
                    .filter(|x| !x.trim().is_empty())
                {
                    match port_range(x) {
                        Some(r) => ps.push(r),
                        None => self.warn(
                            sl,
                            format!("service `{name}`: `{x}` is not a port; ignored"),
                        ),
                    }
                }
                if let Some(sp) = text(child(p, "source-port")) {
                    nb.push(format!("service {name} source-port {sp}"));
                }
                if !ps.is_empty() {
                    out.extend(services(&[proto], &ps));
                }
            }
            if out.is_empty() {
                self.warn(sl, format!("service `{name}` has no port; left unresolved"));
                return (vec![], nb, vec![name.to_string()]);
            }
            return (out, nb, vec![]);
        }
        if let Some(g) = self.scope.find("service-group", name) {
            let gl = self.line(g);
            let (mut out, mut nb, mut un) = (vec![], vec![], vec![]);
            for m in members(child(g, "members")) {
                let (s, n, u) = self.service(gl, &m);
                out.extend(s);
                nb.extend(n);
                un.extend(u);
            }
            return (out, nb, un);
        }
        match name {
            "service-http" => (
                services(&[Proto::Tcp], &[(80, 80), (8080, 8080)]),
                vec![],
                vec![],
            ),
            "service-https" => (services(&[Proto::Tcp], &[(443, 443)]), vec![], vec![]),
            _ => {
                self.warn(
                    line,
                    format!("service `{name}` is defined nowhere; left unresolved"),
                );
                (vec![], vec![], vec![name.to_string()])
            }
        }
    }

    fn rule(&mut self, e: Node) -> Rule {
        let n = self.line(e);
        let name = e.attribute("name").unwrap_or("").to_string();
        let mut narrowed = Vec::new();
        for (tag, what) in [("from", "from zone"), ("to", "to zone")] {
            let z = members(child(e, tag));
            if !z.is_empty() && !z.iter().any(|m| m == "any") {
                narrowed.push(format!("{what} {}", z.join(",")));
            }
        }
        let mut src = {
            let ms = members(child(e, "source"));
            self.addr_set(n, &ms)
        };
        let mut dst = {
            let ms = members(child(e, "destination"));
            self.addr_set(n, &ms)
        };
        let yes = |t: &str| text(child(e, t)).as_deref() == Some("yes");
        if yes("negate-source") {
            src = negate(src);
        }
        if yes("negate-destination") {
            dst = negate(dst);
        }
        for (tag, what) in [
            ("source-user", "source-user"),
            ("category", "category"),
            ("source-hip", "source-hip"),
            ("destination-hip", "destination-hip"),
            ("application", "application"),
        ] {
            let ms = members(child(e, tag));
            if !ms.is_empty() && !ms.iter().any(|m| m == "any") {
                narrowed.push(format!("{what} {}", ms.join(",")));
            }
        }
        if let Some(s) = text(child(e, "schedule")) {
            narrowed.push(format!("schedule {s}"));
        }
        let svc = members(child(e, "service"));
        let apps = members(child(e, "application"));
        let services = if svc.is_empty() || svc.iter().any(|s| s == "any") {
            Services::Any
        } else if svc.iter().any(|s| s == "application-default") {
            match app_default_services(&apps) {
                Some(list) => Services::List(list),
                None => {
                    narrowed.push("service application-default".into());
                    Services::Any
                }
            }
        } else {
            let mut list = vec![];
            for s in &svc {
                let (l, nb, un) = self.service(n, s);
                list.extend(l);
                narrowed.extend(nb);
                if !un.is_empty() {
                    narrowed.push(format!("unresolved services {}", un.join(",")));
                }
            }
            Services::List(list)
        };
        let action = match text(child(e, "action")).as_deref() {
            Some("allow") => Action::Allow,
            Some("deny" | "drop" | "reset-client" | "reset-server" | "reset-both") => Action::Deny,
            other => {
                self.warn(
                    n,
                    format!("rule `{name}`: action {other:?} unknown; read as deny"),
                );
                Action::Deny
            }
        };
        let owner = members(child(e, "tag"))
            .iter()
            .find_map(|t| owner_in_text(t))
            .or_else(|| {
                text(child(e, "description"))
                    .as_deref()
                    .and_then(owner_in_text)
            });
        Rule {
            origin: origin(self.file, n, Some(name), owner),
            action,
            direction: None,
            src,
            dst,
            services,
            narrowed_by: narrowed,
            disabled: yes("disabled"),
        }
    }
}

pub fn parse(file: &str, text_in: &str) -> RuleSet {
    let mut warnings = Vec::new();
    let mut lists = Vec::new();
    let opts = ParsingOptions {
        allow_dtd: false,
        nodes_limit: 5_000_000,
        ..ParsingOptions::default()
    };
    let doc = match Document::parse_with_options(text_in, opts) {
        Ok(d) => d,
        Err(e) => {
            let p = e.pos();
            warnings.push(format!(
                "{file}:{}: not a readable PAN-OS XML configuration: {e}",
                p.row
            ));
            return RuleSet {
                file: file.into(),
                format: "panos",
                lists,
                warnings,
            };
        }
    };
    let root = doc.root_element();
    if !root.has_tag_name("config") {
        warnings.push(format!(
            "{file}:1: root element is <{}>, not <config>",
            root.tag_name().name()
        ));
        return RuleSet {
            file: file.into(),
            format: "panos",
            lists,
            warnings,
        };
    }
    let shared = index(child(root, "shared"));
    let mut vsyses: Vec<Node> = Vec::new();
    for dev in entries(child(root, "devices")) {
        vsyses.extend(entries(child(dev, "vsys")));
    }
    for v in vsyses {
        let vname = v.attribute("name").unwrap_or("vsys").to_string();
        let mut cx = Cx {
            file,
            doc: &doc,
            scope: Scope {
                vsys: index(Some(v)),
                shared: &shared,
            },
            addr_memo: HashMap::new(),
            svc_memo: HashMap::new(),
            warnings: &mut warnings,
        };
        let Some(rb) = child(v, "rulebase") else {
            continue;
        };
        let rules: Vec<Rule> = entries(path(rb, &["security", "rules"]))
            .map(|e| cx.rule(e))
            .collect();
        let rb_line = cx.line(rb);
        let (default, dline, implicit) =
            match entries(path(rb, &["default-security-rules", "rules"]))
                .find(|e| e.attribute("name") == Some("interzone-default"))
            {
                Some(d) => {
                    let a = if text(child(d, "action")).as_deref() == Some("allow") {
                        Action::Allow
                    } else {
                        Action::Deny
                    };
                    (a, cx.line(d), false)
                }
                None => (Action::Deny, rb_line, true),
            };
        if !rules.is_empty() {
            cx.warn(
                rb_line,
                "intrazone-default (allow within one zone) is not modelled: the default is interzone-default".into(),
            );
        }
        lists.push(RuleList {
            name: format!("{vname} security rules"),
            rules,
            default,
            default_origin: origin(file, dline, Some("interzone-default".into()), None),
            implicit_default: implicit,
        });
    }
    RuleSet {
        file: file.into(),
        format: "panos",
        lists,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn application_default_is_read_only_when_every_application_is_known() {
        let apps = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let tcp = |p| Service {
            proto: Proto::Tcp,
            ports: Some((p, p)),
        };
        assert_eq!(
            app_default_services(&apps(&["ssh", "ssl"])),
            Some(vec![tcp(22), tcp(443)])
        );
        assert_eq!(
            app_default_services(&apps(&["ping"])),
            Some(vec![Service {
                proto: Proto::Icmp,
                ports: None
            }])
        );
        // One application whose defaults are not known: every service, as before.
        assert_eq!(app_default_services(&apps(&["ssh", "oracle"])), None);
        assert_eq!(app_default_services(&apps(&[])), None);
    }
}

//! Drafting each VM's Kubernetes policy from the firewall rules that protect it today
//! (`wavelift policy draft`, issue 17).
//!
//! # What a draft admits
//!
//! A flow is a peer address and a service (protocol, and destination port for TCP, UDP and
//! SCTP). For each of the VM's IPs and each direction, every [`RuleList`] that applies to
//! the IP (see below) is evaluated as the firewall evaluates it ([`super::rules`]): top to
//! bottom, first match wins, the list's default last. Ingress looks at the rules facing in
//! (`Direction::In`, or transit rules without a direction) whose destination contains the
//! IP (a host, range, subnet or object holding it, or `any`), with their sources as peers;
//! egress at the rules facing out (or transit) whose source contains the IP, with their
//! destinations as peers.
//!
//! The evaluation is exact: the service space is cut into the cells every rule's services
//! agree on (port intervals per protocol, each named non-port protocol, every other
//! protocol), and per cell the admitted peers are each allow's peers minus what the denies
//! before it took (`except`). The result is one Kubernetes rule per firewall allow (split
//! when the allow is cut differently per service), each with its provenance.
//!
//! # Combining exports
//!
//! - A list *names* the IP when an enabled rule's destination (ingress) or source (egress)
//!   holds a range (host, CIDR, `a-b`, object) containing it; an export names the IP when
//!   any enabled rule of any of its lists holds such a range on either side. `any` (or a
//!   range spanning the whole address family, such as ASA `any4` or `0.0.0.0/0`) names no
//!   address.
//! - Ingress: a list that names the IP applies with all its rules that reach the IP
//!   (`any` destinations included) and its default. In an export that names the IP, a list
//!   that does not still applies through its rules whose destination is `any`, in their
//!   order with the denies among them, but not its default (the list names the IP nowhere,
//!   so what it does with everything else is not evidence about the IP; a default allow is
//!   warned as not applied). Every rule applied through an `any` destination is warned,
//!   kept as broad as it is.
//! - An export that never names the IP does not apply to it at all, `any` rules included:
//!   a firewall that never names a host is not evidence that it is on the host's path
//!   (a sources tree holds the exports of many firewalls; most see none of this VM's
//!   traffic).
//! - Egress: a list applies when it names the IP as a source (then with its `any`-source
//!   rules and default).
//! - The flows admitted by the lists that apply to the IP are **unioned** (each with its own
//!   provenance): several exports are taken as several paths to the VM, not as firewalls in
//!   series.
//! - The `Egress` policy type is set only when some list names the IP as a source; then
//!   egress is restricted to what those lists admit (no rule: nothing, with a warning, as
//!   for ingress).
//! - No list admits anything to an IP: the policy keeps only the probe rule, with a warning.
//!
//! # What is narrowed, and always warned
//!
//! The draft never admits a flow the firewall does not admit. Where Kubernetes cannot say
//! what the firewall says, it admits less and warns, naming the rules:
//!
//! - a deny before an allow: the denied peers become `except` (or the allow is cut per
//!   service); warned, naming both rules;
//! - ICMP or another protocol without ports admitted on its own, or "every protocol" minus a
//!   denied service: Kubernetes ports know only TCP, UDP and SCTP, so those protocols are
//!   left out for the peers concerned;
//! - an allow with matches the model does not carry (`narrowed_by`: source ports,
//!   interfaces, schedules…) is left out; a deny with them is taken as denying all of its
//!   region;
//! - a deny whose peers include unresolved names is taken as denying every peer; a deny
//!   whose VM-side set has unresolved names is taken as applying to every VM;
//! - unresolved names among an allow's peers are left out;
//! - a list whose rules protect only unresolved names (an AWS security group that no
//!   `describe-network-interfaces` export lists) applies to no VM: every VM's draft says so,
//!   naming the list;
//! - MultiNetworkPolicy `v1beta1` has no `endPort`: ranges of up to 32 ports are expanded,
//!   larger ones left out.
//!
//! What stays as broad as the firewall had it, with a warning: an allow from `any` peer, an
//! allow of every service, and a list whose default allows (everything no rule denies).
//! Disabled rules never match.
//!
//! wavelift's probe sources (the plan's `probe_sources`, or the networks' `probe_ip`s when
//! the plan checks from the cluster) get a separate ingress rule admitting every protocol.

mod index;
mod render;
pub mod sources;
pub mod space;

use super::k8s::{MnpVersion, PolicyDoc};
use super::rules::{
    Action, AddrRange, AddrSet, Direction, Origin, Proto, Rule, RuleList, RuleSet, Services,
};
use index::Stab;
use ipnet::IpNet;
use space::{Block, Family, Ranges};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::IpAddr;

/// One VM to draft for.
#[derive(Debug, Clone)]
pub struct VmInput {
    pub name: String,
    /// The plan's namespace (where the VM's pods run).
    pub namespace: String,
    /// The policy object's labels (wavelift's labels for the VM's objects).
    pub labels: BTreeMap<String, String>,
    /// `podSelector.matchLabels`: the labels of the VM's pods.
    pub pod_selector: BTreeMap<String, String>,
    pub ips: Vec<IpAddr>,
    pub network: VmNetwork,
    pub probes: Vec<ProbeSource>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmNetwork {
    /// L3: the pod network, a `NetworkPolicy`.
    Pod,
    /// L2: a `MultiNetworkPolicy` for these NetworkAttachmentDefinitions (`NAMESPACE/NAME`).
    Attachments(Vec<String>),
}

/// A source wavelift's own checks come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSource {
    pub cidr: IpNet,
    /// Why: `probe_sources`, `probe_ip of network vlan-210`.
    pub why: String,
}

#[derive(Debug, Clone, Copy)]
pub struct DraftOptions {
    pub mnp_version: MnpVersion,
}

impl Default for DraftOptions {
    fn default() -> Self {
        DraftOptions {
            mnp_version: MnpVersion::V1beta2,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Flow {
    Ingress,
    Egress,
}

/// A destination port range of one protocol (TCP, UDP or SCTP); `1..=65535` is every port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    pub proto: Proto,
    pub lo: u16,
    pub hi: u16,
}

/// `tcp/5432`, `tcp/80-90`, or `udp` for every port.
impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let proto = match self.proto {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
            Proto::Icmp => "icmp",
            Proto::Other(n) => return write!(f, "proto-{n}"),
        };
        if self.all_ports() {
            f.write_str(proto)
        } else if self.lo == self.hi {
            write!(f, "{proto}/{}", self.lo)
        } else {
            write!(f, "{proto}/{}-{}", self.lo, self.hi)
        }
    }
}

impl PortRange {
    pub fn all_ports(&self) -> bool {
        self.lo <= 1 && self.hi == u16::MAX
    }
}

/// Where an emitted Kubernetes rule comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provenance {
    Firewall {
        /// The allow rule (or the list default that allows).
        origin: Origin,
        /// The denies before it that cut into it (as `except` or by leaving services out).
        narrowed_by: Vec<Origin>,
        /// What is as broad as the firewall had it: `any source`, `any service`,
        /// `list default allow`.
        broad: Vec<&'static str>,
    },
    Probe {
        why: String,
    },
}

/// One emitted Kubernetes rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DraftRule {
    pub peers: Vec<Block>,
    /// Empty: every protocol and port.
    pub ports: Vec<PortRange>,
    pub provenance: Provenance,
}

impl DraftRule {
    /// The rule admits this service (`port` `None`: a protocol without ports, e.g. ICMP).
    pub fn admits(&self, proto: Proto, port: Option<u16>) -> bool {
        self.ports.is_empty()
            || self
                .ports
                .iter()
                .any(|p| p.proto == proto && port.is_some_and(|n| p.lo <= n && n <= p.hi))
    }
}

/// A VM's draft.
#[derive(Debug, Clone)]
pub struct VmDraft {
    pub vm: String,
    pub doc: PolicyDoc,
    /// The YAML document, with a header (warnings) and a comment above each rule.
    pub yaml: String,
    pub warnings: Vec<String>,
    pub ingress: Vec<DraftRule>,
    pub egress: Vec<DraftRule>,
}

/// The firewall rules the VM's ingress policy relies on for `proto`/`port` (a check's
/// service): the origin of every drafted ingress rule admitting it.
pub fn rules_for(d: &VmDraft, proto: Proto, port: Option<u16>) -> Vec<&Origin> {
    let mut out: Vec<&Origin> = Vec::new();
    for r in &d.ingress {
        if let Provenance::Firewall { origin, .. } = &r.provenance {
            if r.admits(proto, port) && !out.contains(&origin) {
                out.push(origin);
            }
        }
    }
    out
}

// ------------------------------------------------------------------------------- index

/// `(list, rule)`.
type At = (u32, u32);

struct FlowIndex {
    v4: Stab<At>,
    v6: Stab<At>,
    /// Per list: rules that apply to every VM (`any` on the VM side, or a deny whose VM side
    /// has unresolved names).
    wild: Vec<Vec<u32>>,
}

/// The rule sets, indexed by the VM-side ranges of each direction, so that drafting a VM
/// looks only at the rules that concern its IPs.
pub struct Drafter<'s> {
    lists: Vec<&'s RuleList>,
    ingress: FlowIndex,
    egress: FlowIndex,
    /// Every range any enabled rule names (either side, either way), by rule set: which
    /// exports name an address.
    named_v4: Stab<u32>,
    named_v6: Stab<u32>,
    /// Per rule set, its lists (a range of `lists`).
    set_lists: Vec<std::ops::Range<usize>>,
    /// Lists whose rules protect only names no export resolves (an AWS security group whose
    /// members no `describe-network-interfaces` export lists), with those names: they apply
    /// to no VM, and every VM's draft says so.
    unknown: Vec<(usize, Vec<String>)>,
}

fn faces(r: &Rule, flow: Flow) -> bool {
    matches!(
        (r.direction, flow),
        (None, _) | (Some(Direction::In), Flow::Ingress) | (Some(Direction::Out), Flow::Egress)
    )
}

/// The VM's side of a rule (destination for ingress) and the peer side.
fn vm_side(r: &Rule, flow: Flow) -> &AddrSet {
    match flow {
        Flow::Ingress => &r.dst,
        Flow::Egress => &r.src,
    }
}

fn peer_side(r: &Rule, flow: Flow) -> &AddrSet {
    match flow {
        Flow::Ingress => &r.src,
        Flow::Egress => &r.dst,
    }
}

impl<'s> Drafter<'s> {
    pub fn new(sets: &'s [RuleSet]) -> Drafter<'s> {
        let lists: Vec<&RuleList> = sets.iter().flat_map(|s| s.lists.iter()).collect();
        let mut set_lists = Vec::with_capacity(sets.len());
        let (mut named_v4, mut named_v6) = (Vec::new(), Vec::new());
        for (si, set) in sets.iter().enumerate() {
            let start = set_lists
                .last()
                .map_or(0, |r: &std::ops::Range<usize>| r.end);
            set_lists.push(start..start + set.lists.len());
            for r in set.lists.iter().flat_map(|l| &l.rules) {
                if r.disabled {
                    continue;
                }
                for side in [&r.src, &r.dst] {
                    let AddrSet::Some { ranges, .. } = side else {
                        continue;
                    };
                    for g in ranges.iter().filter(|g| names_addresses(g)) {
                        let item = (space::key(g.lo), space::key(g.hi), si as u32);
                        if g.lo.is_ipv4() {
                            named_v4.push(item);
                        } else {
                            named_v6.push(item);
                        }
                    }
                }
            }
        }
        let build = |flow: Flow| {
            let (mut v4, mut v6) = (Vec::new(), Vec::new());
            let mut wild = Vec::with_capacity(lists.len());
            for (li, l) in lists.iter().enumerate() {
                let mut w = Vec::new();
                for (ri, r) in l.rules.iter().enumerate() {
                    if r.disabled || !faces(r, flow) {
                        continue;
                    }
                    let at = (li as u32, ri as u32);
                    match vm_side(r, flow) {
                        AddrSet::Any => w.push(ri as u32),
                        AddrSet::Some { ranges, unresolved } => {
                            for g in ranges {
                                if g.lo.is_ipv4() != g.hi.is_ipv4() || g.lo > g.hi {
                                    continue;
                                }
                                // A whole family (`any4`, `0.0.0.0/0`) is `any`: it names
                                // no VM.
                                if !names_addresses(g) {
                                    w.push(ri as u32);
                                    continue;
                                }
                                let item = (space::key(g.lo), space::key(g.hi), at);
                                if g.lo.is_ipv4() {
                                    v4.push(item);
                                } else {
                                    v6.push(item);
                                }
                            }
                            if r.action == Action::Deny && !unresolved.is_empty() {
                                w.push(ri as u32);
                            }
                        }
                    }
                }
                wild.push(w);
            }
            FlowIndex {
                v4: Stab::new(v4),
                v6: Stab::new(v6),
                wild,
            }
        };
        let unknown = lists
            .iter()
            .enumerate()
            .filter_map(|(li, l)| {
                let mut names: Vec<String> = Vec::new();
                for r in l.rules.iter().filter(|r| !r.disabled) {
                    for flow in [Flow::Ingress, Flow::Egress] {
                        if !faces(r, flow) {
                            continue;
                        }
                        match vm_side(r, flow) {
                            AddrSet::Some { ranges, unresolved }
                                if ranges.is_empty() && !unresolved.is_empty() =>
                            {
                                for n in unresolved {
                                    if !names.contains(n) {
                                        names.push(n.clone());
                                    }
                                }
                            }
                            _ => return None,
                        }
                    }
                }
                (!names.is_empty()).then_some((li, names))
            })
            .collect();
        Drafter {
            ingress: build(Flow::Ingress),
            egress: build(Flow::Egress),
            lists,
            unknown,
            named_v4: Stab::new(named_v4),
            named_v6: Stab::new(named_v6),
            set_lists,
        }
    }

    /// The lists that apply to `ip` for `flow`, each with its relevant rules (in order)
    /// and whether the list names `ip` itself (else it reaches `ip` only through rules whose
    /// VM side is `any`, in an export that names `ip` elsewhere: ingress only).
    fn relevant(&self, ip: IpAddr, flow: Flow) -> Vec<(usize, Vec<usize>, bool)> {
        let ix = match flow {
            Flow::Ingress => &self.ingress,
            Flow::Egress => &self.egress,
        };
        let stab = if ip.is_ipv4() { &ix.v4 } else { &ix.v6 };
        let mut hits = Vec::new();
        stab.query(space::key(ip), &mut hits);
        let mut by_list: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for &(l, r) in hits {
            by_list.entry(l).or_default().push(r as usize);
        }
        let mut out: Vec<(usize, Vec<usize>, bool)> = by_list
            .into_iter()
            .map(|(l, mut rs)| {
                rs.extend(ix.wild[l as usize].iter().map(|&r| r as usize));
                rs.sort_unstable();
                rs.dedup();
                (l as usize, rs, true)
            })
            .collect();
        if flow == Flow::Ingress {
            let named = if ip.is_ipv4() {
                &self.named_v4
            } else {
                &self.named_v6
            };
            let mut sets = Vec::new();
            named.query(space::key(ip), &mut sets);
            let mut sets: Vec<u32> = sets.into_iter().copied().collect();
            sets.sort_unstable();
            sets.dedup();
            for si in sets {
                for l in self.set_lists[si as usize].clone() {
                    if ix.wild[l].is_empty() || out.iter().any(|(x, _, _)| *x == l) {
                        continue;
                    }
                    let rs = ix.wild[l].iter().map(|&r| r as usize).collect();
                    out.push((l, rs, false));
                }
            }
            out.sort_by_key(|(l, _, _)| *l);
        }
        out
    }

    /// Drafts one VM's policy.
    pub fn draft(&self, vm: &VmInput, opts: &DraftOptions) -> VmDraft {
        let mut warn = Warnings::default();
        let mut ingress: Vec<DraftRule> = Vec::new();
        let mut egress: Vec<DraftRule> = Vec::new();
        let mut egress_named = false;
        for &ip in &vm.ips {
            for (l, names) in &self.unknown {
                let list = self.lists[*l];
                warn.push(format!(
                    "{} ({}:{}): its rules protect {}, which no export resolves: whether {ip} \
                     is among them is unknown, so they are not applied (narrower)",
                    list.name,
                    list.default_origin.file,
                    list.default_origin.line,
                    names.join(", ")
                ));
            }
            let before = ingress.len();
            for (l, rs, names) in self.relevant(ip, Flow::Ingress) {
                eval_list(
                    self.lists[l],
                    &rs,
                    names,
                    ip,
                    Flow::Ingress,
                    opts,
                    vm,
                    &mut ingress,
                    &mut warn,
                );
            }
            if ingress.len() == before {
                warn.push(format!("no firewall rule admits anything to {ip}"));
            }
            let lists = self.relevant(ip, Flow::Egress);
            egress_named |= !lists.is_empty();
            let before = egress.len();
            for (l, rs, names) in &lists {
                eval_list(
                    self.lists[*l],
                    rs,
                    *names,
                    ip,
                    Flow::Egress,
                    opts,
                    vm,
                    &mut egress,
                    &mut warn,
                );
            }
            if !lists.is_empty() && egress.len() == before {
                warn.push(format!(
                    "no firewall rule admits anything from {ip}: the policy restricts its \
                     egress (a list names it as a source) and admits nothing out of it"
                ));
            }
        }
        if vm.ips.is_empty() {
            warn.push("the VM has no known IP: no firewall rule can be matched".into());
        }
        dedup(&mut ingress);
        dedup(&mut egress);
        // wavelift's own probes, one rule per reason.
        let mut probes: BTreeMap<&str, Vec<Block>> = BTreeMap::new();
        for p in &vm.probes {
            let f = Family::of(p.cidr.addr());
            let net = p.cidr.trunc();
            let r = Ranges::from_intervals(vec![(
                space::key(net.network()),
                space::key(net.broadcast()),
            )]);
            probes
                .entry(p.why.as_str())
                .or_default()
                .extend(space::blocks(f, &r, &r));
        }
        for (why, peers) in probes {
            ingress.push(DraftRule {
                peers,
                ports: Vec::new(),
                provenance: Provenance::Probe { why: why.into() },
            });
        }
        if vm.probes.is_empty() {
            warn.push(
                "no probe sources (plan `probe_sources`, or `probe_ip` with checks_from = \
                 \"cluster\"): wavelift's own checks are admitted only where the firewall \
                 rules admit them"
                    .into(),
            );
        }
        let warnings = warn.into_vec();
        let doc = render::doc(vm, &ingress, &egress, egress_named, opts);
        let yaml = render::yaml(vm, &doc, &ingress, &egress, &warnings);
        VmDraft {
            vm: vm.name.clone(),
            doc,
            yaml,
            warnings,
            ingress,
            egress,
        }
    }
}

/// Drafts one VM from `sets` (builds the index; use [`Drafter`] for many VMs).
pub fn draft_vm(vm: &VmInput, sets: &[RuleSet], opts: &DraftOptions) -> VmDraft {
    Drafter::new(sets).draft(vm, opts)
}

/// Drafts every VM on `threads` workers; the result is in `vms` order.
pub fn draft_all(
    vms: &[VmInput],
    sets: &[RuleSet],
    opts: &DraftOptions,
    threads: usize,
) -> Vec<VmDraft> {
    let d = Drafter::new(sets);
    let threads = threads.clamp(1, 64).min(vms.len().max(1));
    let chunk = vms.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = vms
            .chunks(chunk)
            .map(|part| {
                let d = &d;
                s.spawn(move || part.iter().map(|v| d.draft(v, opts)).collect::<Vec<_>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

/// A range names addresses unless it spans a whole address family (`any4`, `0.0.0.0/0`,
/// `::/0`), which is `any`.
fn names_addresses(g: &AddrRange) -> bool {
    let f = Family::of(g.lo);
    !(space::key(g.lo) == 0 && space::key(g.hi) == f.max())
}

/// The set names some addresses (a range that is not a whole family).
fn names_addresses_of(set: &AddrSet) -> bool {
    match set {
        AddrSet::Any => false,
        AddrSet::Some { ranges, .. } => ranges.iter().any(names_addresses),
    }
}

fn dedup(v: &mut Vec<DraftRule>) {
    let mut kept: Vec<DraftRule> = Vec::with_capacity(v.len());
    for r in v.drain(..) {
        if !kept.contains(&r) {
            kept.push(r);
        }
    }
    *v = kept;
}

/// Warnings in the order found, each once.
#[derive(Default)]
struct Warnings {
    v: Vec<String>,
    seen: HashSet<String>,
}

impl Warnings {
    fn push(&mut self, w: String) {
        if self.seen.insert(w.clone()) {
            self.v.push(w);
        }
    }
    fn into_vec(self) -> Vec<String> {
        self.v
    }
}

// ------------------------------------------------------------------------------- services

/// A cell of the service space: every rule of a list matches all of it or none of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Atom {
    /// A port interval of TCP, UDP or SCTP.
    Port(Proto, u16, u16),
    /// A protocol without ports that some rule names (ICMP, `esp`…).
    NoPort(Proto),
    /// Every protocol no rule names.
    Rest,
}

const PORT_PROTOS: [Proto; 3] = [Proto::Tcp, Proto::Udp, Proto::Sctp];

fn norm(p: Proto) -> Proto {
    match p {
        Proto::Other(1) => Proto::Icmp,
        Proto::Other(6) => Proto::Tcp,
        Proto::Other(17) => Proto::Udp,
        Proto::Other(132) => Proto::Sctp,
        p => p,
    }
}

fn has_ports(p: Proto) -> bool {
    PORT_PROTOS.contains(&p)
}

fn proto_name(p: Proto) -> String {
    match p {
        Proto::Tcp => "TCP".into(),
        Proto::Udp => "UDP".into(),
        Proto::Sctp => "SCTP".into(),
        Proto::Icmp => "ICMP".into(),
        Proto::Other(n) => format!("IP protocol {n}"),
    }
}

fn matches(services: &Services, a: Atom) -> bool {
    match services {
        Services::Any => true,
        Services::List(v) => v.iter().any(|s| {
            let p = norm(s.proto);
            match a {
                Atom::Port(ap, lo, hi) => {
                    p == ap
                        && s.ports
                            .is_none_or(|(plo, phi)| plo.max(1) <= lo && hi <= phi)
                }
                Atom::NoPort(ap) => p == ap,
                Atom::Rest => false,
            }
        }),
    }
}

fn atoms(rules: &[&Rule]) -> Vec<Atom> {
    let mut out = Vec::new();
    let mut named = BTreeSet::new();
    for p in PORT_PROTOS {
        let mut bounds: BTreeSet<u32> = BTreeSet::from([1, 65536]);
        for r in rules {
            if let Services::List(v) = &r.services {
                for s in v {
                    if norm(s.proto) == p {
                        if let Some((lo, hi)) = s.ports {
                            let lo = lo.max(1);
                            if lo <= hi {
                                bounds.insert(u32::from(lo));
                                bounds.insert(u32::from(hi) + 1);
                            }
                        }
                    }
                }
            }
        }
        let b: Vec<u32> = bounds.into_iter().collect();
        for w in b.windows(2) {
            // Bounds are within 1..=65536, so both ends fit a u16.
            let lo = u16::try_from(w[0]).unwrap_or(u16::MAX);
            let hi = u16::try_from(w[1] - 1).unwrap_or(u16::MAX);
            out.push(Atom::Port(p, lo, hi));
        }
    }
    for r in rules {
        if let Services::List(v) = &r.services {
            for s in v {
                let p = norm(s.proto);
                if !has_ports(p) {
                    named.insert(p);
                }
            }
        }
    }
    out.extend(named.into_iter().map(Atom::NoPort));
    out.push(Atom::Rest);
    out
}

// ------------------------------------------------------------------------------- evaluation

/// A rule's peers in family `f`: the resolved ranges, whether the rule said `any`.
fn peers_of(set: &AddrSet, f: Family) -> (Ranges, bool, &[String]) {
    match set {
        AddrSet::Any => (Ranges::full(f), true, &[]),
        AddrSet::Some { ranges, unresolved } => {
            let v = ranges
                .iter()
                .filter(|g| {
                    g.lo.is_ipv4() == (f == Family::V4) && g.hi.is_ipv4() == (f == Family::V4)
                })
                .map(|g| (space::key(g.lo), space::key(g.hi)))
                .collect();
            (Ranges::from_intervals(v), false, unresolved.as_slice())
        }
    }
}

fn describe(f: Family, r: &Ranges) -> String {
    let c = space::cidrs(f, r);
    let mut s: Vec<String> = c.iter().take(3).map(|c| c.to_string()).collect();
    if c.len() > 3 {
        s.push(format!("… ({} blocks)", c.len()));
    }
    s.join(", ")
}

#[allow(clippy::too_many_arguments)]
fn eval_list(
    list: &RuleList,
    rs: &[usize],
    names_ip: bool,
    ip: IpAddr,
    flow: Flow,
    opts: &DraftOptions,
    vm: &VmInput,
    out: &mut Vec<DraftRule>,
    warn: &mut Warnings,
) {
    let fam = Family::of(ip);
    let full = Ranges::full(fam);
    let rules: Vec<&Rule> = rs.iter().map(|&i| &list.rules[i]).collect();
    let n = rules.len();
    let peer_word = match flow {
        Flow::Ingress => "sources",
        Flow::Egress => "destinations",
    };
    // Each rule's peers as the evaluation uses them.
    let mut peer: Vec<Ranges> = Vec::with_capacity(n);
    let mut skip = vec![false; n];
    for (k, r) in rules.iter().enumerate() {
        let (set, _, unresolved) = peers_of(peer_side(r, flow), fam);
        match r.action {
            Action::Allow => {
                if !unresolved.is_empty() {
                    warn.push(format!(
                        "{}: {peer_word} {} are not resolved: left out (never widened)",
                        r.origin,
                        unresolved.join(", ")
                    ));
                }
                if !r.narrowed_by.is_empty() {
                    warn.push(format!(
                        "{}: also matches on {}, which a Kubernetes policy cannot express: \
                         the rule is left out (narrower)",
                        r.origin,
                        r.narrowed_by.join(", ")
                    ));
                    skip[k] = true;
                }
                peer.push(set);
            }
            Action::Deny => {
                if unresolved.is_empty() {
                    peer.push(set);
                } else {
                    peer.push(full.clone());
                }
            }
        }
    }
    let atoms = atoms(&rules);
    let mut contrib: Vec<Vec<(usize, Ranges)>> = vec![Vec::new(); n + 1];
    let mut narrowed: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n + 1];
    for (ai, &a) in atoms.iter().enumerate() {
        let mut denied = Ranges::empty();
        let mut allowed = Ranges::empty();
        let mut denies: Vec<(usize, Ranges)> = Vec::new();
        for (k, r) in rules.iter().enumerate() {
            if skip[k] || !matches(&r.services, a) {
                continue;
            }
            let s = &peer[k];
            match r.action {
                Action::Allow => {
                    let e = if denied.is_empty() {
                        s.clone()
                    } else {
                        s.minus(&denied)
                    };
                    if e != *s {
                        for (d, dset) in &denies {
                            if dset.intersects(s) {
                                narrowed[k].insert(*d);
                            }
                        }
                    }
                    if !e.is_empty() {
                        allowed = allowed.union(&e);
                        contrib[k].push((ai, e));
                    }
                }
                Action::Deny => {
                    let eff = s.minus(&allowed);
                    if !eff.is_empty() {
                        denied = denied.union(&eff);
                        denies.push((k, eff));
                    }
                }
            }
        }
        if list.default == Action::Allow && names_ip {
            let e = full.minus(&denied);
            if e != full {
                narrowed[n].extend(denies.iter().map(|(d, _)| *d));
            }
            if !e.is_empty() {
                contrib[n].push((ai, e));
            }
        }
    }
    if list.default == Action::Allow && !names_ip {
        warn.push(format!(
            "{}: the list default ({}) allows, but the list names {ip} nowhere (only its \
             rules to `any` reach it): the default is not applied (narrower)",
            list.default_origin, list.name
        ));
    }
    // The warnings naming both rules of each deny that cut into an allow.
    for k in 0..=n {
        let what = if k == n {
            format!("the list default (allow, {})", list.default_origin)
        } else {
            rules[k].origin.to_string()
        };
        for &d in &narrowed[k] {
            let dr = rules[d];
            let mut why = String::new();
            let (_, _, unresolved) = peers_of(peer_side(dr, flow), fam);
            if !unresolved.is_empty() {
                why.push_str(&format!(
                    "; its {peer_word} {} are not resolved, so it is taken as denying every \
                     peer",
                    unresolved.join(", ")
                ));
            }
            if let AddrSet::Some { unresolved, .. } = vm_side(dr, flow) {
                if !unresolved.is_empty() {
                    why.push_str(&format!(
                        "; its {} are not resolved and may include {ip}",
                        unresolved.join(", ")
                    ));
                }
            }
            if !dr.narrowed_by.is_empty() {
                why.push_str(&format!(
                    "; it also matches on {}, taken as matching everything",
                    dr.narrowed_by.join(", ")
                ));
            }
            warn.push(format!(
                "{} denies part of what {what} admits, before it: left out of the draft \
                 (`except` or fewer services){why}",
                dr.origin
            ));
        }
    }
    for (k, cells) in contrib.into_iter().enumerate() {
        if cells.is_empty() {
            continue;
        }
        let (origin, shape, every_service, any_peer) = if k == n {
            (list.default_origin.clone(), full.clone(), true, true)
        } else {
            let r = rules[k];
            (
                r.origin.clone(),
                peer[k].clone(),
                matches!(r.services, Services::Any),
                matches!(peer_side(r, flow), AddrSet::Any) || peer[k] == full,
            )
        };
        let mut broad = Vec::new();
        if k == n {
            broad.push("list default allow");
            warn.push(format!(
                "{origin}: the list default ({}) allows: every flow no rule denies is \
                 admitted, as broad as the firewall",
                list.name
            ));
        } else {
            if !names_addresses_of(vm_side(rules[k], flow)) {
                warn.push(format!(
                    "{origin}: its {} is `any`, not {ip} by name; applied because {} names \
                     {ip}: kept as broad as the firewall rule",
                    match flow {
                        Flow::Ingress => "destination",
                        Flow::Egress => "source",
                    },
                    if names_ip { "the list" } else { "its export" }
                ));
            }
            if any_peer {
                broad.push(match flow {
                    Flow::Ingress => "any source",
                    Flow::Egress => "any destination",
                });
                warn.push(format!(
                    "{origin}: admits from any {}: kept as broad as the firewall rule",
                    match flow {
                        Flow::Ingress => "source",
                        Flow::Egress => "destination",
                    }
                ));
            }
            if every_service {
                broad.push("any service");
                warn.push(format!(
                    "{origin}: admits every protocol and port: kept as broad as the firewall rule"
                ));
            }
        }
        let narrowed_by: Vec<Origin> = narrowed[k]
            .iter()
            .map(|&d| rules[d].origin.clone())
            .collect();
        let provenance = Provenance::Firewall {
            origin: origin.clone(),
            narrowed_by: narrowed_by.clone(),
            broad,
        };
        let mut sets: Vec<Ranges> = vec![Ranges::empty(); atoms.len()];
        for (ai, e) in cells {
            sets[ai] = e;
        }
        if every_service {
            let mut common = sets[0].clone();
            for s in &sets[1..] {
                if common.is_empty() {
                    break;
                }
                common = common.intersect(s);
            }
            if !common.is_empty() {
                out.push(DraftRule {
                    peers: space::blocks(fam, &common, &shape),
                    ports: Vec::new(),
                    provenance: provenance.clone(),
                });
                for s in &mut sets {
                    *s = s.minus(&common);
                }
            }
        }
        // Cells admitting the same peers make one rule, in service order.
        let mut groups: Vec<(Ranges, Vec<Atom>)> = Vec::new();
        let mut at: BTreeMap<Ranges, usize> = BTreeMap::new();
        for (ai, s) in sets.into_iter().enumerate() {
            if s.is_empty() {
                continue;
            }
            match at.get(&s) {
                Some(&g) => groups[g].1.push(atoms[ai]),
                None => {
                    at.insert(s.clone(), groups.len());
                    groups.push((s, vec![atoms[ai]]));
                }
            }
        }
        for (set, cells) in groups {
            let mut ports: Vec<PortRange> = Vec::new();
            let mut lost: Vec<String> = Vec::new();
            for a in cells {
                match a {
                    Atom::Port(p, lo, hi) => match ports.last_mut() {
                        Some(last)
                            if last.proto == p && u32::from(last.hi) + 1 == u32::from(lo) =>
                        {
                            last.hi = hi
                        }
                        _ => ports.push(PortRange { proto: p, lo, hi }),
                    },
                    Atom::NoPort(p) => lost.push(proto_name(p)),
                    Atom::Rest => lost.push("every other IP protocol".into()),
                }
            }
            if !lost.is_empty() {
                let by = if narrowed_by.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (what {} denies before it rules out admitting every protocol)",
                        narrowed_by
                            .iter()
                            .map(|o| o.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                warn.push(format!(
                    "{origin}: admits {} from {}, which a Kubernetes policy can only admit \
                     together with every protocol{by}: left out (narrower)",
                    lost.join(", "),
                    describe(fam, &set)
                ));
            }
            let l2_v1beta1 = matches!(vm.network, VmNetwork::Attachments(_))
                && opts.mnp_version == MnpVersion::V1beta1;
            if l2_v1beta1 {
                let mut expanded = Vec::new();
                for p in ports {
                    if p.all_ports() || p.lo == p.hi {
                        expanded.push(p);
                    } else if p.hi - p.lo < 32 {
                        expanded.extend((p.lo..=p.hi).map(|n| PortRange {
                            proto: p.proto,
                            lo: n,
                            hi: n,
                        }));
                    } else {
                        warn.push(format!(
                            "{origin}: admits {} ports {}-{}; MultiNetworkPolicy v1beta1 has \
                             no endPort and the draft expands at most 32 ports: left out \
                             (narrower; use --mnp-version v1beta2 if the cluster serves it)",
                            proto_name(p.proto),
                            p.lo,
                            p.hi
                        ));
                    }
                }
                ports = expanded;
            }
            if !ports.is_empty() {
                out.push(DraftRule {
                    peers: space::blocks(fam, &set, &shape),
                    ports,
                    provenance: provenance.clone(),
                });
            }
        }
    }
}

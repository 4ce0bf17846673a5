//! The ordered firewall rule model (issue 17): what a firewall export *means*, as opposed to
//! the blast scan's references (where an address appears). Every parser in [`super::fw`]
//! produces a [`RuleSet`]; [`super::draft`] evaluates it per VM.
//!
//! Semantics, for every format: a [`RuleList`] is evaluated top to bottom, the first rule whose
//! source, destination and service all match a packet decides it, and a packet no rule
//! matches gets the list's `default` (iptables chain policy, the implicit deny of ASA,
//! PAN-OS, AWS security groups and the neutral CSV).

use std::net::IpAddr;

/// Where a rule (or a list's default) came from, for the YAML comment of a drafted policy
/// and for warnings: `fw/edge.iptables:7 rule web-in (owner netsec)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Origin {
    /// The export's path as shown to the user (relative to the parent of its `--sources`
    /// directory: `fw/edge.iptables`).
    pub file: String,
    /// 1-based line of the rule in the export (the element's line for XML and JSON).
    pub line: usize,
    /// Rule name or id when the format has one (`rule_id`/`rule_name`, ASA ACL name and
    /// line, PAN-OS entry name, security group id and rule index, iptables comment).
    pub name: Option<String>,
    /// The rule's owner when the export names one (same rules as the blast scan's owners).
    pub owner: Option<String>,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)?;
        if let Some(n) = &self.name {
            write!(f, " rule {n}")?;
        }
        if let Some(o) = &self.owner {
            write!(f, " (owner {o})")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Allow,
    /// DROP, REJECT, deny: the draft does not distinguish them.
    Deny,
}

/// Which way a rule faces, when the export says so. `None` means a transit rule (iptables
/// FORWARD, ASA interface ACLs, PAN-OS security rules): it is an ingress rule for every VM in
/// its destination and an egress rule for every VM in its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Towards the protected machine (iptables INPUT, CSV `in`, AWS `IpPermissions`).
    In,
    /// From the protected machine (iptables OUTPUT, CSV `out`, AWS `IpPermissionsEgress`).
    Out,
}

/// An inclusive address range; CIDRs, single hosts and `a-b` ranges all become one.
/// `lo` and `hi` are the same family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AddrRange {
    pub lo: IpAddr,
    pub hi: IpAddr,
}

impl AddrRange {
    pub fn host(ip: IpAddr) -> Self {
        AddrRange { lo: ip, hi: ip }
    }
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.lo <= ip && ip <= self.hi && self.lo.is_ipv4() == ip.is_ipv4()
    }
}

/// A set of addresses as the rule wrote it, resolved as far as the export allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddrSet {
    /// `any`, `0.0.0.0/0`, a missing `-s`/`-d`, PAN-OS `any`.
    Any,
    /// Resolved ranges (object groups, ipsets and address objects expanded), plus the names
    /// the export could not resolve (a host name, an ipset or group defined nowhere, a
    /// security group reference): those match no address, and the draft warns about them.
    Some {
        ranges: Vec<AddrRange>,
        unresolved: Vec<String>,
    },
}

impl AddrSet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match self {
            AddrSet::Any => true,
            AddrSet::Some { ranges, .. } => ranges.iter().any(|r| r.contains(ip)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    Tcp,
    Udp,
    Sctp,
    Icmp,
    /// Another IP protocol by number (`esp` = 50, `gre` = 47, …).
    Other(u8),
}

/// One service: a protocol and, for TCP/UDP/SCTP, an inclusive destination port range
/// (`None` = every port). Source ports, ICMP types and TCP flags narrow a rule further; the
/// parser keeps the rule and records the narrowing in [`Rule::narrowed_by`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Service {
    pub proto: Proto,
    pub ports: Option<(u16, u16)>,
}

/// What a rule matches by service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Services {
    /// Every protocol and port (`ip`/`any` protocol, no `-p`).
    Any,
    /// These services, object groups expanded.
    List(Vec<Service>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub origin: Origin,
    pub action: Action,
    pub direction: Option<Direction>,
    pub src: AddrSet,
    pub dst: AddrSet,
    pub services: Services,
    /// Matches the rule has that this model does not carry (source ports, ICMP types,
    /// interfaces, connection state other than NEW/ESTABLISHED, schedules, users,
    /// applications): the draft keeps the rule and warns, naming them.
    pub narrowed_by: Vec<String>,
    /// The rule is disabled in the export (PAN-OS `disabled yes`, ASA `inactive`): it is
    /// kept for the record and never matches.
    pub disabled: bool,
}

/// One ordered list: an iptables chain, an ASA access list, PAN-OS security rules, one AWS
/// security group, a neutral CSV `source`/`device`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleList {
    /// `filter/FORWARD`, `access-list outside_in`, `security rules`, `sg-0abc (web)`, `fw-core/fw01`.
    pub name: String,
    pub rules: Vec<Rule>,
    /// What a packet no rule matches gets, and where that default is written (the chain
    /// policy line; for an implicit deny, the list's first line).
    pub default: Action,
    pub default_origin: Origin,
    /// The default is implicit (not written in the export).
    pub implicit_default: bool,
}

/// A parsed firewall export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSet {
    pub file: String,
    /// `iptables`, `nft`, `aws-sg`, `firewall-csv`, `asa`, `panos`.
    pub format: &'static str,
    pub lists: Vec<RuleList>,
    /// What the parser could not model, with file:line.
    pub warnings: Vec<String>,
}

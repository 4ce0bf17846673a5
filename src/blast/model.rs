//! What a blast-radius scan finds: references to a VM, their coverage and owner.

use serde::{Deserialize, Serialize};

/// What kind of thing names the VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RefKind {
    /// DNS A record whose address is the VM's.
    DnsA,
    /// DNS AAAA record whose address is the VM's.
    DnsAaaa,
    /// DNS PTR record for the VM's address (or pointing at its name).
    DnsPtr,
    /// DNS CNAME whose target (directly or through a chain) is one of the VM's names.
    DnsCname,
    /// A firewall rule or security-group permission (neutral CSV, iptables, nftables, AWS).
    FirewallRule,
    /// A Prometheus scrape target (static config or file_sd).
    PrometheusTarget,
    /// A load-balancer backend (HAProxy `server`, nginx `upstream` server or `proxy_pass`).
    LbBackend,
    /// A load-balancer listener address (HAProxy `bind`, nginx `listen`): the VM holds a VIP.
    LbFrontend,
    /// An access list in a proxy (nginx `allow`/`deny`/`set_real_ip_from`).
    LbAcl,
    /// A literal address or name in any other configuration file.
    ConfigLiteral,
    /// A literal address or name in a document (Markdown, text, extracted PDF/Word text).
    Document,
}

impl RefKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RefKind::DnsA => "dns-a",
            RefKind::DnsAaaa => "dns-aaaa",
            RefKind::DnsPtr => "dns-ptr",
            RefKind::DnsCname => "dns-cname",
            RefKind::FirewallRule => "firewall-rule",
            RefKind::PrometheusTarget => "prometheus-target",
            RefKind::LbBackend => "lb-backend",
            RefKind::LbFrontend => "lb-frontend",
            RefKind::LbAcl => "lb-acl",
            RefKind::ConfigLiteral => "config-literal",
            RefKind::Document => "document",
        }
    }

    pub fn is_dns(self) -> bool {
        matches!(
            self,
            RefKind::DnsA | RefKind::DnsAaaa | RefKind::DnsPtr | RefKind::DnsCname
        )
    }
}

/// Whether a reference names the host or only a range that contains it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type", content = "range", rename_all = "kebab-case")]
pub enum Coverage {
    /// The address or name of this VM itself.
    NamesHost,
    /// A CIDR (`198.51.100.0/24`) or range (`a-b`) containing the VM's address: re-IPing
    /// inside the range changes nothing; leaving it does.
    CoveredByRange(String),
}

/// Where an owner was learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OwnerSource {
    /// A line of the owners file.
    OwnersFile,
    /// The VM's `owner` custom attribute in RVTools (or govc custom values).
    RvtoolsAttribute,
    /// The VM's `owner` in the wave plan.
    Plan,
    /// A tag or owner column on the rule itself (AWS `Tags`, neutral CSV `owner`).
    RuleTag,
    /// An `owner: NAME` comment next to the reference (rule comment, zone or config comment).
    Comment,
    /// A Prometheus `team`/`owner` label on the target.
    PrometheusLabel,
}

impl OwnerSource {
    pub fn as_str(self) -> &'static str {
        match self {
            OwnerSource::OwnersFile => "owners-file",
            OwnerSource::RvtoolsAttribute => "rvtools-attribute",
            OwnerSource::Plan => "plan",
            OwnerSource::RuleTag => "rule-tag",
            OwnerSource::Comment => "comment",
            OwnerSource::PrometheusLabel => "prometheus-label",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Owner {
    pub name: String,
    pub source: OwnerSource,
}

impl Owner {
    pub fn new(name: impl Into<String>, source: OwnerSource) -> Owner {
        Owner {
            name: name.into(),
            source,
        }
    }
}

/// One place that names a VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    /// The VM (its plan name).
    pub vm: String,
    /// What matched: an IP, a host name, a CIDR or a range.
    pub matched: String,
    /// The file, as found under the sources directory (path as given + relative part).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    pub kind: RefKind,
    /// The line, trimmed (at most 240 characters).
    pub text: String,
    /// For structured sources, where in the structure (`backend app`, `sg-0a1 ingress`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    pub coverage: Coverage,
    #[serde(default)]
    pub owner: Option<Owner>,
}

/// A reference as a parser finds it, before the VM name and owner are attached.
#[derive(Debug, Clone)]
pub struct Hit {
    pub target: usize,
    pub matched: String,
    pub line: usize,
    pub kind: RefKind,
    pub text: String,
    pub context: Option<String>,
    pub coverage: Coverage,
    /// An owner stated by the source itself (rule tag, comment, label).
    pub owner: Option<Owner>,
}

/// Trims a line for a report.
pub fn clip(s: &str) -> String {
    let t = s.trim();
    if t.len() <= 240 {
        return t.to_string();
    }
    let mut end = 237;
    while !t.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &t[..end])
}

/// Finds `owner: NAME`, `owner=NAME`, `team: NAME` or `team=NAME` in free text (a comment).
pub fn owner_in_text(s: &str) -> Option<String> {
    let lower = s.to_ascii_lowercase();
    for key in ["owner", "team"] {
        let mut from = 0;
        while let Some(i) = lower[from..].find(key) {
            let at = from + i;
            from = at + key.len();
            if at > 0 && lower.as_bytes()[at - 1].is_ascii_alphanumeric() {
                continue;
            }
            let rest = s[at + key.len()..].trim_start();
            let Some(rest) = rest.strip_prefix([':', '=']) else {
                continue;
            };
            let name: String = rest
                .trim_start()
                .chars()
                .take_while(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
                .collect();
            let name = name.trim_end_matches('.').to_string();
            if !name.is_empty() {
                return Some(name);
            }
        }
    }
    None
}

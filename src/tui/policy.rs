//! The VMs' network policies for the detail pane (`[plan] policy = "draft" | "apply"`,
//! issue 17): what was drafted, the rules it holds with where each came from, and for each
//! of the VM's checks the rules that admit its probe, and the firewall-derived rules that
//! admit its service for the VM's real clients. Built once at start from the draft
//! (`cli::policies`); the TUI only shows it.

use std::collections::BTreeMap;

/// One VM's drafted policy, as the detail pane shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VmPolicy {
    /// `MultiNetworkPolicy mig-quickstart/wavelift-shop-db-01 (v1beta2, on vlan-210)`.
    pub object: String,
    /// One line per rule: `ingress from 192.0.2.16/32 tcp/5432 ← fw/edge.iptables:7 …`.
    pub rules: Vec<String>,
    /// For each check of the VM (`tcp:5432`, `icmp`): the rules that admit its probe from
    /// where the checks run, or `None` when the policy would block it.
    pub checks: Vec<(String, Option<Vec<String>>)>,
    /// The draft's warnings for this VM (a rule left out, a broad rule kept).
    pub warnings: Vec<String>,
    /// For each check whose probe uses a service of the VM (`tcp:5432` → `tcp/5432`), the
    /// rules drafted from the firewall that admit that service for the VM's clients: a
    /// check's probe is admitted by wavelift's own probe rule, which says nothing about them.
    pub services: Vec<ServiceRules>,
}

/// The rules drafted from the firewall that admit one check's service.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceRules {
    /// The check, as in [`VmPolicy::checks`].
    pub check: String,
    /// `tcp/5432`, `icmp`.
    pub service: String,
    /// The rules (lines as in [`VmPolicy::rules`]); empty: no firewall rule admits the
    /// service, so only wavelift's probe rule lets the check through.
    pub rules: Vec<String>,
}

/// Every VM's policy, by VM name, and what the plan does with them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PolicyData {
    /// `draft` (shown, never applied) or `apply`.
    pub mode: String,
    pub vms: BTreeMap<String, VmPolicy>,
}

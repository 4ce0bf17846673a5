//! The VMs a scan looks for: names, addresses, networks and the owner known for each, taken
//! from a wave plan or straight from an inventory (RVTools / govc).

use super::model::{Owner, OwnerSource};
use crate::inventory::skeleton::k8s_name;
use crate::inventory::Inventory;
use crate::plan::Plan;
use std::collections::BTreeMap;
use std::net::IpAddr;

#[derive(Debug, Clone)]
pub struct Target {
    /// The VM's plan name.
    pub name: String,
    pub ips: Vec<IpAddr>,
    /// Lowercase host names to search: the VM name, the vSphere name and DNS name if they
    /// differ, each FQDN and its first label.
    pub hostnames: Vec<String>,
    /// The VM's own owner (plan `owner` or RVTools attribute).
    pub owner: Option<Owner>,
    /// `(network, VLAN)` per NIC; `None` VLAN when it is unknown.
    pub networks: Vec<(String, Option<u16>)>,
    /// Every NIC's VLAN is known (it can be carried into the cluster).
    pub vlan_known: bool,
}

fn push_name(v: &mut Vec<String>, n: &str) {
    let n = n.trim().trim_end_matches('.').to_ascii_lowercase();
    if n.len() < 2 || n.parse::<IpAddr>().is_ok() {
        return;
    }
    if let Some((short, _)) = n.split_once('.') {
        if short.len() >= 2 && !v.iter().any(|x| x == short) {
            v.push(short.to_string());
        }
    }
    if !v.contains(&n) {
        v.push(n);
    }
}

pub fn from_plan(plan: &Plan) -> Vec<Target> {
    plan.vms
        .iter()
        .map(|vm| {
            let mut hostnames = Vec::new();
            push_name(&mut hostnames, &vm.name);
            for c in &vm.checks {
                if let crate::plan::check::CheckKind::Dns { name } = &c.kind {
                    push_name(&mut hostnames, name);
                }
            }
            let networks: Vec<(String, Option<u16>)> = vm
                .nics
                .iter()
                .map(|n| {
                    let vlan = plan
                        .network(&n.network)
                        .and_then(|net| net.vlan.as_ref().map(|v| v.value));
                    (n.network.value.clone(), vlan)
                })
                .collect();
            Target {
                name: vm.name.value.clone(),
                ips: vm
                    .nics
                    .iter()
                    .filter_map(|n| n.ip.as_ref().map(|i| i.value))
                    .collect(),
                hostnames,
                owner: vm.owner.clone().map(|o| Owner::new(o, OwnerSource::Plan)),
                vlan_known: !networks.is_empty() && networks.iter().all(|(_, v)| v.is_some()),
                networks,
            }
        })
        .collect()
}

pub fn from_inventory(inv: &Inventory) -> Vec<Target> {
    let mut used: BTreeMap<String, usize> = BTreeMap::new();
    inv.vms
        .iter()
        .filter(|v| !v.template)
        .map(|vm| {
            let base = k8s_name(&vm.name);
            let n = used.entry(base.clone()).or_insert(0);
            *n += 1;
            let name = if *n == 1 { base } else { format!("{base}-{n}") };
            let mut hostnames = Vec::new();
            push_name(&mut hostnames, &name);
            push_name(&mut hostnames, &vm.name);
            if let Some(d) = &vm.dns_name {
                push_name(&mut hostnames, d);
            }
            let networks: Vec<(String, Option<u16>)> = vm
                .nics
                .iter()
                .filter_map(|n| n.network.clone())
                .map(|pg| {
                    let vlan = inv.port_groups.get(&pg).copied().flatten();
                    (pg, vlan)
                })
                .collect();
            Target {
                name,
                ips: vm.all_ips(),
                hostnames,
                owner: vm
                    .owner()
                    .map(|o| Owner::new(o, OwnerSource::RvtoolsAttribute)),
                vlan_known: !networks.is_empty() && networks.iter().all(|(_, v)| v.is_some()),
                networks,
            }
        })
        .collect()
}

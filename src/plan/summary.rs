//! The one-line summary of a plan: waves, VMs, networks, L2/L3 counts, total disk size.

use super::model::{NetworkModel, Plan};
use super::quantity::human_bytes;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub waves: usize,
    pub vms: usize,
    pub networks: usize,
    pub l2_vms: usize,
    pub l3_vms: usize,
    pub disks: usize,
    pub disk_bytes: u64,
}

impl Summary {
    pub fn of(plan: &Plan) -> Summary {
        let l2 = plan
            .vms
            .iter()
            .filter(|v| plan.model_of(v) == NetworkModel::L2)
            .count();
        Summary {
            waves: plan.waves.len(),
            vms: plan.vms.len(),
            networks: plan.networks.len(),
            l2_vms: l2,
            l3_vms: plan.vms.len() - l2,
            disks: plan.vms.iter().map(|v| v.disks.len()).sum(),
            disk_bytes: plan
                .vms
                .iter()
                .flat_map(|v| v.disks.iter())
                .map(|d| d.size.bytes)
                .fold(0u64, u64::saturating_add),
        }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plural =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        write!(
            f,
            "{}, {} ({} L2, {} L3), {}, {} in {}",
            plural(self.waves, "wave", "waves"),
            plural(self.vms, "VM", "VMs"),
            self.l2_vms,
            self.l3_vms,
            plural(self.networks, "network", "networks"),
            human_bytes(self.disk_bytes),
            plural(self.disks, "disk", "disks"),
        )
    }
}

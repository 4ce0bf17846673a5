//! Labels and names on every object wavelift creates. The cluster is the source of truth: a
//! restarted run finds each VM's objects by these labels, and names are deterministic so
//! that nothing is ever created twice.

use std::collections::BTreeMap;

pub const PLAN: &str = "wavelift.io/plan";
pub const WAVE: &str = "wavelift.io/wave";
pub const VM: &str = "wavelift.io/vm";
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGER: &str = "wavelift";
/// Field manager for server-side apply.
pub const FIELD_MANAGER: &str = "wavelift";

/// Labels for an object that belongs to one VM of a plan.
pub fn for_vm(plan: &str, wave: &str, vm: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (PLAN.to_string(), plan.to_string()),
        (WAVE.to_string(), wave.to_string()),
        (VM.to_string(), vm.to_string()),
        (MANAGED_BY.to_string(), MANAGER.to_string()),
    ])
}

/// Labels for an object shared by a plan's VMs (a network attachment).
pub fn for_plan(plan: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (PLAN.to_string(), plan.to_string()),
        (MANAGED_BY.to_string(), MANAGER.to_string()),
    ])
}

/// Label selector matching every object of a plan.
pub fn plan_selector(plan: &str) -> String {
    format!("{PLAN}={plan}")
}

/// Label selector matching the objects of one VM of a plan.
pub fn vm_selector(plan: &str, vm: &str) -> String {
    format!("{PLAN}={plan},{VM}={vm}")
}

/// Name of the DataVolume (and its PVC) for disk `index` of a VM.
pub fn data_volume_name(vm: &str, index: usize) -> String {
    format!("{vm}-disk{index}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_and_names() {
        assert_eq!(plan_selector("p"), "wavelift.io/plan=p");
        assert_eq!(vm_selector("p", "v"), "wavelift.io/plan=p,wavelift.io/vm=v");
        assert_eq!(data_volume_name("web-01", 1), "web-01-disk1");
        assert_eq!(for_vm("p", "w", "v").len(), 4);
    }
}

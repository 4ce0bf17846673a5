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

/// Annotation on the objects a VM's cutover writes after its source's power-off (cold: the
/// DataVolumes and the VirtualMachine; warm: the DataVolumes' final checkpoint and the
/// VirtualMachine): when that power-off was requested, on the run's window clock (the wall
/// clock, or the rehearsal world's), and whether it ended in a hard stop. A resumed run reads
/// it back, so a VM's downtime still runs from the real power-off request. It costs no
/// request: it rides on calls the cutover makes anyway.
pub const POWER_OFF: &str = "wavelift.io/power-off";

/// The value of [`POWER_OFF`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PowerOffStamp {
    /// When the power-off was requested (ms since the Unix epoch, on the window clock).
    pub requested_ms: i64,
    /// The guest did not shut down cleanly: the copy is crash-consistent.
    pub hard: bool,
}

impl PowerOffStamp {
    pub fn to_annotation(self) -> String {
        serde_json::to_string(&self).unwrap_or_default()
    }

    /// The stamp in `annotations`, if there is a readable one.
    pub fn read(annotations: Option<&BTreeMap<String, String>>) -> Option<Self> {
        serde_json::from_str(annotations?.get(POWER_OFF)?).ok()
    }
}

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

    #[test]
    fn the_power_off_stamp_reads_back_and_ignores_what_is_not_one() {
        let s = PowerOffStamp {
            requested_ms: 1_796_508_000_123,
            hard: true,
        };
        let ann = BTreeMap::from([(POWER_OFF.to_string(), s.to_annotation())]);
        assert_eq!(PowerOffStamp::read(Some(&ann)), Some(s));
        let bad = BTreeMap::from([(POWER_OFF.to_string(), "yesterday".to_string())]);
        assert_eq!(PowerOffStamp::read(Some(&bad)), None);
        assert_eq!(PowerOffStamp::read(None), None);
    }
}

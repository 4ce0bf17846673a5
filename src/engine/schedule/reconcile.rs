//! The bookkeeping that makes a turn incremental: which VMs to decide again, each VM's last
//! decision, and per-wave counts kept up to date instead of recounted over the whole fleet.
//!
//! A pass of [`super::turn`] decides again only
//! - the *dirty* VMs: an input about them arrived (a cluster view, a finished command), a
//!   slot was granted or its waiting reason changed, a dependency's phase or VMI changed, a
//!   re-probe fell due, their wave started, or an operator request arrived (every VM);
//! - the *volatile* VMs: those whose decision reads the clock or the fleet's throughput
//!   (a boot, agent or import-stall timeout can fall due; a re-probe is scheduled; a warm VM
//!   counts down to its next precopy round; a change window gates its cutover).
//!
//! Every other VM's decision is the one it had, so a turn costs the VMs that changed, not the
//! fleet. With incremental decisions off ([`Reconcile::full`]), every VM is dirty at every
//! pass: the property test in `prop_tests.rs` runs random event sequences both ways and
//! requires identical turns.

use super::super::decide::Decision;
use std::collections::BTreeSet;

/// A VM's part in its wave's preflight gate (see `preflight_gate` in the parent module).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum GatePart {
    /// Not before its preflight, not in scope, or passed.
    #[default]
    None,
    /// Waits on its preflight: no mutation in the wave starts.
    Blocking,
    /// Its preflight failed.
    Failed,
}

/// Incremental state of a [`super::Fleet`]; indices are plan indices (VMs) and plan order
/// (waves).
#[derive(Debug)]
pub(super) struct Reconcile {
    /// Decide every VM at every pass (the reference the incremental path is tested against).
    pub full: bool,
    /// Each VM's last decision before the preflight gate's override.
    pub raw: Vec<Option<Decision>>,
    /// The gate's override of a VM's decision, while one applies.
    pub gated: Vec<Option<Decision>>,
    pub dirty: BTreeSet<usize>,
    pub volatile: BTreeSet<usize>,
    /// VMs whose `after` names each VM.
    pub rdeps: Vec<Vec<usize>>,
    /// Each VM's wave (plan order).
    pub wave_of: Vec<usize>,
    /// Each wave's VMs, in plan order.
    pub wave_vms: Vec<Vec<usize>>,
    pub gate: Vec<GatePart>,
    /// Per wave: VMs blocking its gate, and those whose preflight failed.
    pub gate_blocking: Vec<u32>,
    pub gate_failed: Vec<BTreeSet<usize>>,
    /// Per wave: the gate as the last pass applied it (blocked, first failed VM).
    pub gate_seen: Vec<(bool, Option<usize>)>,
    /// Per wave: import and cutover slots held.
    pub imports_held: Vec<u32>,
    pub cutovers_held: Vec<u32>,
    /// Per wave: VMs that want a slot they do not hold, in plan order.
    pub import_waiters: Vec<BTreeSet<usize>>,
    pub cutover_waiters: Vec<BTreeSet<usize>>,
    /// Each VM is in scope and has not ended (see `Fleet::end_state`).
    pub open: Vec<bool>,
    /// Per wave: its open VMs (a wave whose count is 0 is done).
    pub open_count: Vec<u32>,
    /// Per wave: bumped when something its window fit reads changes.
    pub wave_gen: Vec<u64>,
}

impl Reconcile {
    pub fn new(wave_of: Vec<usize>, waves: usize, deps: &[Vec<usize>]) -> Reconcile {
        let n = wave_of.len();
        let mut wave_vms = vec![Vec::new(); waves];
        for (i, &w) in wave_of.iter().enumerate() {
            wave_vms[w].push(i);
        }
        let mut rdeps = vec![Vec::new(); n];
        for (i, ds) in deps.iter().enumerate() {
            for &j in ds {
                rdeps[j].push(i);
            }
        }
        Reconcile {
            full: false,
            raw: vec![None; n],
            gated: vec![None; n],
            // The first pass decides every VM.
            dirty: (0..n).collect(),
            volatile: BTreeSet::new(),
            rdeps,
            wave_of,
            wave_vms,
            gate: vec![GatePart::None; n],
            gate_blocking: vec![0; waves],
            gate_failed: vec![BTreeSet::new(); waves],
            gate_seen: vec![(false, None); waves],
            imports_held: vec![0; waves],
            cutovers_held: vec![0; waves],
            import_waiters: vec![BTreeSet::new(); waves],
            cutover_waiters: vec![BTreeSet::new(); waves],
            open: vec![false; n],
            open_count: vec![0; waves],
            wave_gen: vec![0; waves],
        }
    }

    /// VM `i`'s decision as the slots, events and commands see it (the gate's override
    /// when one applies).
    pub fn effective(&self, i: usize) -> Option<&Decision> {
        self.gated[i].as_ref().or(self.raw[i].as_ref())
    }

    /// Decide VM `i` again at the next pass.
    pub fn mark(&mut self, i: usize) {
        self.dirty.insert(i);
    }

    /// Decide VM `i` and the VMs that wait for it again (they read its phase and VMI).
    pub fn mark_with_dependents(&mut self, i: usize) {
        self.dirty.insert(i);
        self.dirty.extend(self.rdeps[i].iter().copied());
    }

    /// Every VM and wave: an operator request, which may change anything.
    pub fn mark_all(&mut self) {
        let n = self.raw.len();
        self.dirty.extend(0..n);
        for g in &mut self.wave_gen {
            *g += 1;
        }
    }

    /// Wave `w` started or changed as a whole: its VMs are decided again.
    pub fn mark_wave(&mut self, w: usize) {
        self.dirty.extend(self.wave_vms[w].iter().copied());
        self.wave_gen[w] += 1;
    }

    /// Records whether VM `i` is open (in scope, not ended).
    pub fn set_open(&mut self, i: usize, open: bool) {
        if std::mem::replace(&mut self.open[i], open) != open {
            let w = self.wave_of[i];
            if open {
                self.open_count[w] += 1;
            } else {
                self.open_count[w] -= 1;
            }
        }
    }

    /// Records VM `i`'s part in its wave's gate.
    pub fn set_gate(&mut self, i: usize, part: GatePart) {
        let w = self.wave_of[i];
        match std::mem::replace(&mut self.gate[i], part) {
            GatePart::Blocking => self.gate_blocking[w] -= 1,
            GatePart::Failed => {
                self.gate_failed[w].remove(&i);
            }
            GatePart::None => {}
        }
        match part {
            GatePart::Blocking => self.gate_blocking[w] += 1,
            GatePart::Failed => {
                self.gate_failed[w].insert(i);
            }
            GatePart::None => {}
        }
    }

    /// Keeps VM `i`'s membership in its wave's waiting lists true to its decision and slots.
    pub fn sync_waiting(&mut self, i: usize, import_slot: bool, cutover_slot: bool) {
        let w = self.wave_of[i];
        let (wants_import, wants_cutover) = self.effective(i).map_or((false, false), |d| {
            (d.wants_import_slot, d.wants_cutover_slot)
        });
        if wants_import && !import_slot {
            self.import_waiters[w].insert(i);
        } else {
            self.import_waiters[w].remove(&i);
        }
        if wants_cutover && !cutover_slot {
            self.cutover_waiters[w].insert(i);
        } else {
            self.cutover_waiters[w].remove(&i);
        }
    }
}

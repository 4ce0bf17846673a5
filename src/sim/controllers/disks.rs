//! Source disks as a log of extents: what a running source VM writes, what a copy of its
//! disks holds, and whether the guest booted from the copy has every write.
//!
//! Never per-block state. A running VM writes `write_rate` bytes per simulated second; the
//! writes are one [`Extent`] per [`CHUNK_SECONDS`] of running (a whole chunk's bytes at one
//! pseudo-random offset of one disk), generated lazily up to "now" whenever someone looks,
//! plus a last, shorter extent at power-off. Each extent carries the VM's write generation
//! `gen` (1, 2, 3, … per VM). Twenty VMs writing for a day are some 30 000 extents: about a
//! megabyte.
//!
//! A copy is a set of generations per (VM, disk) ([`Coverage`]): a cold import holds every
//! generation written before it began; a stage of a multi-stage import from snapshot
//! `current` holds `(gen(previous), gen(current)]` (the whole disk up to `current` for the
//! first stage). A disk is consistent when its copy holds every extent its source wrote,
//! which can only be final once the source is powered off.
//!
//! Change IDs look like VMware's (`52 1f 3c 4d 5e 6f 70 81-92 a3 b4 c5 d6 e7 f8 09/17`, the
//! pattern CDI tells change IDs from snapshot references by: containerized-data-importer
//! `pkg/importer/vddk-datasource_amd64.go`, `changeIDPattern`): a per-disk prefix that
//! changes whenever changed block tracking is turned on again, then the disk's write
//! generation.

use serde::Serialize;

/// Simulated seconds of running per written extent.
pub const CHUNK_SECONDS: f64 = 60.0;

/// One write of a source VM: `len` bytes at `offset` of disk `disk`, made at simulated time
/// `at`, the VM's `gen`-th write.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Extent {
    pub at: f64,
    pub gen: u64,
    pub offset: u64,
    pub len: u64,
    pub disk: u16,
}

/// Everything a source VM wrote, lazily extended up to "now" while it runs.
#[derive(Debug, Clone)]
pub struct WriteLog {
    seed: u64,
    rate: u64,
    sizes: Vec<u64>,
    extents: Vec<Extent>,
    gen: u64,
    /// Per disk, the generation of its latest extent (0: never written).
    disk_gen: Vec<u64>,
    /// While running: the simulated time from which running is not yet in the log.
    pending_since: Option<f64>,
}

impl WriteLog {
    /// The log of a VM writing `rate` bytes/s to disks of `sizes`, running since
    /// `running_since` (`None`: powered off).
    pub fn new(seed: u64, rate: u64, sizes: Vec<u64>, running_since: Option<f64>) -> Self {
        WriteLog {
            seed,
            rate,
            disk_gen: vec![0; sizes.len()],
            sizes,
            extents: Vec::new(),
            gen: 0,
            pending_since: running_since,
        }
    }

    fn emit(&mut self, at: f64, secs: f64) {
        if self.sizes.is_empty() || self.rate == 0 {
            return;
        }
        let gen = self.gen + 1;
        let h = crate::sim::fault::mix(self.seed ^ gen.rotate_left(17));
        let disk = (h % self.sizes.len() as u64) as usize;
        let size = self.sizes[disk].max(1);
        let len = ((self.rate as f64 * secs) as u64).min(size);
        if len == 0 {
            return;
        }
        // 4 KiB-aligned, inside the disk.
        let room = (size - len) / 4096 + 1;
        let offset = (crate::sim::fault::mix(h) % room) * 4096;
        self.gen = gen;
        self.disk_gen[disk] = gen;
        self.extents.push(Extent {
            at,
            gen,
            offset,
            len,
            disk: disk as u16,
        });
    }

    /// Writes every whole chunk of running up to `now`.
    pub fn materialise(&mut self, now: f64) {
        let Some(mut since) = self.pending_since else {
            return;
        };
        let chunks = ((now - since) / CHUNK_SECONDS).floor().max(0.0);
        if self.sizes.is_empty() || self.rate == 0 {
            // Writes nothing: no extent, whatever the time.
            self.pending_since = Some(since + chunks * CHUNK_SECONDS);
            return;
        }
        let total: u64 = self.sizes.iter().sum();
        if chunks >= 1.0 && self.rate as f64 * chunks * CHUNK_SECONDS >= total as f64 {
            // Unseen for so long that it wrote its disks' size or more (a sim at a million
            // times real speed runs ~16,000 chunks per real second): one write of each
            // whole disk, at the end of those chunks. Every block counts as changed, an
            // over-estimate of random writes; without it, memory and time grew with the
            // simulated time of every running VM.
            since += chunks * CHUNK_SECONDS;
            for disk in 0..self.sizes.len() {
                self.gen += 1;
                self.disk_gen[disk] = self.gen;
                self.extents.push(Extent {
                    at: since,
                    gen: self.gen,
                    offset: 0,
                    len: self.sizes[disk],
                    disk: disk as u16,
                });
            }
            self.pending_since = Some(since);
            return;
        }
        while now - since >= CHUNK_SECONDS {
            since += CHUNK_SECONDS;
            self.emit(since, CHUNK_SECONDS);
        }
        self.pending_since = Some(since);
    }

    /// The VM stops at `at`: the writes up to then, the last partial chunk included.
    pub fn power_off(&mut self, at: f64) {
        self.materialise(at);
        if let Some(since) = self.pending_since.take() {
            if at > since {
                self.emit(at, at - since);
            }
        }
    }

    /// The VM runs again from `at`.
    pub fn power_on(&mut self, at: f64) {
        if self.pending_since.is_none() {
            self.pending_since = Some(at);
        }
    }

    /// The VM's latest write generation (0: it never wrote).
    pub fn gen(&self) -> u64 {
        self.gen
    }

    /// The generation of disk `disk`'s latest extent.
    pub fn disk_gen(&self, disk: usize) -> u64 {
        self.disk_gen.get(disk).copied().unwrap_or(0)
    }

    pub fn extents(&self) -> &[Extent] {
        &self.extents
    }

    /// Bytes disk `disk` got in generations `(lo, hi]`.
    pub fn bytes_between(&self, disk: usize, lo: u64, hi: u64) -> u64 {
        let from = self.extents.partition_point(|e| e.gen <= lo);
        self.extents[from..]
            .iter()
            .take_while(|e| e.gen <= hi)
            .filter(|e| e.disk as usize == disk)
            .map(|e| e.len)
            .sum()
    }

    /// The areas of disk `disk` written in generations `(lo, hi]`, as sorted, disjoint
    /// `(start, length)` byte ranges: overlapping and adjacent extents merged (what
    /// changed block tracking reports for that span; it never reports a write twice).
    pub fn areas_between(&self, disk: usize, lo: u64, hi: u64) -> Vec<(u64, u64)> {
        let from = self.extents.partition_point(|e| e.gen <= lo);
        let mut spans: Vec<(u64, u64)> = self.extents[from..]
            .iter()
            .take_while(|e| e.gen <= hi)
            .filter(|e| e.disk as usize == disk && e.len > 0)
            .map(|e| (e.offset, e.offset + e.len))
            .collect();
        spans.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(spans.len());
        for (start, end) in spans {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        merged.into_iter().map(|(s, e)| (s, e - s)).collect()
    }

    /// Heap bytes the log holds (for the memory bound).
    pub fn heap_bytes(&self) -> usize {
        self.extents.capacity() * std::mem::size_of::<Extent>()
            + self.sizes.capacity() * 8
            + self.disk_gen.capacity() * 8
    }
}

/// A set of write generations, as merged half-open ranges `(lo, hi]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage {
    ranges: Vec<(u64, u64)>,
}

impl Coverage {
    /// Adds generations `(lo, hi]`.
    pub fn add(&mut self, lo: u64, hi: u64) {
        if hi <= lo {
            return;
        }
        self.ranges.push((lo, hi));
        self.ranges.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(self.ranges.len());
        for &(l, h) in &self.ranges {
            match merged.last_mut() {
                Some(last) if l <= last.1 => last.1 = last.1.max(h),
                _ => merged.push((l, h)),
            }
        }
        self.ranges = merged;
    }

    pub fn holds(&self, gen: u64) -> bool {
        self.ranges.iter().any(|&(l, h)| gen > l && gen <= h)
    }

    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.ranges
    }
}

/// A cold (single-pass) copy under way or done: it holds what was written before it began.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColdCopy {
    pub started: f64,
    pub gen_at_start: u64,
    /// The source ran when the copy began.
    pub source_running: bool,
}

/// What the copy of one source disk holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CopyState {
    pub coverage: Coverage,
    /// A copy (cold, or a stage) finished since the DataVolume began.
    pub finished: bool,
    pub cold: Option<ColdCopy>,
    /// Stages of a multi-stage import finished.
    pub stages: u32,
}

/// Writes of a disk its copy lacks.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Missing {
    pub writes: u64,
    pub bytes: u64,
    pub first_at: f64,
    pub last_at: f64,
}

/// The extents of disk `disk` that `copy` does not hold.
pub fn missing(log: &WriteLog, disk: usize, copy: &Coverage) -> Missing {
    let mut m = Missing::default();
    for e in log.extents().iter().filter(|e| e.disk as usize == disk) {
        if copy.holds(e.gen) {
            continue;
        }
        if m.writes == 0 {
            m.first_at = e.at;
        }
        m.writes += 1;
        m.bytes += e.len;
        m.last_at = e.at;
    }
    m
}

/// `1.5 GiB`, `180 MiB`, `12 KiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (unit, size) in UNITS {
        if n >= size {
            let v = n as f64 / size as f64;
            return if v >= 10.0 || (v - v.round()).abs() < 0.05 {
                format!("{v:.0} {unit}")
            } else {
                format!("{v:.1} {unit}")
            };
        }
    }
    format!("{n} B")
}

/// The change-ID prefix of disk `disk` for changed-block-tracking epoch `epoch`: 16
/// deterministic bytes written as VMware does, `52 1f 3c 4d 5e 6f 70 81-92 a3 b4 c5 d6 e7 f8 09`.
pub fn change_id_prefix(seed: u64, disk: usize, epoch: u32) -> String {
    let a = crate::sim::fault::mix(seed ^ ((disk as u64) << 32) ^ u64::from(epoch));
    let b = crate::sim::fault::mix(a);
    let hex = |v: u64, first: Option<u8>| {
        v.to_be_bytes()
            .iter()
            .enumerate()
            .map(|(i, x)| format!("{:02x}", if i == 0 { first.unwrap_or(*x) } else { *x }))
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!("{}-{}", hex(a, Some(0x52)), hex(b, None))
}

/// A change ID: the prefix, `/`, the disk's write generation.
pub fn change_id(prefix: &str, gen: u64) -> String {
    format!("{prefix}/{gen}")
}

/// Whether CDI takes `s` for a change ID rather than a snapshot reference: hex pairs, `-`,
/// hex pairs, `/`, digits (`changeIDPattern` in containerized-data-importer
/// `pkg/importer/vddk-datasource_amd64.go`).
pub fn looks_like_change_id(s: &str) -> bool {
    parse_change_id(s).is_some()
}

/// `(prefix, generation)` of a change ID.
pub fn parse_change_id(s: &str) -> Option<(&str, u64)> {
    let (prefix, seq) = s.rsplit_once('/')?;
    let (left, right) = prefix.split_once('-')?;
    let hex_pairs = |p: &str| {
        let p: String = p.chars().filter(|c| !c.is_whitespace()).collect();
        !p.is_empty() && p.len().is_multiple_of(2) && p.chars().all(|c| c.is_ascii_hexdigit())
    };
    if !hex_pairs(left) || !hex_pairs(right) || seq.is_empty() {
        return None;
    }
    Some((prefix, seq.parse().ok()?))
}

/// One disk in the `/sim/v1/disks` report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DiskReport {
    pub index: usize,
    pub file: String,
    pub size: u64,
    /// Writes (extents) the source made to this disk, and their bytes.
    pub writes: u64,
    pub written_bytes: u64,
    /// `none` (never copied), `copying`, `copied`.
    pub copy: &'static str,
    /// Stages of a multi-stage import copied (0 for a cold import).
    pub stages: u32,
    /// Write generations the copy holds, as `(lo, hi]` ranges.
    pub holds: Vec<(u64, u64)>,
    pub missing_writes: u64,
    pub missing_bytes: u64,
    /// `consistent`, `inconsistent` or `unknown` for this disk alone.
    pub result: &'static str,
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(rate: u64) -> WriteLog {
        WriteLog::new(7, rate, vec![40 << 30], Some(0.0))
    }

    #[test]
    fn writes_are_chunks_of_running_and_a_last_partial_one_at_power_off() {
        let mut l = log(1 << 20);
        l.materialise(59.0);
        assert_eq!(l.gen(), 0);
        l.materialise(185.0);
        assert_eq!(l.gen(), 3);
        assert!(l.extents().iter().all(|e| e.len == 60 << 20));
        l.power_off(200.0);
        assert_eq!(l.gen(), 4);
        assert_eq!(l.extents()[3].len, 20 << 20);
        assert_eq!(l.extents()[3].at, 200.0);
        // Powered off: nothing more, however long.
        l.materialise(10_000.0);
        assert_eq!(l.gen(), 4);
        l.power_on(10_000.0);
        l.materialise(10_060.0);
        assert_eq!(l.gen(), 5);
        assert_eq!(l.bytes_between(0, 3, 5), (20 << 20) + (60 << 20));
        // Deterministic.
        let mut again = log(1 << 20);
        again.materialise(185.0);
        assert_eq!(&again.extents()[..3], &l.extents()[..3]);
    }

    #[test]
    fn a_run_unseen_for_longer_than_its_disks_take_to_write_is_one_whole_disk_write() {
        // 1 MiB/s to 1 GiB and 2 GiB disks: 3,072 s write 3 GiB.
        let mut l = WriteLog::new(7, 1 << 20, vec![1 << 30, 2 << 30], Some(0.0));
        l.materialise(86_400.0);
        assert_eq!(l.gen(), 2);
        assert_eq!(
            l.extents()
                .iter()
                .map(|e| (e.disk, e.offset, e.len, e.at))
                .collect::<Vec<_>>(),
            vec![(0, 0, 1 << 30, 86_400.0), (1, 0, 2 << 30, 86_400.0)]
        );
        // Looked at again a minute later: one chunk, as always.
        l.materialise(86_460.0);
        assert_eq!(l.gen(), 3);
        assert_eq!(l.extents()[2].len, 60 << 20);
        // A VM that writes nothing has no extent, however long.
        let mut idle = WriteLog::new(7, 0, vec![1 << 30], Some(0.0));
        idle.materialise(1e9);
        assert_eq!(idle.gen(), 0);
    }

    #[test]
    fn a_write_never_leaves_its_disk() {
        let mut l = WriteLog::new(3, 1 << 30, vec![1 << 20, 100 << 30], Some(0.0));
        l.materialise(3600.0);
        for e in l.extents() {
            let size = if e.disk == 0 { 1 << 20 } else { 100 << 30 };
            assert!(e.offset + e.len <= size, "{e:?}");
        }
    }

    /// 20 VMs with 200 GiB disks, each writing 10 MiB/s for eight hours: the logs stay a
    /// few MiB, not per-block state.
    #[test]
    fn twenty_vms_for_hours_fit_in_a_few_mib() {
        let mut total_extents = 0;
        let mut heap = 0;
        for vm in 0..20u64 {
            let mut l = WriteLog::new(vm, 10 << 20, vec![200 << 30, 200 << 30], Some(0.0));
            l.materialise(8.0 * 3600.0);
            total_extents += l.extents().len();
            heap += l.heap_bytes();
        }
        assert_eq!(total_extents, 20 * 8 * 60);
        assert!(heap < 4 << 20, "{heap} bytes");
    }

    #[test]
    fn areas_merge_overlapping_and_adjacent_writes_of_one_disk() {
        let mut l = WriteLog::new(5, 1 << 20, vec![1 << 30, 1 << 30], Some(0.0));
        l.materialise(3600.0);
        let all = l.areas_between(0, 0, l.gen());
        // Sorted, disjoint, not even touching.
        assert!(all.windows(2).all(|w| w[0].0 + w[0].1 < w[1].0), "{all:?}");
        // Every write of disk 0 lies inside one area; nothing of disk 1 counts.
        for e in l.extents().iter().filter(|e| e.disk == 0) {
            assert!(all
                .iter()
                .any(|&(s, n)| s <= e.offset && e.offset + e.len <= s + n));
        }
        let covered: u64 = all.iter().map(|a| a.1).sum();
        assert!(covered <= l.bytes_between(0, 0, l.gen()));
        assert!(covered > 0);
        // A span of generations: only those writes.
        let some = l.areas_between(0, 10, 20);
        let bytes: u64 = some.iter().map(|a| a.1).sum();
        assert!(bytes <= l.bytes_between(0, 10, 20));
        assert!(l.areas_between(0, 5, 5).is_empty());
        // Hand-made: overlap and adjacency merge, a gap does not.
        let mut m = WriteLog::new(1, 0, vec![1 << 20], None);
        for (gen, offset, len) in [
            (1, 0, 4096),
            (2, 4096, 4096),
            (3, 2048, 4096),
            (4, 65536, 4096),
        ] {
            m.extents.push(Extent {
                at: 0.0,
                gen,
                offset,
                len,
                disk: 0,
            });
        }
        assert_eq!(m.areas_between(0, 0, 4), vec![(0, 8192), (65536, 4096)]);
        assert_eq!(m.areas_between(0, 1, 3), vec![(2048, 6144)]);
    }

    #[test]
    fn coverage_merges_and_answers() {
        let mut c = Coverage::default();
        c.add(0, 5);
        c.add(7, 9);
        assert!(c.holds(5) && !c.holds(6) && c.holds(8) && !c.holds(0));
        c.add(5, 7);
        assert_eq!(c.ranges(), &[(0, 9)]);
        c.add(3, 3);
        assert_eq!(c.ranges(), &[(0, 9)]);
    }

    #[test]
    fn change_ids_look_like_vmware_and_parse_back() {
        let p = change_id_prefix(42, 0, 1);
        let id = change_id(&p, 17);
        assert!(id.starts_with("52 "), "{id}");
        assert_eq!(
            id.len(),
            "52 de c0 d9 b9 43 9d 10-61 d5 4c 1b e9 7b 65 63/17".len()
        );
        assert_eq!(parse_change_id(&id), Some((p.as_str(), 17)));
        assert!(looks_like_change_id(
            "52 de c0 d9 b9 43 9d 10-61 d5 4c 1b e9 7b 65 63/81"
        ));
        assert!(!looks_like_change_id("snapshot-42"));
        assert!(!looks_like_change_id(""));
        assert_ne!(change_id_prefix(42, 1, 1), p, "another disk");
        assert_ne!(change_id_prefix(42, 0, 2), p, "CBT turned on again");
    }

    #[test]
    fn missing_names_what_and_when() {
        let mut l = log(1 << 20);
        l.materialise(300.0);
        l.power_off(330.0);
        let mut c = Coverage::default();
        c.add(0, 3);
        let m = missing(&l, 0, &c);
        assert_eq!(m.writes, 3);
        assert_eq!(m.bytes, (60 << 20) * 2 + (30 << 20));
        assert_eq!((m.first_at, m.last_at), (240.0, 330.0));
        assert_eq!(human_bytes(150 << 20), "150 MiB");
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
    }
}

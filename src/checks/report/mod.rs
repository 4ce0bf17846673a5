//! Verify reports: Markdown for people ([`markdown`]), JSON for tools ([`json`]), JUnit XML
//! for CI systems ([`junit`]).

pub mod json;
pub mod junit;
pub mod markdown;

use super::baseline::{DiffStatus, Diffed};
use super::result::Outcome;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::str::FromStr;

/// What every report renders.
#[derive(Debug, Clone, Copy)]
pub struct Report<'a> {
    pub plan: &'a str,
    /// RFC 3339 time the report was made.
    pub generated_at: &'a str,
    /// When the baseline compared against was taken; `None` without a baseline.
    pub baseline_taken_at: Option<&'a str>,
    /// Results with their comparison, in plan order (wave, VM, check).
    pub diffs: &'a [Diffed],
    /// Each VM's cutover as the engine recorded it on the VirtualMachine, in plan order.
    pub cutovers: &'a [CutoverRecord],
}

/// A VM's cutover, recorded by the engine on its VirtualMachine (annotation
/// [`ANN_CUTOVER`], this as JSON) when its checks first passed after the boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct CutoverRecord {
    #[serde(default)]
    pub vm: String,
    /// `cold` or `warm`.
    pub migration: String,
    /// From the power-off request to every check passing (the window clock's ms).
    pub downtime_ms: u64,
    #[serde(default)]
    pub precopy_rounds: u32,
    /// The guest shut down cleanly before the final copy (`false`: a hard stop).
    #[serde(default = "yes")]
    pub consistent_copy: bool,
    /// The import backend when it is not wavelift's own CDI path (`forklift`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// The backend's own steps, as it reported them when the VM was verified (Forklift's
    /// `Plan.status.migration.vms[].pipeline[]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backend_steps: Vec<BackendStep>,
}

/// One step of an import backend's pipeline (Forklift: `Initialize`, `DiskTransferV2v`,
/// `ImageConversion`, `VirtualMachineCreation`, …) with its phase and times as reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct BackendStep {
    pub name: String,
    /// `Pending`, `Running`, `Completed`, … (empty when not reported).
    #[serde(default)]
    pub phase: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed: Option<String>,
}

impl BackendStep {
    /// `DiskTransferV2v Completed 2026-12-06T01:02:03Z–2026-12-06T01:09:44Z`.
    pub fn summary(&self) -> String {
        let mut s = self.name.clone();
        if !self.phase.is_empty() {
            s.push(' ');
            s.push_str(&self.phase);
        }
        match (&self.started, &self.completed) {
            (Some(a), Some(b)) => s.push_str(&format!(" {a}–{b}")),
            (Some(a), None) => s.push_str(&format!(" since {a}")),
            _ => {}
        }
        s
    }
}

fn yes() -> bool {
    true
}

/// The VirtualMachine annotation holding its [`CutoverRecord`].
pub const ANN_CUTOVER: &str = "wavelift.io/cutover";

/// Median and maximum downtime of `cutovers`, in ms.
pub fn downtime_stats(cutovers: &[CutoverRecord]) -> Option<(u64, u64)> {
    let mut v: Vec<u64> = cutovers.iter().map(|c| c.downtime_ms).collect();
    v.sort_unstable();
    let max = *v.last()?;
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2
    };
    Some((median, max))
}

/// Counts over a set of results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub vms: usize,
    pub checks: usize,
    pub pass: usize,
    pub fail: usize,
    pub error: usize,
    pub skipped: usize,
    pub regressions: usize,
    pub still_failing: usize,
    pub new: usize,
    pub fixed: usize,
}

impl Summary {
    pub fn of<'a>(diffs: impl IntoIterator<Item = &'a Diffed>) -> Summary {
        let mut s = Summary::default();
        let mut vms: HashSet<&str> = HashSet::new();
        for d in diffs {
            vms.insert(&d.result.vm);
            s.checks += 1;
            match d.result.outcome {
                Outcome::Pass => s.pass += 1,
                Outcome::Fail => s.fail += 1,
                Outcome::Error => s.error += 1,
                Outcome::Skipped => s.skipped += 1,
            }
            match d.status {
                DiffStatus::Regression => s.regressions += 1,
                DiffStatus::StillFailing => s.still_failing += 1,
                DiffStatus::New if d.result.outcome.is_failure() => s.new += 1,
                DiffStatus::Fixed => s.fixed += 1,
                _ => {}
            }
        }
        s.vms = vms.len();
        s
    }

    /// No check failed or errored.
    pub fn passed(&self) -> bool {
        self.fail == 0 && self.error == 0
    }
}

/// Report formats of `--report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Markdown,
    Json,
    Junit,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "md" | "markdown" => Ok(Format::Markdown),
            "json" => Ok(Format::Json),
            "junit" | "xml" => Ok(Format::Junit),
            other => Err(format!(
                "unknown report format `{other}`: use md, json or junit"
            )),
        }
    }
}

impl Format {
    /// The usual file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Markdown => "md",
            Format::Json => "json",
            Format::Junit => "xml",
        }
    }
}

/// Renders `report` in `format`.
pub fn render(format: Format, report: &Report<'_>) -> String {
    match format {
        Format::Markdown => markdown::render(report),
        Format::Json => json::render(report),
        Format::Junit => junit::render(report),
    }
}

/// One VM's diffs.
pub(crate) type VmGroup<'a> = (&'a str, Vec<&'a Diffed>);
/// One wave's VMs.
pub(crate) type WaveGroup<'a> = (&'a str, Vec<VmGroup<'a>>);

/// Groups diffs by wave then VM, keeping first-seen order: `[(wave, [(vm, [diff])])]`.
pub(crate) fn group(diffs: &[Diffed]) -> Vec<WaveGroup<'_>> {
    let mut out: Vec<WaveGroup<'_>> = Vec::new();
    let mut waves: HashMap<&str, usize> = HashMap::new();
    let mut vms: HashMap<(&str, &str), usize> = HashMap::new();
    for d in diffs {
        let wave = d.result.wave.as_str();
        let wi = *waves.entry(wave).or_insert_with(|| {
            out.push((wave, Vec::new()));
            out.len() - 1
        });
        let list = &mut out[wi].1;
        let vi = *vms.entry((wave, d.result.vm.as_str())).or_insert_with(|| {
            list.push((&d.result.vm, Vec::new()));
            list.len() - 1
        });
        list[vi].1.push(d);
    }
    out
}

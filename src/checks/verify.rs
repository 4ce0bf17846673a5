//! `wavelift verify`: run every check of a plan, compare with a baseline, produce reports.
//!
//! ```no_run
//! # use std::path::Path;
//! # use wavelift::checks::{baseline::Baseline, probe::RealProber, report::Format};
//! # use wavelift::checks::{runner::Observations, verify};
//! # async fn example(plan: &wavelift::plan::Plan, path: &Path, out_path: &Path) -> anyhow::Result<()> {
//! let prober = RealProber::new();               // or SimProber::new("http://127.0.0.1:PORT")
//! let obs = Observations::new();                 // VMI status.interfaces by VM name
//! let baseline = Baseline::load(path)?;          // --baseline FILE
//! let out = verify::run(plan, &prober, &obs, Some(&baseline)).await;
//! out.baseline().save(path)?;                    // --baseline-out FILE
//! std::fs::write(out_path, out.render(Format::Junit))?;
//! std::process::exit(out.exit_code.into());
//! # }
//! ```

use super::baseline::{self, Baseline, Diffed};
use super::probe::Prober;
use super::report::{self, Format, Report, Summary};
use super::result::{now_rfc3339, CheckResult};
use super::runner::{self, Observations, RunSettings};
use crate::plan::Plan;

/// Everything a verify run produced.
#[derive(Debug, Clone)]
pub struct VerifyOutcome {
    pub plan: String,
    /// When the run finished (RFC 3339 UTC).
    pub finished_at: String,
    /// Results in plan order (wave, VM, check).
    pub results: Vec<CheckResult>,
    /// Results compared with the baseline (or classified alone without one).
    pub diffs: Vec<Diffed>,
    pub baseline_taken_at: Option<String>,
    /// 0 all pass or skipped, 1 failures, 2 regressions (see [`baseline::exit_code`]).
    pub exit_code: u8,
    /// The VMs' cutovers as the engine recorded them (filled by the caller, which reads
    /// the VirtualMachines).
    pub cutovers: Vec<report::CutoverRecord>,
}

impl VerifyOutcome {
    /// These results as a baseline (for `--baseline-out`).
    pub fn baseline(&self) -> Baseline {
        Baseline {
            taken_at: self.finished_at.clone(),
            ..Baseline::new(self.plan.clone(), self.results.clone())
        }
    }

    pub fn report(&self) -> Report<'_> {
        Report {
            plan: &self.plan,
            generated_at: &self.finished_at,
            baseline_taken_at: self.baseline_taken_at.as_deref(),
            diffs: &self.diffs,
            cutovers: &self.cutovers,
        }
    }

    /// The report in `format`.
    pub fn render(&self, format: Format) -> String {
        report::render(format, &self.report())
    }

    pub fn summary(&self) -> Summary {
        Summary::of(&self.diffs)
    }
}

/// Runs every check of `plan` with the plan's timeouts, retries and resolver.
pub async fn run(
    plan: &Plan,
    prober: &dyn Prober,
    observations: &Observations,
    baseline: Option<&Baseline>,
) -> VerifyOutcome {
    run_with(
        plan,
        prober,
        observations,
        baseline,
        &RunSettings::from_plan(plan),
    )
    .await
}

/// [`run`] with explicit settings (concurrency, timeouts).
pub async fn run_with(
    plan: &Plan,
    prober: &dyn Prober,
    observations: &Observations,
    baseline: Option<&Baseline>,
    settings: &RunSettings,
) -> VerifyOutcome {
    let results = runner::run_plan(plan, prober, observations, settings).await;
    let diffs = baseline::diff(baseline, &results);
    VerifyOutcome {
        plan: plan.meta.name.value.clone(),
        finished_at: now_rfc3339(),
        exit_code: baseline::exit_code(&diffs),
        results,
        diffs,
        baseline_taken_at: baseline.map(|b| b.taken_at.clone()),
        cutovers: Vec::new(),
    }
}

//! `wavelift verify`: every check of every VM against where the VMs are now, compared with a
//! baseline taken before cutover; reports for people (Markdown), tools (JSON) and CI (JUnit).

use super::target::connect_or_exit;
use super::{VerifyArgs, EXIT_INVALID};
use crate::checks::baseline::Baseline;
use crate::checks::report::{CutoverRecord, Format, ANN_CUTOVER};
use crate::checks::runner::Observations;
use crate::checks::verify;
use crate::cluster::labels;
use crate::cluster::resources::{VirtualMachine, VirtualMachineInstance};
use kube::api::{Api, ListParams};
use std::process::ExitCode;

pub fn run(args: VerifyArgs) -> ExitCode {
    let (plan, _file) = match super::load_valid_plan(&args.plan) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let format = match args.report.as_deref().map(str::parse::<Format>) {
        None => None,
        Some(Ok(f)) => Some(f),
        Some(Err(e)) => {
            eprintln!("error: --report: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let baseline = match &args.baseline {
        None => None,
        Some(p) => match Baseline::load(p) {
            Ok(b) => Some(b),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_INVALID);
            }
        },
    };
    let rt = match super::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async move {
        let conn = match connect_or_exit(&plan, args.target.sim, args.target.context.as_deref(), false, &Default::default()).await {
        Ok(c) => c,
        Err(code) => return code,
    };
        // What the cluster shows: each migrated VM's VMI (ip-preserved / mac-preserved).
        let api: Api<VirtualMachineInstance> = Api::namespaced(conn.client.clone(), plan.meta.namespace.as_str());
        let lp = ListParams::default().labels(&labels::plan_selector(plan.meta.name.as_str()));
        let vmis: Vec<serde_json::Value> = match api.list(&lp).await {
            Ok(l) => l.items.iter().filter_map(|v| serde_json::to_value(v).ok()).collect(),
            Err(e) => {
                eprintln!("warning: cannot list VirtualMachineInstances ({e}); ip-preserved and mac-preserved are skipped");
                Vec::new()
            }
        };
        let obs = Observations::from_vmis(vmis.iter());
        let mut out = verify::run(&plan, conn.prober.as_ref(), &obs, baseline.as_ref()).await;
        out.cutovers = cutovers(&conn.client, &plan).await;
        if let Some(p) = &args.baseline_out {
            if let Err(e) = out.baseline().save(p) {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_INVALID);
            }
            println!("baseline written to {}", p.display());
        }
        match (format, &args.out) {
            (Some(f), Some(path)) => {
                if let Err(e) = std::fs::write(path, out.render(f)) {
                    eprintln!("error: {}: {e}", path.display());
                    return ExitCode::from(EXIT_INVALID);
                }
                println!("{} report written to {}", args.report.as_deref().unwrap_or(""), path.display());
            }
            (Some(f), None) => print!("{}", out.render(f)),
            (None, _) => {}
        }
        let s = out.summary();
        // Per VM: verified when every check passed or was skipped.
        for vm in &plan.vms {
            let mine: Vec<_> = out.results.iter().filter(|r| r.vm == *vm.name).collect();
            let bad: Vec<String> = mine.iter().filter(|r| r.outcome.is_failure()).map(|r| format!("{} {}", r.check, r.outcome)).collect();
            let pass = mine.iter().filter(|r| r.outcome == crate::checks::result::Outcome::Pass).count();
            let skipped = mine.len() - pass - bad.len();
            if bad.is_empty() && pass > 0 {
                let skipped = if skipped > 0 { format!(", {skipped} skipped") } else { String::new() };
                println!("{:<24} verified: {pass} pass{skipped}", vm.name.value);
            } else if bad.is_empty() {
                println!("{:<24} not verified: every check was skipped", vm.name.value);
            } else {
                println!("{:<24} NOT verified: {}", vm.name.value, bad.join(", "));
            }
        }
        println!(
            "{} VMs, {} checks: {} pass, {} fail, {} error, {} skipped; {} regressions",
            s.vms, s.checks, s.pass, s.fail, s.error, s.skipped, s.regressions
        );
        ExitCode::from(out.exit_code)
    })
}

/// Each VM's cutover as the engine recorded it on its VirtualMachine, in plan order (VMs
/// without a record, or that cannot be read, are left out).
async fn cutovers(client: &kube::Client, plan: &crate::plan::Plan) -> Vec<CutoverRecord> {
    let api: Api<VirtualMachine> = Api::namespaced(client.clone(), plan.meta.namespace.as_str());
    let lp = ListParams::default().labels(&labels::plan_selector(plan.meta.name.as_str()));
    let Ok(list) = api.list(&lp).await else {
        return Vec::new();
    };
    plan.vms
        .iter()
        .filter_map(|vm| {
            let obj = list
                .items
                .iter()
                .find(|o| o.metadata.name.as_deref() == Some(vm.name.as_str()))?;
            let text = obj.metadata.annotations.as_ref()?.get(ANN_CUTOVER)?;
            let mut r: CutoverRecord = serde_json::from_str(text).ok()?;
            r.vm = vm.name.value.clone();
            Some(r)
        })
        .collect()
}

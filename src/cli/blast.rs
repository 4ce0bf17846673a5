//! `wavelift blast` and `wavelift plan init`: inventory in, plan skeleton or blast-radius
//! report out.

use super::{BlastArgs, EXIT_INVALID, EXIT_OK};
use crate::blast::{self, BlastOptions, Format};
use crate::inventory;
use std::path::Path;
use std::process::ExitCode;

pub fn blast(args: BlastArgs) -> ExitCode {
    let format: Format = match args.format.parse() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: --format: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    if let Some(missing) = args.sources.iter().find(|p| !p.exists()) {
        eprintln!(
            "error: --sources {}: no such file or directory",
            missing.display()
        );
        return ExitCode::from(EXIT_INVALID);
    }
    let opts = BlastOptions {
        plan: args.plan,
        rvtools: args.rvtools,
        sources: args.sources,
        owners: args.owners,
        vm: args.vm.clone(),
        l3_max_refs: args.l3_max_refs,
        ..BlastOptions::default()
    };
    match blast::run_blast(&opts) {
        Ok(report) => {
            let text = blast::render(&report, format, args.vm.as_deref());
            match &args.out {
                Some(p) => {
                    if let Err(e) = std::fs::write(p, text) {
                        eprintln!("error: {}: {e}", p.display());
                        return ExitCode::from(EXIT_INVALID);
                    }
                    eprintln!("blast report written to {}", p.display());
                }
                None => print!("{text}"),
            }
            ExitCode::from(EXIT_OK)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_INVALID)
        }
    }
}

pub fn plan_init(rvtools: &Path, vlan_map: Option<&Path>, out: &Path, force: bool) -> ExitCode {
    if out.exists() && !force {
        eprintln!(
            "error: {} exists; pass --force to overwrite it",
            out.display()
        );
        return ExitCode::from(EXIT_INVALID);
    }
    match inventory::plan_init(rvtools, vlan_map) {
        Ok(o) => {
            if let Err(e) = std::fs::write(out, &o.toml) {
                eprintln!("error: {}: {e}", out.display());
                return ExitCode::from(EXIT_INVALID);
            }
            for w in &o.warnings {
                eprintln!("warning: {w}");
            }
            let checked = crate::plan::check_str(&o.toml, &out.display().to_string());
            let summary = checked.summary.map(|s| s.to_string()).unwrap_or_default();
            println!("wrote {}: {summary}", out.display());
            println!(
                "next: edit the TODOs (thumbprint, waves, checks), then `wavelift plan check {}`",
                out.display()
            );
            ExitCode::from(EXIT_OK)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_INVALID)
        }
    }
}

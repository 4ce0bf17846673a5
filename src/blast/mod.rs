//! Blast-radius analysis: every reference to a VM's IP and name, and who owns it.
//!
//! `wavelift blast (--plan PLAN | --rvtools FILE) --sources DIR… [--vm NAME] [--format …]`
//! walks the sources, recognises each file (DNS zone, firewall export, Prometheus, HAProxy,
//! nginx, or plain text/documents), finds every place that names each VM (address, host
//! name, or a CIDR/range containing its address), attaches an owner, classifies each VM
//! (L2-safe, L3-candidate, risk flags) and renders a report.
//!
//! ```no_run
//! use wavelift::blast::{run_blast, render, BlastOptions, Format};
//! let opts = BlastOptions {
//!     plan: Some("plans/quickstart.toml".into()),
//!     sources: vec!["exports/".into()],
//!     ..BlastOptions::default()
//! };
//! let report = run_blast(&opts).unwrap();
//! print!("{}", render(&report, Format::Md, None));
//! ```
//!
//! Modules: [`matcher`] (literal/range search and boundaries), [`zone`], [`firewall`],
//! [`prometheus`], [`lb`], [`tree`] (walk, detection, documents/compliance rule), [`owners`]
//! (owners file format and precedence), [`classify`] (rules), [`report`] (JSON schema).

pub(crate) mod classify;
pub(crate) mod firewall;
pub(crate) mod lb;
pub mod matcher;
pub(crate) mod model;
pub(crate) mod owners;
pub(crate) mod prometheus;
pub(crate) mod report;
pub mod targets;
pub mod tree;
pub(crate) mod zone;

pub use classify::{Flag, Recommendation, Summary, VmRadius};
pub use model::{Coverage, Owner, OwnerSource, RefKind, Reference};
pub use report::{render, BlastReport, Format};

use matcher::Matcher;
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

/// What to scan and how.
#[derive(Debug, Clone)]
pub struct BlastOptions {
    /// A wave plan (`--plan`); its VMs, IPs, networks and owners are the targets.
    pub plan: Option<PathBuf>,
    /// Or an inventory (`--rvtools`: xlsx, CSV tab directory, or govc JSON).
    pub rvtools: Option<PathBuf>,
    /// Directories (or files) to scan (`--sources`).
    pub sources: Vec<PathBuf>,
    /// An owners file; by default `OWNERS` at the root of a sources directory is used.
    pub owners: Option<PathBuf>,
    /// Restrict the report to one VM (`--vm`); the scan still sees every VM (shared IPs).
    pub vm: Option<String>,
    /// L3-candidate threshold: at most this many references by address (default 3).
    pub l3_max_refs: usize,
    /// CIDRs and ranges wider than this prefix are not references (default 8).
    pub min_prefix: u8,
    /// Scanner threads (default: available cores).
    pub threads: usize,
}

impl Default for BlastOptions {
    fn default() -> Self {
        BlastOptions {
            plan: None,
            rvtools: None,
            sources: Vec::new(),
            owners: None,
            vm: None,
            l3_max_refs: 3,
            min_prefix: 8,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// Reads the targets (plan or inventory) named by the options.
pub fn load_targets(
    opts: &BlastOptions,
) -> anyhow::Result<(Vec<targets::Target>, String, Vec<String>)> {
    match (&opts.plan, &opts.rvtools) {
        (Some(p), None) => {
            let checked = crate::plan::check_file(p)?;
            let Some(plan) = checked.plan else {
                anyhow::bail!(
                    "{}: the plan has {} error(s); run `wavelift plan check {}`",
                    p.display(),
                    checked.errors(),
                    p.display()
                );
            };
            Ok((
                targets::from_plan(&plan),
                p.display().to_string(),
                Vec::new(),
            ))
        }
        (None, Some(r)) => {
            let inv = crate::inventory::load(r)?;
            Ok((
                targets::from_inventory(&inv),
                r.display().to_string(),
                inv.warnings.clone(),
            ))
        }
        _ => anyhow::bail!("give exactly one of --plan PLAN or --rvtools FILE"),
    }
}

/// Runs a blast-radius scan.
pub fn run_blast(opts: &BlastOptions) -> anyhow::Result<BlastReport> {
    let (targets, input, mut warnings) = load_targets(opts)?;
    if let Some(vm) = &opts.vm {
        if !targets.iter().any(|t| &t.name == vm) {
            anyhow::bail!("VM `{vm}` is not in {input}");
        }
    }
    if opts.sources.is_empty() {
        anyhow::bail!("no --sources given");
    }
    for root in &opts.sources {
        let meta = std::fs::metadata(root)
            .map_err(|e| anyhow::anyhow!("--sources {}: {e}", root.display()))?;
        if !meta.is_dir() && !meta.is_file() {
            anyhow::bail!(
                "--sources {}: not a directory or a regular file; refused",
                root.display()
            );
        }
    }
    let mut m = Matcher::new(targets);
    m.min_prefix = opts.min_prefix;

    // Owners file: explicit, else OWNERS at a sources root.
    let mut owner_files = Vec::new();
    let owners_path = opts.owners.clone().or_else(|| {
        opts.sources.iter().find_map(|d| {
            tree::OWNERS_NAMES
                .iter()
                .map(|n| d.join(n))
                .find(|p| p.is_file())
        })
    });
    if let Some(p) = &owners_path {
        let text = crate::fsio::read_bounded_string(p, crate::fsio::OWNERS_MAX, "the owners file")?;
        owner_files.push(owners::OwnersFile::parse(
            &text,
            &p.display().to_string(),
            &mut warnings,
        ));
    }
    let owners_file = owner_files.pop().unwrap_or_default();

    let files = tree::walk(&opts.sources, &mut warnings);
    let ctx = tree::ScanContext::new(&opts.sources);
    let scans = tree::scan_all(&files, &m, opts.threads, &ctx);
    if let Some(fatal) = scans.iter().find_map(|s| s.fatal.as_ref()) {
        anyhow::bail!("{fatal}");
    }

    // Zone records across files; a file pulled in by $INCLUDE is read only through it.
    let mut included: BTreeSet<String> = BTreeSet::new();
    for (f, s) in files.iter().zip(&scans) {
        let me = f.path.display().to_string();
        included.extend(
            s.zone
                .iter()
                .filter(|r| *r.file != *me)
                .map(|r| r.file.to_string()),
        );
    }
    let mut records = Vec::new();
    for (f, s) in files.iter().zip(&scans) {
        if !included.contains(&f.path.display().to_string()) {
            records.extend(s.zone.iter().cloned());
        }
    }
    let mut zone_hits: HashMap<String, Vec<model::Hit>> = HashMap::new();
    for (file, h) in zone::hits(&records, &m) {
        zone_hits.entry(file).or_default().push(h);
    }

    let mut binary = 0usize;
    let mut bytes = 0u64;
    let mut refs_by_vm: HashMap<String, Vec<Reference>> = HashMap::new();
    let rel_of: HashMap<String, &str> = files
        .iter()
        .map(|f| (f.path.display().to_string(), f.rel.as_str()))
        .collect();
    for (f, s) in files.iter().zip(scans) {
        warnings.extend(s.warnings);
        bytes += s.bytes;
        if s.binary {
            binary += 1;
            continue;
        }
        let display = f.path.display().to_string();
        let mut hits = zone_hits.remove(&display).unwrap_or_default();
        hits.extend(s.hits);
        emit(
            &display,
            &f.rel,
            tree::dedup(hits),
            &m,
            &owners_file,
            &mut refs_by_vm,
        );
    }
    // Zone hits in included files that were not walked (outside the sources).
    for (file, hits) in zone_hits {
        let rel = rel_of
            .get(&file)
            .copied()
            .unwrap_or(file.as_str())
            .to_string();
        emit(
            &file,
            &rel,
            tree::dedup(hits),
            &m,
            &owners_file,
            &mut refs_by_vm,
        );
    }

    let rel_for_compliance: HashMap<String, String> = files
        .iter()
        .map(|f| (f.path.display().to_string(), f.rel.clone()))
        .collect();
    let compliance = |file: &str| {
        let rel = rel_for_compliance.get(file).map_or(file, String::as_str);
        tree::is_compliance(rel)
    };
    let vms = classify::classify(&m.targets, &mut refs_by_vm, &compliance, opts.l3_max_refs);
    let mut summary = classify::summarize(&vms);
    summary.files_scanned = files.len() - binary;
    summary.binary_skipped = binary;
    summary.bytes_scanned = bytes;
    Ok(BlastReport {
        schema: report::SCHEMA.to_string(),
        input,
        sources: opts
            .sources
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        owners_file: owners_path.map(|p| p.display().to_string()),
        l3_max_refs: opts.l3_max_refs,
        summary,
        vms,
        warnings,
    })
}

fn emit(
    file: &str,
    rel: &str,
    hits: Vec<model::Hit>,
    m: &Matcher,
    owners_file: &owners::OwnersFile,
    out: &mut HashMap<String, Vec<Reference>>,
) {
    for h in hits {
        let Some(t) = m.targets.get(h.target) else {
            continue;
        };
        let owner = h
            .owner
            .or_else(|| owners_file.owner_for(rel, &t.name, &t.ips))
            .or_else(|| t.owner.clone());
        out.entry(t.name.clone()).or_default().push(Reference {
            vm: t.name.clone(),
            matched: h.matched,
            file: file.to_string(),
            line: h.line,
            kind: h.kind,
            text: h.text,
            context: h.context,
            coverage: h.coverage,
            owner,
        });
    }
}

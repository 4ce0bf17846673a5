//! `wavelift policy draft (--plan PLAN | --rvtools FILE) --sources DIR… [--vm NAME…]
//! [--out DIR] [--mnp-version v1beta1|v1beta2]`: per-VM policies from the firewall rules
//! that protect each VM today ([`crate::policy::draft`]).
//!
//! - The VMs come from the plan (checked first: errors with file:line:column, exit 2) or
//!   from an inventory (as `wavelift blast --rvtools` reads it). `--vm` keeps only the named
//!   VMs; a name that is not there is exit 2.
//! - L2 VMs get a MultiNetworkPolicy for their networks' NADs (named like the network, in the
//!   plan namespace), L3 VMs a NetworkPolicy. With `--rvtools` every VM is L2, on the NAD
//!   named after its port group (`k8s_name`), in namespace `mig-<inventory file stem>`, plan
//!   label `<inventory file stem>` (what `wavelift plan init` would write).
//! - Probe sources: the networks' `probe_ip`s when the plan checks from the cluster, else the
//!   plan's `probe_sources`; none with `--rvtools`.
//! - Without `--out` every policy goes to stdout (YAML documents separated by `---`); with
//!   it, `DIR/<vm>.yaml` each, written atomically (a temporary file renamed over it).
//!   Warnings go to stderr, each prefixed with its VM, then a summary line. Exit 0 when
//!   policies were drafted (warnings or not), 2 on invalid input (sources holding no
//!   firewall export included, naming them).

use super::{PolicyDraftArgs, EXIT_INVALID, EXIT_OK};
use crate::blast::{self, BlastOptions};
use crate::cluster::labels;
use crate::policy::draft::{self, sources, DraftOptions, ProbeSource, VmInput, VmNetwork};
use crate::policy::k8s::MnpVersion;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

fn selector(plan: &str, vm: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::PLAN.to_string(), plan.to_string()),
        (labels::VM.to_string(), vm.to_string()),
    ])
}

/// The VMs of a valid plan, as draft inputs.
pub(crate) fn inputs_from_plan(plan: &crate::plan::Plan) -> Vec<VmInput> {
    use crate::plan::{ChecksFrom, NetworkModel};
    let ns = plan.meta.namespace.value.clone();
    let pname = plan.meta.name.value.clone();
    plan.vms
        .iter()
        .map(|vm| {
            let mut nets: Vec<String> = Vec::new();
            for n in &vm.nics {
                if !nets.contains(&n.network.value) {
                    nets.push(n.network.value.clone());
                }
            }
            let network = match plan.model_of(vm) {
                NetworkModel::L2 => {
                    VmNetwork::Attachments(nets.iter().map(|n| format!("{ns}/{n}")).collect())
                }
                NetworkModel::L3 => VmNetwork::Pod,
            };
            let probes = if plan.meta.checks_from.value == ChecksFrom::Cluster {
                nets.iter()
                    .filter_map(|n| {
                        let ip = plan.network(n)?.probe_ip.as_ref()?.value;
                        Some(ProbeSource {
                            cidr: ip.into(),
                            why: format!("probe_ip of network {n}"),
                        })
                    })
                    .collect()
            } else {
                plan.meta
                    .probe_sources
                    .iter()
                    .map(|c| ProbeSource {
                        cidr: c.value,
                        why: "probe_sources".into(),
                    })
                    .collect()
            };
            VmInput {
                name: vm.name.value.clone(),
                namespace: ns.clone(),
                labels: labels::for_vm(&pname, &vm.wave.value, &vm.name.value),
                pod_selector: selector(&pname, &vm.name.value),
                ips: vm
                    .nics
                    .iter()
                    .filter_map(|n| n.ip.as_ref().map(|i| i.value))
                    .collect(),
                network,
                probes,
            }
        })
        .collect()
}

/// An inventory's VMs (blast's targets), as draft inputs: L2 on the NADs named after their
/// port groups.
pub(crate) fn inputs_from_inventory(
    targets: &[blast::targets::Target],
    plan: &str,
) -> Vec<VmInput> {
    let k8s = crate::inventory::skeleton::k8s_name;
    let ns = k8s(&format!("mig-{plan}"));
    targets
        .iter()
        .map(|t| {
            let mut nads: Vec<String> = Vec::new();
            for (n, _) in &t.networks {
                let nad = format!("{ns}/{}", k8s(n));
                if !nads.contains(&nad) {
                    nads.push(nad);
                }
            }
            let network = if nads.is_empty() {
                VmNetwork::Pod
            } else {
                VmNetwork::Attachments(nads)
            };
            VmInput {
                name: t.name.clone(),
                namespace: ns.clone(),
                labels: BTreeMap::from([
                    (labels::PLAN.to_string(), plan.to_string()),
                    (labels::VM.to_string(), t.name.clone()),
                    (labels::MANAGED_BY.to_string(), labels::MANAGER.to_string()),
                ]),
                pod_selector: selector(plan, &t.name),
                ips: t.ips.clone(),
                network,
                probes: Vec::new(),
            }
        })
        .collect()
}

fn load(args: &PolicyDraftArgs) -> Result<Vec<VmInput>, ExitCode> {
    match (&args.plan, &args.rvtools) {
        (Some(p), None) => {
            let checked = crate::plan::check_file(p).map_err(|e| {
                eprintln!("error: {e}");
                ExitCode::from(EXIT_INVALID)
            })?;
            match &checked.plan {
                Some(plan) => Ok(inputs_from_plan(plan)),
                None => {
                    for d in checked
                        .located()
                        .iter()
                        .filter(|d| d.severity == crate::plan::Severity::Error)
                    {
                        eprint!("{}", d.render_text());
                    }
                    eprintln!("{}: invalid plan: no policy drafted", checked.file);
                    Err(ExitCode::from(EXIT_INVALID))
                }
            }
        }
        (None, Some(r)) => {
            let opts = BlastOptions {
                rvtools: Some(r.clone()),
                ..BlastOptions::default()
            };
            let (targets, _, warnings) = blast::load_targets(&opts).map_err(|e| {
                eprintln!("error: {e:#}");
                ExitCode::from(EXIT_INVALID)
            })?;
            for w in warnings {
                eprintln!("warning: {w}");
            }
            let stem = r
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "inventory".into());
            let plan = crate::inventory::skeleton::k8s_name(&stem);
            Ok(inputs_from_inventory(&targets, &plan))
        }
        _ => {
            eprintln!("error: give exactly one of --plan PLAN or --rvtools FILE");
            Err(ExitCode::from(EXIT_INVALID))
        }
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory, renamed over it.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let r = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

pub fn run(args: PolicyDraftArgs) -> ExitCode {
    let mnp_version = match args.mnp_version.as_str() {
        "v1beta1" => MnpVersion::V1beta1,
        "v1beta2" => MnpVersion::V1beta2,
        other => {
            eprintln!("error: --mnp-version {other}: expected v1beta1 or v1beta2");
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
    let mut vms = match load(&args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    if !args.vm.is_empty() {
        let unknown: Vec<&String> = args
            .vm
            .iter()
            .filter(|n| !vms.iter().any(|v| &v.name == *n))
            .collect();
        if !unknown.is_empty() {
            let input = args
                .plan
                .as_ref()
                .or(args.rvtools.as_ref())
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            for n in unknown {
                eprintln!("error: --vm {n}: no VM named `{n}` in {input}");
            }
            return ExitCode::from(EXIT_INVALID);
        }
        vms.retain(|v| args.vm.contains(&v.name));
    }
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let exports = sources::read_exports(&args.sources, threads);
    let mut warnings = 0usize;
    for w in &exports.warnings {
        eprintln!("warning: {w}");
        warnings += 1;
    }
    if exports.sets.is_empty() {
        // As `run` refuses `policy_sources` without an export: a draft from nothing would
        // be a default deny that no firewall wrote.
        eprintln!(
            "error: --sources {}: no firewall export among the {} file(s) read (formats: \
             iptables-save, nft -j, aws ec2 describe-security-groups, the neutral firewall \
             CSV, Cisco ASA, PAN-OS XML); no policy drafted",
            args.sources
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" "),
            exports.files
        );
        return ExitCode::from(EXIT_INVALID);
    }
    for s in &exports.sets {
        for w in &s.warnings {
            eprintln!("warning: {w}");
            warnings += 1;
        }
    }
    let opts = DraftOptions { mnp_version };
    let drafts = draft::draft_all(&vms, &exports.sets, &opts, threads);
    if let Some(dir) = &args.out {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("error: --out {}: {e}", dir.display());
            return ExitCode::from(EXIT_INVALID);
        }
        for d in &drafts {
            let p = dir.join(format!("{}.yaml", d.vm));
            if let Err(e) = write_atomic(&p, d.yaml.as_bytes()) {
                eprintln!("error: {}: {e}", p.display());
                return ExitCode::from(EXIT_INVALID);
            }
        }
    } else {
        let mut out = std::io::stdout().lock();
        for (i, d) in drafts.iter().enumerate() {
            let sep = if i == 0 { "" } else { "---\n" };
            if write!(out, "{sep}{}", d.yaml).is_err() {
                return ExitCode::from(EXIT_INVALID);
            }
        }
        let _ = out.flush();
    }
    for d in &drafts {
        for w in &d.warnings {
            eprintln!("warning: {}: {w}", d.vm);
            warnings += 1;
        }
    }
    let rules: usize = exports
        .sets
        .iter()
        .flat_map(|s| &s.lists)
        .map(|l| l.rules.len())
        .sum();
    let dest = args
        .out
        .as_ref()
        .map(|d| format!("; written to {}", d.display()))
        .unwrap_or_default();
    eprintln!(
        "policy draft: {} VM(s) from {} firewall export(s) ({rules} rules; {} file(s) read), \
         {warnings} warning(s){dest}",
        drafts.len(),
        exports.sets.len(),
        exports.files
    );
    ExitCode::from(EXIT_OK)
}

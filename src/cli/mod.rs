//! The command line: clap definitions, dispatch and exit codes.
//!
//! Exit codes: 0 success; 1 warnings under `--strict` (or a VM failed, for commands that run
//! VMs); 2 invalid input (plan errors, unreadable files), or `run` refused because another
//! wavelift drives the plan (its Lease); 3 the plan's Lease was lost mid-run (the engine was
//! stopped).

mod blast;
mod journal;
mod lease;
mod migrate;
mod plan_check;
mod policies;
mod policy_draft;
mod policy_test;
mod probe;
mod run;
mod sim;
mod target;
mod tui;
mod verify;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

pub const EXIT_OK: u8 = 0;
pub const EXIT_WARNINGS: u8 = 1;
pub const EXIT_INVALID: u8 = 2;
/// The plan's Lease was lost while driving (another wavelift may drive now): the engine
/// was stopped.
pub const EXIT_LEASE_LOST: u8 = 3;

/// Reads and validates a plan for a command that talks to a cluster. When the plan cannot
/// be read or is invalid, its errors are printed (file:line:column, with the offending text)
/// and the exit code to return is the `Err`: nothing reaches a cluster before the whole plan
/// validated. `Ok` holds the plan and its file name as shown in messages.
pub(crate) fn load_valid_plan(
    path: &std::path::Path,
) -> Result<(crate::plan::Plan, String), ExitCode> {
    let checked = match crate::plan::check_file(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Err(ExitCode::from(EXIT_INVALID));
        }
    };
    match checked.plan.clone() {
        Some(plan) => Ok((plan, checked.file)),
        None => {
            for d in checked
                .located()
                .iter()
                .filter(|d| d.severity == crate::plan::Severity::Error)
            {
                eprint!("{}", d.render_text());
            }
            eprintln!(
                "{}: invalid plan: nothing was sent to a cluster",
                checked.file
            );
            Err(ExitCode::from(EXIT_INVALID))
        }
    }
}

/// The tokio runtime a command runs on (an error here is the machine's, reported as exit 2).
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Runtime::new().map_err(|e| {
        eprintln!("error: cannot start the async runtime: {e}");
        ExitCode::from(EXIT_INVALID)
    })
}

#[derive(Parser, Debug)]
#[command(
    name = "wavelift",
    version,
    about = "Run VM migration waves from vSphere into KubeVirt, keeping each VM's IP, MAC and VLAN",
    long_about = "wavelift runs VM migration waves from VMware vSphere into KubeVirt on the Layer-2 path: \
each VM's VLAN is carried into the cluster, and the KubeVirt VM keeps its MAC and static IP, so DNS, \
firewall rules, load balancers and monitoring keep working unchanged.\n\n\
Without a kubeconfig, commands that need a cluster use the embedded rehearsal cluster.\n\
Logs go to a file (see `WAVELIFT_LOG`, `WAVELIFT_LOG_DIR`), never to the terminal.",
    after_help = "Examples:\n  wavelift plan check plans/quickstart.toml\n  wavelift tui plans/quickstart.toml\n  wavelift sim serve --plan plans/quickstart.toml"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Open the interactive cockpit for a wave plan
    #[command(
        after_help = "One driver per plan: when another wavelift drives the plan (holds its Lease wavelift-PLAN), the TUI opens read-only and names it.\n\nExample:\n  wavelift tui plans/quickstart.toml            # rehearsal on the embedded cluster\n  wavelift tui plans/payments.toml --context prod-east --dry-run"
    )]
    Tui(TuiArgs),
    /// Run a wave plan headless (CI, scripts)
    #[command(
        after_help = "Exit codes: 0 every VM verified, 1 a VM failed or did not finish, 2 invalid plan, failed preflight, or another wavelift drives the plan (its Lease wavelift-PLAN), 3 the plan's Lease was lost mid-run.\n\nExamples:\n  wavelift run plans/quickstart.toml                     # rehearsal on the embedded cluster\n  wavelift run plans/quickstart.toml --sim --output jsonl --journal audit.jsonl\n  wavelift run plans/payments.toml --context prod-east --wave w1 --dry-run"
    )]
    Run(RunArgs),
    /// Check, create and inspect wave plans
    #[command(subcommand)]
    Plan(PlanCommand),
    /// Verify migrated VMs against their checks and a pre-cutover baseline
    #[command(
        after_help = "Example:\n  wavelift verify plans/quickstart.toml --baseline before.json --report md --out report.md"
    )]
    Verify(VerifyArgs),
    /// Blast radius: every reference to each VM's IP, and who owns it
    #[command(
        after_help = "Example:\n  wavelift blast --plan plans/quickstart.toml --sources exports/ --format md"
    )]
    Blast(BlastArgs),
    /// Network policy for migrated VMs, drafted from the firewall rules that protect them
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Live-migrate a running KubeVirt VM and probe it throughout
    #[command(after_help = "Example:\n  wavelift migrate plans/quickstart.toml --vm shop-web-01")]
    Migrate(MigrateArgs),
    /// Probe from inside a VLAN (run in a probe pod on a VM's network attachment): ARP,
    /// ICMP, TCP; one compact JSON result to the termination log
    #[command(
        after_help = "Example:\n  wavelift probe --interface net1 --arp 192.0.2.15 --gateway 192.0.2.1 --tcp 192.0.2.15:5432"
    )]
    Probe(ProbeArgs),
    /// The embedded Kubernetes-API-compatible rehearsal cluster
    #[command(subcommand)]
    Sim(SimCommand),
    /// Print shell completions
    #[command(
        after_help = "Example:\n  wavelift completions bash > /etc/bash_completion.d/wavelift"
    )]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Args, Debug)]
pub struct TargetArgs {
    /// Use the embedded rehearsal cluster (the default when no kubeconfig is found)
    #[arg(long, conflicts_with = "context")]
    pub sim: bool,
    /// Kubeconfig context to use (default: the plan's `context`, then the current context)
    #[arg(long)]
    pub context: Option<String>,
    /// Server-side dry run: every request with dryRun=All, nothing persisted
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
pub struct TuiArgs {
    /// Wave plan (TOML)
    pub plan: PathBuf,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Theme name (themes/NAME.toml or a built-in) or path
    #[arg(long)]
    pub theme: Option<String>,
    /// Blast-radius report (JSON from `wavelift blast --format json`) for the detail pane
    #[arg(long)]
    pub blast: Option<PathBuf>,
    /// Disable dangerous actions (rollback, power-off confirmation, migration)
    #[arg(long)]
    pub read_only: bool,
    /// Audit journal of every mutating API call and operator override (JSON lines,
    /// appended), as `run --journal`
    #[arg(long)]
    pub journal: Option<PathBuf>,
    #[command(flatten)]
    pub rehearsal: RehearsalArgs,
}

#[derive(Args, Debug)]
pub struct ProbeArgs {
    /// The interface on the VLAN (a Multus attachment is `net1`)
    #[arg(long, default_value = "net1")]
    pub interface: String,
    /// RFC 5227 ARP probe of this IP: every MAC that claims it (needs CAP_NET_RAW only)
    #[arg(long = "arp", value_name = "IP")]
    pub arp: Vec<std::net::Ipv4Addr>,
    /// ARP probe of the network's gateway (reported as `gateway`)
    #[arg(long = "gateway", value_name = "IP")]
    pub gateway: Vec<std::net::Ipv4Addr>,
    /// ICMP echo (needs an address on the interface: the network's probe_ip)
    #[arg(long = "icmp", value_name = "IP")]
    pub icmp: Vec<std::net::IpAddr>,
    /// TCP connect (needs the network's probe_ip)
    #[arg(long = "tcp", value_name = "IP:PORT")]
    pub tcp: Vec<std::net::SocketAddr>,
    /// Continuous ICMP probe every 100 ms (a live migration's): until SIGTERM (the pod's
    /// graceful deletion) or --watch-for; reports probes sent, lost and the longest gap
    #[arg(long = "watch", value_name = "IP")]
    pub watch: Option<std::net::IpAddr>,
    /// Longest time the continuous probe runs
    #[arg(long, default_value = "1h", value_parser = parse_duration_arg)]
    pub watch_for: std::time::Duration,
    /// Where the result goes (the kubelet reads the container's termination message)
    #[arg(long, default_value = "/dev/termination-log")]
    pub termination_log: std::path::PathBuf,
    /// Time between the 3 ARP probes (RFC 5227: 1–2 s)
    #[arg(long, default_value = "1s", value_parser = parse_duration_arg)]
    pub arp_interval: std::time::Duration,
    /// Time to listen after the last ARP probe (RFC 5227: 2 s)
    #[arg(long, default_value = "2s", value_parser = parse_duration_arg)]
    pub arp_wait: std::time::Duration,
    /// Timeout of each ICMP or TCP probe
    #[arg(long, default_value = "2s", value_parser = parse_duration_arg)]
    pub timeout: std::time::Duration,
}

fn parse_duration_arg(s: &str) -> Result<std::time::Duration, String> {
    crate::plan::check::parse_duration(s)
        .ok_or_else(|| format!("`{s}` is not a duration (e.g. 500ms, 2s)"))
}

/// How the embedded rehearsal cluster plays the night.
#[derive(Args, Debug, Clone, Default)]
pub struct RehearsalArgs {
    /// Rehearsal speed on the embedded cluster (simulated seconds per real second)
    #[arg(long)]
    pub speed: Option<f64>,
    /// Where the rehearsal world's clock starts (RFC 3339, e.g. 2026-12-05T21:00:00Z).
    /// Default: early enough for the warm waves' precopy rounds before their windows open
    /// (the first window's start minus two precopy intervals), else a minute before the
    /// first window.
    #[arg(long, value_name = "TIME")]
    pub clock_start: Option<String>,
}

impl RehearsalArgs {
    /// The clock start as Unix ms, or the reason it cannot be read.
    pub fn clock_start_ms(&self) -> anyhow::Result<Option<i64>> {
        self.clock_start
            .as_deref()
            .map(|t| {
                crate::plan::time::parse(t)
                    .map(|ts| ts.unix * 1000)
                    .map_err(|why| anyhow::anyhow!("--clock-start {t}: {why}"))
            })
            .transpose()
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RunOutput {
    Text,
    Jsonl,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Wave plan (TOML)
    pub plan: PathBuf,
    /// Only this wave
    #[arg(long)]
    pub wave: Option<String>,
    /// Only these VMs
    #[arg(long = "vm", value_name = "NAME")]
    pub vms: Vec<String>,
    #[command(flatten)]
    pub target: TargetArgs,
    #[arg(long, value_enum, default_value = "text")]
    pub output: RunOutput,
    /// Audit journal of every mutating API call and operator override (JSON lines,
    /// appended)
    #[arg(long)]
    pub journal: Option<PathBuf>,
    /// Confirm manual power-off of source VMs without prompting (scripted runs)
    #[arg(long)]
    pub confirm_power_off: bool,
    /// Start cutovers outside their wave's change window, or in one too short for them
    /// (recorded in the journal).
    #[arg(long)]
    pub ignore_window: bool,
    #[command(flatten)]
    pub rehearsal: RehearsalArgs,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum CheckFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum PlanCommand {
    /// Validate a wave plan: every error with file:line:column, a caret and a hint
    #[command(
        after_help = "Exit codes: 0 valid, 1 warnings with --strict, 2 errors.\n\nExamples:\n  wavelift plan check plans/quickstart.toml\n  wavelift plan check plans/estate.toml --format json | jq '.diagnostics[]'"
    )]
    Check {
        /// Wave plan (TOML)
        plan: PathBuf,
        /// Output format
        #[arg(long, value_enum, default_value = "text")]
        format: CheckFormat,
        /// Treat warnings as failures (exit 1)
        #[arg(long)]
        strict: bool,
    },
    /// Write a plan skeleton from an RVTools export
    #[command(
        after_help = "Example:\n  wavelift plan init --rvtools RVTools_export.xlsx --vlan-map vlans.csv --out plans/new.toml"
    )]
    Init {
        /// RVTools xlsx, a directory of RVTools CSV tabs, or govc JSON
        #[arg(long)]
        rvtools: PathBuf,
        /// CSV `portgroup,vlan,cidr,gateway,owner` completing the networks
        #[arg(long)]
        vlan_map: Option<PathBuf>,
        /// Plan file to write
        #[arg(long)]
        out: PathBuf,
        /// Overwrite an existing file
        #[arg(long)]
        force: bool,
    },
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Wave plan (TOML)
    pub plan: PathBuf,
    /// Compare with a baseline taken before cutover (regressions are marked)
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// Write the results as a baseline (run it before cutover)
    #[arg(long)]
    pub baseline_out: Option<PathBuf>,
    /// Report format: md, json or junit
    #[arg(long, value_name = "md|json|junit")]
    pub report: Option<String>,
    /// Report file (default: stdout)
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub target: TargetArgs,
}

#[derive(Args, Debug)]
pub struct BlastArgs {
    /// Wave plan whose VMs to look for
    #[arg(long, conflicts_with = "rvtools", required_unless_present = "rvtools")]
    pub plan: Option<PathBuf>,
    /// Or an inventory: RVTools xlsx, a directory of RVTools CSV tabs, or govc JSON
    #[arg(long)]
    pub rvtools: Option<PathBuf>,
    /// Exports and config trees to scan (DNS zones, firewall exports, Prometheus, HAProxy, nginx, any files)
    #[arg(long, num_args = 1.., required = true)]
    pub sources: Vec<PathBuf>,
    /// Only this VM's blast radius
    #[arg(long)]
    pub vm: Option<String>,
    /// Owners file (default: OWNERS at the root of a sources directory)
    #[arg(long)]
    pub owners: Option<PathBuf>,
    /// At most this many references by address make a VM an L3 (re-IP) candidate
    #[arg(long, default_value_t = 3)]
    pub l3_max_refs: usize,
    /// Output format: text, md, json (what `tui --blast` loads) or csv
    #[arg(long, default_value = "text", value_name = "text|md|json|csv")]
    pub format: String,
    /// Write the report to a file instead of stdout
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Draft, per VM, the policy admitting exactly the flows its firewall rules admit
    #[command(
        after_help = "Example:\n  wavelift policy draft --plan plans/quickstart.toml --sources exports/ --out policies/"
    )]
    Draft(PolicyDraftArgs),
    /// Would a policy file let this flow reach the VM? Pure evaluation, no cluster needed
    #[command(
        after_help = "Exit codes: 0 allow, 1 deny, 2 invalid input.\n\nExample:\n  wavelift policy test --policy policies/shop-web-01.yaml --vm shop-web-01 --from 192.0.2.50 --port 443/tcp"
    )]
    Test(PolicyTestArgs),
}

#[derive(Args, Debug)]
pub struct PolicyDraftArgs {
    /// Wave plan whose VMs to draft for
    #[arg(long, conflicts_with = "rvtools", required_unless_present = "rvtools")]
    pub plan: Option<PathBuf>,
    /// Or an inventory: RVTools xlsx, a directory of RVTools CSV tabs, or govc JSON
    #[arg(long)]
    pub rvtools: Option<PathBuf>,
    /// Firewall exports (files or directories; other files are skipped)
    #[arg(long, num_args = 1.., required = true)]
    pub sources: Vec<PathBuf>,
    /// Only these VMs (repeatable)
    #[arg(long, num_args = 1..)]
    pub vm: Vec<String>,
    /// Write one YAML file per VM into this directory (default: all YAML to stdout)
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// MultiNetworkPolicy API version the cluster serves (v1beta2 has `endPort`)
    #[arg(long, default_value = "v1beta2", value_name = "v1beta1|v1beta2")]
    pub mnp_version: String,
}

#[derive(Args, Debug)]
pub struct PolicyTestArgs {
    /// Policy YAML (one or more documents: NetworkPolicy, MultiNetworkPolicy)
    #[arg(long)]
    pub policy: PathBuf,
    /// The VM the flow goes to (its pods carry wavelift's `wavelift.io/vm` label)
    #[arg(long)]
    pub vm: String,
    /// Source address of the flow
    #[arg(long)]
    pub from: std::net::IpAddr,
    /// Destination port, `N`, `N/tcp`, `N/udp` or `N/sctp` (default tcp)
    #[arg(long)]
    pub port: String,
}

#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// Wave plan (TOML)
    pub plan: PathBuf,
    /// The VM to live-migrate (it must be running in the cluster)
    #[arg(long)]
    pub vm: String,
    #[command(flatten)]
    pub target: TargetArgs,
}

#[derive(Subcommand, Debug)]
pub enum SimCommand {
    /// Serve the rehearsal cluster on loopback and write a kubeconfig for kubectl
    #[command(
        after_help = "Example:\n  wavelift sim serve --plan plans/quickstart.toml\n  export KUBECONFIG=…   # as printed\n  kubectl get vm -A"
    )]
    Serve {
        /// Port on 127.0.0.1 (0 = any free port)
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Seed the cluster from a wave plan (source VMs, networks, storage)
        #[arg(long, conflicts_with = "scenario")]
        plan: Option<PathBuf>,
        /// Scenario file (nodes, bandwidth, faults, time scale)
        #[arg(long)]
        scenario: Option<PathBuf>,
        #[command(flatten)]
        rehearsal: RehearsalArgs,
        /// Where to write the kubeconfig (default: the state directory's sim.kubeconfig)
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let _log = crate::logging::init();
    tracing::info!(command = ?std::env::args().nth(1), "wavelift starting");
    match cli.command {
        Command::Plan(PlanCommand::Check {
            plan,
            format,
            strict,
        }) => plan_check::run(&plan, format, strict),
        Command::Plan(PlanCommand::Init {
            rvtools,
            vlan_map,
            out,
            force,
        }) => blast::plan_init(&rvtools, vlan_map.as_deref(), &out, force),
        Command::Tui(args) => tui::run(args),
        Command::Run(args) => run::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Blast(args) => blast::blast(args),
        Command::Migrate(args) => migrate::run(args),
        Command::Policy(PolicyCommand::Draft(args)) => policy_draft::run(args),
        Command::Policy(PolicyCommand::Test(args)) => policy_test::run(args),
        Command::Probe(args) => probe::run(args),
        Command::Sim(SimCommand::Serve {
            port,
            plan,
            scenario,
            rehearsal,
            kubeconfig,
        }) => sim::serve(
            port,
            plan.as_deref(),
            scenario.as_deref(),
            &rehearsal,
            kubeconfig,
        ),
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "wavelift", &mut std::io::stdout());
            ExitCode::from(EXIT_OK)
        }
    }
}

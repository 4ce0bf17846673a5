//! One driver per plan: a `coordination.k8s.io/v1` Lease named for the plan
//! (`wavelift-<plan name>`, in the plan's namespace) that `wavelift run` and `wavelift tui`
//! take before they drive, renew while they drive and release when they exit.
//!
//! Leader election as kubernetes client-go does it
//! (`staging/src/k8s.io/client-go/tools/leaderelection/leaderelection.go`:
//! `tryAcquireOrRenew`, `renew`, `release`, `isLeaseValid`, `setObservedRecord`; the record ↔
//! Lease mapping of `tools/leaderelection/resourcelock/leaselock.go`):
//!
//! - the Lease is taken by a create, or by an update carrying the resourceVersion just read
//!   (the API server refuses unconditional updates of Leases); a 409 means another driver
//!   won, and the Lease is read again;
//! - expiry is judged from the LOCAL instant at which this process last saw the record
//!   change (`observedTime`) plus its `leaseDurationSeconds`, never by comparing `renewTime`
//!   (another machine's clock) with ours;
//! - `acquireTime` and `renewTime` are wall-clock MicroTime; `leaseTransitions` grows by one
//!   whenever the Lease changes hands;
//! - release writes the record with no holder (and `leaseDurationSeconds` 1), with the
//!   resourceVersion of our last write: only while we still hold it.
//!
//! wavelift's additions, because a run is a command an operator starts, not a replica:
//!
//! - the holder identity is `user@host/pid`. A holder on THIS host whose process no longer
//!   runs (a run killed with SIGKILL) is taken over at once; a running one is never displaced,
//!   even from the same host (two terminals of one operator race too);
//! - a holder on another host (or whose liveness this host cannot tell) is watched: if its
//!   record changes while we watch, it is alive and we refuse; if it does not change for its
//!   lease duration, it is expired and we take it over;
//! - a live holder is not waited for: the command refuses (and the TUI opens read-only).
//!
//! The decision is pure ([`Observer`], [`decide`]; tested with a fake clock); the I/O is
//! [`acquire`] and the renewer behind [`LeaseGuard`].

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::Client;
use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How long a Lease stays valid after the holder's last renewal was observed (the record's
/// `leaseDurationSeconds`).
pub const LEASE_DURATION: Duration = Duration::from_secs(30);
/// How often the holder renews.
pub const RENEW_PERIOD: Duration = Duration::from_secs(10);
/// A holder that could not renew for this long gives up (stops driving): two thirds of the
/// lease duration, like client-go's default RenewDeadline/LeaseDuration (10 s / 15 s), so it
/// has stopped before anyone else may take the Lease over.
pub const RENEW_DEADLINE: Duration = Duration::from_secs(20);
/// Pause between attempts after a failed renewal, and between looks at another host's Lease
/// (client-go's default RetryPeriod).
pub const RETRY_PERIOD: Duration = Duration::from_secs(2);
/// Each Lease request gives up after this long (so a hung request cannot hide a missed
/// renew deadline).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The Lease's timing. [`LeaseTiming::DEFAULT`] everywhere but in tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    pub duration: Duration,
    pub renew_period: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
    pub request_timeout: Duration,
}

impl LeaseTiming {
    pub const DEFAULT: LeaseTiming = LeaseTiming {
        duration: LEASE_DURATION,
        renew_period: RENEW_PERIOD,
        renew_deadline: RENEW_DEADLINE,
        retry_period: RETRY_PERIOD,
        request_timeout: REQUEST_TIMEOUT,
    };

    fn duration_seconds(&self) -> i32 {
        i32::try_from(self.duration.as_secs().max(1)).unwrap_or(i32::MAX)
    }
}

impl Default for LeaseTiming {
    fn default() -> Self {
        LeaseTiming::DEFAULT
    }
}

/// The Lease of plan `plan` (a DNS label, so the name is a valid object name).
pub fn lease_name(plan: &str) -> String {
    format!("wavelift-{plan}")
}

// ---------------------------------------------------------------------------------------
// Identity

/// Who drives: `user@host/pid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub host: String,
    pub pid: u32,
}

impl Identity {
    /// This process: the login name (`USER`, `LOGNAME`, else the name of this process's
    /// uid in `/etc/passwd`, else `uid<N>`), the host name (the kernel's, else
    /// `/etc/hostname`, else `HOSTNAME`) and the process id.
    pub fn of_this_process() -> Identity {
        let user = ["USER", "LOGNAME", "USERNAME"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()))
            .or_else(user_of_uid)
            .unwrap_or_else(|| "unknown".into());
        let host = ["/proc/sys/kernel/hostname", "/etc/hostname"]
            .iter()
            .find_map(|p| {
                std::fs::read_to_string(p)
                    .ok()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
            })
            .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
            .unwrap_or_else(|| "localhost".into());
        Identity {
            user: sanitize(&user),
            host: sanitize(&host),
            pid: std::process::id(),
        }
    }

    /// Reads `user@host/pid` back (`None` for a holder that is not a wavelift identity).
    pub fn parse(s: &str) -> Option<Identity> {
        let (rest, pid) = s.rsplit_once('/')?;
        let (user, host) = rest.rsplit_once('@')?;
        (!host.is_empty()).then_some(())?;
        Some(Identity {
            user: user.to_string(),
            host: host.to_string(),
            pid: pid.parse().ok()?,
        })
    }
}

/// The user name of this process's real uid (Linux: `/proc/self/status`, `/etc/passwd`).
fn user_of_uid() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let name = passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        (f.nth(1)? == uid).then(|| name.to_string())
    });
    Some(name.unwrap_or_else(|| format!("uid{uid}")))
}

/// `@` and `/` separate the parts of an identity: they are not allowed inside one.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c == '@' || c == '/' { '_' } else { c })
        .collect()
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}/{}", self.user, self.host, self.pid)
    }
}

// ---------------------------------------------------------------------------------------
// The record and what this process observed of it

/// The leader-election record a Lease carries (client-go `LeaderElectionRecord`,
/// `LeaseSpecToLeaderElectionRecord`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// Empty: nobody holds it.
    pub holder: String,
    pub duration_seconds: i32,
    pub acquire_time: Option<Timestamp>,
    pub renew_time: Option<Timestamp>,
    pub transitions: i32,
}

impl Record {
    pub fn from_spec(spec: Option<&LeaseSpec>) -> Record {
        let Some(s) = spec else {
            return Record::default();
        };
        Record {
            holder: s.holder_identity.clone().unwrap_or_default(),
            duration_seconds: s.lease_duration_seconds.unwrap_or(0),
            acquire_time: s.acquire_time.as_ref().map(|t| t.0),
            renew_time: s.renew_time.as_ref().map(|t| t.0),
            transitions: s.lease_transitions.unwrap_or(0),
        }
    }

    /// client-go `LeaderElectionRecordToLeaseSpec`.
    pub fn to_spec(&self) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.holder.clone()),
            lease_duration_seconds: Some(self.duration_seconds),
            acquire_time: self.acquire_time.map(MicroTime),
            renew_time: self.renew_time.map(MicroTime),
            lease_transitions: Some(self.transitions),
            ..LeaseSpec::default()
        }
    }
}

/// A record as this process saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub record: Record,
    /// The local instant this process saw the record change last (client-go
    /// `observedTime`: set whenever the raw record differs from the one seen before).
    pub changed_at: Instant,
    /// The record changed (or appeared) while this process was watching it: whoever holds
    /// it is alive (it renewed, or just took it).
    pub changed_while_watched: bool,
}

/// What this process has seen of one Lease, look after look.
#[derive(Debug, Clone, Default)]
pub struct Observer {
    state: Option<Observed>,
    looked: bool,
}

impl Observer {
    pub fn new() -> Observer {
        Observer::default()
    }

    /// One look at the Lease at local instant `now` (`None`: it does not exist).
    pub fn see(&mut self, record: Option<Record>, now: Instant) {
        match (record, &mut self.state) {
            (None, _) => self.state = None,
            (Some(r), Some(o)) if o.record == r => {}
            (Some(r), prev) => {
                let sticky = prev.as_ref().is_some_and(|p| p.changed_while_watched);
                self.state = Some(Observed {
                    record: r,
                    changed_at: now,
                    changed_while_watched: sticky || self.looked,
                });
            }
        }
        self.looked = true;
    }

    pub fn observed(&self) -> Option<&Observed> {
        self.state.as_ref()
    }
}

// ---------------------------------------------------------------------------------------
// The decision (pure)

/// Whether a process of this host runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// It runs (and is a wavelift).
    Running,
    /// No such process (or a zombie): it died.
    Gone,
    /// This host cannot tell (no `/proc`, or the pid now belongs to another program).
    Unknown,
}

/// Why the Lease may be taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TakeReason {
    /// No Lease yet.
    Absent,
    /// Nobody holds it (released).
    Released,
    /// Ours already (a renewal).
    Ours,
    /// Its holder ran on this host and its process is gone.
    HolderGone(String),
    /// Its holder has not renewed it for its lease duration as observed here.
    Expired(String),
}

/// Why a holder counts as alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alive {
    /// Its process runs on this host.
    RunningHere,
    /// It renewed the Lease (or took it) while this process watched.
    Renewing,
}

/// The next step towards holding the Lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Create the Lease.
    Create,
    /// Update it with the resourceVersion just read: `holder` = us; `transitions` is the new
    /// `leaseTransitions`; `keep_acquire_time` for a renewal of our own.
    Take {
        reason: TakeReason,
        transitions: i32,
        keep_acquire_time: bool,
    },
    /// A live holder has it: do not drive.
    Refuse { holder: String, alive: Alive },
    /// Another holder we cannot see is alive (another host): look again; it expires in
    /// `remaining` unless it renews.
    Wait { holder: String, remaining: Duration },
}

/// client-go `tryAcquireOrRenew` steps 2–4 for `me`, given what this process observed
/// (`None`: no Lease) at local instant `now`; `liveness` tells whether a pid of this host
/// runs.
pub fn decide(
    me: &Identity,
    observed: Option<&Observed>,
    now: Instant,
    liveness: impl Fn(u32) -> Liveness,
) -> Step {
    let Some(o) = observed else {
        return Step::Create;
    };
    let r = &o.record;
    let take = |reason| Step::Take {
        reason,
        transitions: r.transitions.saturating_add(1),
        keep_acquire_time: false,
    };
    if r.holder.is_empty() {
        return take(TakeReason::Released);
    }
    if r.holder == me.to_string() {
        return Step::Take {
            reason: TakeReason::Ours,
            transitions: r.transitions,
            keep_acquire_time: true,
        };
    }
    if let Some(h) = Identity::parse(&r.holder).filter(|h| h.host == me.host) {
        match liveness(h.pid) {
            Liveness::Gone => return take(TakeReason::HolderGone(r.holder.clone())),
            Liveness::Running => {
                return Step::Refuse {
                    holder: r.holder.clone(),
                    alive: Alive::RunningHere,
                }
            }
            Liveness::Unknown => {}
        }
    }
    // client-go `isLeaseValid`: observedTime + leaseDurationSeconds after now.
    let valid_until =
        o.changed_at + Duration::from_secs(u64::try_from(r.duration_seconds.max(0)).unwrap_or(0));
    if now >= valid_until {
        return take(TakeReason::Expired(r.holder.clone()));
    }
    if o.changed_while_watched {
        return Step::Refuse {
            holder: r.holder.clone(),
            alive: Alive::Renewing,
        };
    }
    Step::Wait {
        holder: r.holder.clone(),
        remaining: valid_until - now,
    }
}

/// Whether a renewer that last renewed successfully at `last_renewed` (when it sent that
/// request) has to give up at `now`.
pub fn renew_deadline_passed(last_renewed: Instant, now: Instant, timing: &LeaseTiming) -> bool {
    now.saturating_duration_since(last_renewed) >= timing.renew_deadline
}

// ---------------------------------------------------------------------------------------
// This host's processes

/// Whether process `pid` of this host runs, from `/proc` (Linux): gone when `/proc/<pid>`
/// does not exist or is a zombie; running when it runs the same program as this process
/// (`/proc/<pid>/exe`), unknown otherwise (a pid reused by another program, another
/// user's process, or no `/proc`): then the holder is judged by its renewals.
pub fn process_liveness(pid: u32) -> Liveness {
    let proc = std::path::Path::new("/proc");
    if !proc.join("self").exists() {
        return Liveness::Unknown;
    }
    let dir = proc.join(pid.to_string());
    let stat = match std::fs::read_to_string(dir.join("stat")) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Liveness::Gone,
        Err(_) => return Liveness::Unknown,
    };
    // `pid (comm) S …`: the state follows the last `)`.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    if matches!(state, Some("Z") | Some("X") | Some("x")) {
        return Liveness::Gone;
    }
    let name = |p: std::path::PathBuf| -> Option<String> {
        let s = p.file_name()?.to_string_lossy().into_owned();
        Some(s.trim_end_matches(" (deleted)").to_string())
    };
    let theirs = std::fs::read_link(dir.join("exe")).ok().and_then(name);
    let ours = std::env::current_exe().ok().and_then(name);
    match (theirs, ours) {
        (Some(t), Some(o)) if t == o => Liveness::Running,
        _ => Liveness::Unknown,
    }
}

// ---------------------------------------------------------------------------------------
// I/O: acquire, renew, release

/// Why the Lease could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// A live holder has it.
    #[error("{}", held_message(.lease, .holder, .since.as_ref(), *.alive))]
    Held {
        /// `namespace/name`.
        lease: String,
        holder: String,
        /// Its `acquireTime`.
        since: Option<Timestamp>,
        alive: Alive,
    },
    /// RBAC does not allow it.
    #[error("cannot {verb} Lease {lease}: forbidden: wavelift needs get, create and update on leases.coordination.k8s.io in namespace {namespace} (one driver per plan); grant them with a Role and RoleBinding ({message})")]
    Forbidden {
        verb: &'static str,
        lease: String,
        namespace: String,
        message: String,
    },
    /// Any other failure of a Lease request.
    #[error("cannot {verb} Lease {lease}: {message}")]
    Api {
        verb: &'static str,
        lease: String,
        message: String,
    },
}

/// A time stamp for people: `2026-12-05 22:10:03 UTC`.
pub fn show_time(t: &Timestamp) -> String {
    k8s_openapi::jiff::fmt::strtime::format("%Y-%m-%d %H:%M:%S UTC", *t)
        .unwrap_or_else(|_| t.to_string())
}

/// "driven by HOLDER since TIME" (or without the time when the Lease has none).
pub fn holder_text(holder: &str, since: Option<&Timestamp>) -> String {
    match since {
        Some(t) => format!("{holder} since {}", show_time(t)),
        None => holder.to_string(),
    }
}

fn held_message(lease: &str, holder: &str, since: Option<&Timestamp>, alive: Alive) -> String {
    let how = match alive {
        Alive::RunningHere => "its process runs on this host",
        Alive::Renewing => "it renews the Lease",
    };
    format!(
        "the plan is driven by {} (Lease {lease}; {how}): only one wavelift drives a plan. Watch it with `wavelift tui PLAN` (read-only), or stop that run first",
        holder_text(holder, since)
    )
}

/// What [`acquire`] reports while it watches another host's Lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub lease: String,
    pub holder: String,
    pub since: Option<Timestamp>,
    /// Taken over after this long unless the holder renews.
    pub remaining: Duration,
}

/// Where the Lease lives and who we are.
#[derive(Clone)]
pub struct LeaseTarget {
    pub api: Api<Lease>,
    pub namespace: String,
    pub name: String,
    pub plan: String,
    pub me: Identity,
    pub timing: LeaseTiming,
}

impl LeaseTarget {
    /// The Lease of `plan` in `namespace`, for this process.
    pub fn new(client: Client, namespace: &str, plan: &str) -> LeaseTarget {
        LeaseTarget {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
            name: lease_name(plan),
            plan: plan.to_string(),
            me: Identity::of_this_process(),
            timing: LeaseTiming::DEFAULT,
        }
    }

    /// `namespace/name`.
    pub fn describe(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    fn error(&self, verb: &'static str, e: kube::Error) -> LeaseError {
        match e {
            kube::Error::Api(s) if s.code == 403 => LeaseError::Forbidden {
                verb,
                lease: self.describe(),
                namespace: self.namespace.clone(),
                message: s.message.clone(),
            },
            // A create answered 404: the namespace is missing (as preflight would say).
            kube::Error::Api(s) if s.code == 404 && verb == "create" => LeaseError::Api {
                verb,
                lease: self.describe(),
                message: format!(
                    "namespace {} does not exist: create it before running the plan ({})",
                    self.namespace, s.message
                ),
            },
            e => LeaseError::Api {
                verb,
                lease: self.describe(),
                message: e.to_string(),
            },
        }
    }

    fn timed_out(&self, verb: &'static str) -> LeaseError {
        LeaseError::Api {
            verb,
            lease: self.describe(),
            message: format!(
                "no answer within {} s",
                self.timing.request_timeout.as_secs_f64()
            ),
        }
    }

    async fn bounded<T>(
        &self,
        verb: &'static str,
        fut: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, Bounded> {
        match tokio::time::timeout(self.timing.request_timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(kube::Error::Api(s))) if s.code == 409 => Err(Bounded::Conflict),
            Ok(Err(e)) => Err(Bounded::Failed(self.error(verb, e))),
            Err(_) => Err(Bounded::Failed(self.timed_out(verb))),
        }
    }

    async fn get(&self) -> Result<Option<Lease>, LeaseError> {
        self.bounded("get", self.api.get_opt(&self.name))
            .await
            .map_err(|b| b.into_error(self, "get"))
    }

    fn new_lease(&self, record: &Record) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                labels: Some(super::labels::for_plan(&self.plan)),
                ..ObjectMeta::default()
            },
            spec: Some(record.to_spec()),
        }
    }

    /// Our record as of now (client-go `tryAcquireOrRenew`'s leaderElectionRecord).
    fn our_record(&self, transitions: i32, acquire_time: Option<Timestamp>) -> Record {
        let now = Timestamp::now();
        Record {
            holder: self.me.to_string(),
            duration_seconds: self.timing.duration_seconds(),
            acquire_time: Some(acquire_time.unwrap_or(now)),
            renew_time: Some(now),
            transitions,
        }
    }
}

/// A request's outcome when a 409 is an answer, not an error.
enum Bounded {
    Conflict,
    Failed(LeaseError),
}

impl Bounded {
    fn into_error(self, t: &LeaseTarget, verb: &'static str) -> LeaseError {
        match self {
            Bounded::Failed(e) => e,
            Bounded::Conflict => LeaseError::Api {
                verb,
                lease: t.describe(),
                message: "conflict".into(),
            },
        }
    }
}

/// The Lease is ours: how we got it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acquired {
    pub reason: TakeReason,
    pub record: Record,
}

/// At most this many lost races in one [`acquire`] (each one means another driver wrote
/// the Lease; the next look normally refuses).
const MAX_CONFLICTS: u32 = 8;

/// Takes the Lease (client-go `acquire`/`tryAcquireOrRenew`), or says who holds it. A
/// holder on another host is watched until it renews (refused) or expires (taken):
/// `on_wait` hears about each look.
pub async fn acquire(
    target: &LeaseTarget,
    mut on_wait: impl FnMut(&Waiting),
) -> Result<(LeaseGuard, Acquired), LeaseError> {
    acquire_with(target, process_liveness, &mut on_wait).await
}

/// [`acquire`] with the liveness of this host's processes given (tests).
pub async fn acquire_with(
    target: &LeaseTarget,
    liveness: impl Fn(u32) -> Liveness,
    on_wait: &mut dyn FnMut(&Waiting),
) -> Result<(LeaseGuard, Acquired), LeaseError> {
    let mut observer = Observer::new();
    let mut conflicts = 0;
    loop {
        let current = target.get().await?;
        let now = Instant::now();
        observer.see(
            current.as_ref().map(|l| Record::from_spec(l.spec.as_ref())),
            now,
        );
        let step = decide(&target.me, observer.observed(), now, &liveness);
        let since = observer.observed().and_then(|o| o.record.acquire_time);
        let sent = Instant::now();
        let (written, reason) = match step {
            Step::Create => {
                let record = target.our_record(0, None);
                let body = target.new_lease(&record);
                match target
                    .bounded("create", target.api.create(&PostParams::default(), &body))
                    .await
                {
                    Ok(l) => (l, TakeReason::Absent),
                    Err(Bounded::Conflict) => {
                        conflicts += 1;
                        if conflicts > MAX_CONFLICTS {
                            return Err(Bounded::Conflict.into_error(target, "create"));
                        }
                        continue;
                    }
                    Err(Bounded::Failed(e)) => return Err(e),
                }
            }
            Step::Take {
                reason,
                transitions,
                keep_acquire_time,
            } => {
                let Some(mut body) = current else {
                    continue;
                };
                let keep = keep_acquire_time
                    .then(|| observer.observed().and_then(|o| o.record.acquire_time))
                    .flatten();
                body.spec = Some(target.our_record(transitions, keep).to_spec());
                // The resourceVersion just read stays in the body: the update is refused
                // (409) when anyone wrote the Lease since.
                match target
                    .bounded(
                        "update",
                        target
                            .api
                            .replace(&target.name, &PostParams::default(), &body),
                    )
                    .await
                {
                    Ok(l) => (l, reason),
                    Err(Bounded::Conflict) => {
                        conflicts += 1;
                        if conflicts > MAX_CONFLICTS {
                            return Err(Bounded::Conflict.into_error(target, "update"));
                        }
                        continue;
                    }
                    Err(Bounded::Failed(e)) => return Err(e),
                }
            }
            Step::Refuse { holder, alive } => {
                return Err(LeaseError::Held {
                    lease: target.describe(),
                    holder,
                    since,
                    alive,
                })
            }
            Step::Wait { holder, remaining } => {
                on_wait(&Waiting {
                    lease: target.describe(),
                    holder,
                    since,
                    remaining,
                });
                tokio::time::sleep(remaining.min(target.timing.retry_period)).await;
                continue;
            }
        };
        let record = Record::from_spec(written.spec.as_ref());
        let guard = LeaseGuard::start(target.clone(), written, sent);
        return Ok((guard, Acquired { reason, record }));
    }
}

/// Reads the Lease once: its record, or `None` when there is none (for showing the holder
/// where the Lease is not taken, e.g. a dry run).
pub async fn peek(target: &LeaseTarget) -> Result<Option<Record>, LeaseError> {
    Ok(target
        .get()
        .await?
        .map(|l| Record::from_spec(l.spec.as_ref())))
}

/// The Lease while we hold it: a task renews it every renew period; [`LeaseGuard::lost`]
/// resolves when it could not (another driver took it, or renewing failed until the renew
/// deadline): then the caller must stop driving. [`LeaseGuard::release`] gives it up.
pub struct LeaseGuard {
    target: LeaseTarget,
    lost: watch::Receiver<Option<String>>,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<Option<Lease>>>,
}

/// Dropped without [`LeaseGuard::release`] (an early error): renewing stops and the Lease is
/// left to expire (or to be taken over at once by the next run on this host).
impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl LeaseGuard {
    fn start(target: LeaseTarget, lease: Lease, renewed_at: Instant) -> LeaseGuard {
        let (tx, rx) = watch::channel(None);
        let stop = CancellationToken::new();
        let task = tokio::spawn(renew_loop(
            target.clone(),
            lease,
            renewed_at,
            tx,
            stop.clone(),
        ));
        LeaseGuard {
            target,
            lost: rx,
            stop,
            task: Some(task),
        }
    }

    /// `namespace/name`.
    pub fn describe(&self) -> String {
        self.target.describe()
    }

    /// Our identity in the Lease.
    pub fn identity(&self) -> &Identity {
        &self.target.me
    }

    /// Resolves (with the reason) once the Lease is lost; pending while we hold it.
    pub fn lost(&self) -> impl Future<Output = String> + Send + 'static {
        let mut rx = self.lost.clone();
        async move {
            let reason = rx
                .wait_for(Option::is_some)
                .await
                .ok()
                .and_then(|v| v.clone());
            match reason {
                Some(r) => r,
                // The renewer ended without a loss (released): never resolves.
                None => std::future::pending().await,
            }
        }
    }

    /// The reason, when the Lease was lost.
    pub fn lost_reason(&self) -> Option<String> {
        self.lost.borrow().clone()
    }

    /// Stops renewing and gives the Lease up (client-go `release`): the record without a
    /// holder, written with the resourceVersion of our last write, so only while we still
    /// hold it. `Ok(true)`: released; `Ok(false)`: it was not ours any more.
    pub async fn release(mut self) -> Result<bool, LeaseError> {
        self.stop.cancel();
        let Some(task) = self.task.take() else {
            return Ok(false);
        };
        let Ok(Some(mut lease)) = task.await else {
            return Ok(false);
        };
        let t = &self.target;
        for _ in 0..3 {
            let old = Record::from_spec(lease.spec.as_ref());
            if old.holder != t.me.to_string() {
                return Ok(false);
            }
            let now = Timestamp::now();
            let released = Record {
                holder: String::new(),
                duration_seconds: 1,
                acquire_time: Some(now),
                renew_time: Some(now),
                transitions: old.transitions,
            };
            lease.spec = Some(released.to_spec());
            match t
                .bounded(
                    "update",
                    t.api.replace(&t.name, &PostParams::default(), &lease),
                )
                .await
            {
                Ok(_) => return Ok(true),
                // Written since our last renewal: read it, and release only if still ours.
                Err(Bounded::Conflict) => match t.get().await? {
                    Some(l) => lease = l,
                    None => return Ok(false),
                },
                Err(Bounded::Failed(e)) => return Err(e),
            }
        }
        Err(Bounded::Conflict.into_error(t, "update"))
    }
}

/// client-go `renew`: renew every renew period; after a failure retry every retry period
/// until the renew deadline (counted from the last renewal that succeeded), then give up.
/// Returns the last Lease written while still holding it (for the release), or `None` when
/// the Lease was lost.
async fn renew_loop(
    t: LeaseTarget,
    mut lease: Lease,
    mut renewed_at: Instant,
    lost: watch::Sender<Option<String>>,
    stop: CancellationToken,
) -> Option<Lease> {
    let me = t.me.to_string();
    let mut failing: Option<String> = None;
    loop {
        let pause = if failing.is_some() {
            t.timing.retry_period
        } else {
            t.timing.renew_period
        };
        tokio::select! {
            () = stop.cancelled() => return Some(lease),
            () = tokio::time::sleep(pause) => {}
        }
        let sent = Instant::now();
        let old = Record::from_spec(lease.spec.as_ref());
        let mut body = lease.clone();
        body.spec = Some(t.our_record(old.transitions, old.acquire_time).to_spec());
        let result = t
            .bounded(
                "update",
                t.api.replace(&t.name, &PostParams::default(), &body),
            )
            .await;
        match result {
            Ok(l) => {
                lease = l;
                renewed_at = sent;
                failing = None;
            }
            // Someone wrote it since our last renewal: still ours?
            Err(Bounded::Conflict) => match t.get().await {
                Ok(Some(cur)) => {
                    let r = Record::from_spec(cur.spec.as_ref());
                    if r.holder != me {
                        let why = format!(
                            "Lease {} was taken over by {}",
                            t.describe(),
                            if r.holder.is_empty() {
                                "nobody (it was released)".to_string()
                            } else {
                                r.holder
                            }
                        );
                        let _ = lost.send(Some(why));
                        return None;
                    }
                    lease = cur;
                    failing = Some("conflict".into());
                }
                Ok(None) => {
                    // Deleted under us: nobody holds it, so create it again (client-go's
                    // tryAcquireOrRenew does the same); a 409 there means someone else did.
                    let record = t.our_record(old.transitions, old.acquire_time);
                    match t
                        .bounded(
                            "create",
                            t.api.create(&PostParams::default(), &t.new_lease(&record)),
                        )
                        .await
                    {
                        Ok(l) => {
                            lease = l;
                            renewed_at = sent;
                            failing = None;
                        }
                        Err(Bounded::Conflict) => {
                            let _ = lost.send(Some(format!(
                                "Lease {} was deleted and taken by another driver",
                                t.describe()
                            )));
                            return None;
                        }
                        Err(Bounded::Failed(e)) => failing = Some(e.to_string()),
                    }
                }
                Err(e) => failing = Some(e.to_string()),
            },
            Err(Bounded::Failed(e)) => failing = Some(e.to_string()),
        }
        if let Some(why) = &failing {
            tracing::warn!(lease = %t.describe(), error = %why, "lease renewal failed");
            if renew_deadline_passed(renewed_at, Instant::now(), &t.timing) {
                let _ = lost.send(Some(format!(
                    "could not renew Lease {} for {} s (last error: {why}); another wavelift may take it over",
                    t.describe(),
                    t.timing.renew_deadline.as_secs()
                )));
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Identity {
        Identity {
            user: "alice".into(),
            host: "jump-1".into(),
            pid: 100,
        }
    }

    fn held_by(holder: &str, transitions: i32) -> Record {
        Record {
            holder: holder.into(),
            duration_seconds: 30,
            acquire_time: Some(Timestamp::UNIX_EPOCH),
            renew_time: Some(Timestamp::UNIX_EPOCH),
            transitions,
        }
    }

    fn running(_: u32) -> Liveness {
        Liveness::Running
    }

    fn gone(_: u32) -> Liveness {
        Liveness::Gone
    }

    fn unknown(_: u32) -> Liveness {
        Liveness::Unknown
    }

    /// One look at `record` at `t`, through a fresh observer.
    fn first_look(record: Record, t: Instant) -> Observer {
        let mut o = Observer::new();
        o.see(Some(record), t);
        o
    }

    #[test]
    fn identity_round_trips_and_foreign_holders_do_not_parse() {
        let id = me();
        assert_eq!(id.to_string(), "alice@jump-1/100");
        assert_eq!(Identity::parse("alice@jump-1/100"), Some(id));
        assert_eq!(
            Identity::parse("first.last@corp@jump-1/7").map(|i| i.user),
            Some("first.last@corp".into())
        );
        for s in [
            "sim-node-1",
            "kube-controller-manager_1234",
            "a@b/x",
            "@/1",
            "a@/1",
        ] {
            assert_eq!(Identity::parse(s), None, "{s}");
        }
        let this = Identity::of_this_process();
        assert_eq!(this.pid, std::process::id());
        assert_eq!(Identity::parse(&this.to_string()), Some(this));
    }

    #[test]
    fn no_lease_is_created_a_released_one_is_taken_with_a_transition() {
        let t0 = Instant::now();
        assert_eq!(decide(&me(), None, t0, running), Step::Create);
        let o = first_look(held_by("", 3), t0);
        assert_eq!(
            decide(&me(), o.observed(), t0, running),
            Step::Take {
                reason: TakeReason::Released,
                transitions: 4,
                keep_acquire_time: false
            }
        );
    }

    #[test]
    fn our_own_lease_is_renewed_keeping_acquire_time_and_transitions() {
        let t0 = Instant::now();
        let o = first_look(held_by("alice@jump-1/100", 2), t0);
        assert_eq!(
            decide(&me(), o.observed(), t0, gone),
            Step::Take {
                reason: TakeReason::Ours,
                transitions: 2,
                keep_acquire_time: true
            }
        );
    }

    #[test]
    fn a_dead_holder_on_this_host_is_taken_over_at_once() {
        let t0 = Instant::now();
        let o = first_look(held_by("alice@jump-1/4242", 0), t0);
        let asked = std::cell::Cell::new(0);
        let step = decide(&me(), o.observed(), t0, |pid| {
            asked.set(pid);
            Liveness::Gone
        });
        assert_eq!(asked.get(), 4242);
        assert_eq!(
            step,
            Step::Take {
                reason: TakeReason::HolderGone("alice@jump-1/4242".into()),
                transitions: 1,
                keep_acquire_time: false
            }
        );
    }

    #[test]
    fn a_live_holder_on_this_host_is_never_displaced_not_even_after_expiry() {
        let t0 = Instant::now();
        // Another terminal of the same operator, and another user of the same host.
        for h in ["alice@jump-1/4242", "bob@jump-1/4243"] {
            let o = first_look(held_by(h, 0), t0);
            for later in [0, 29, 31, 3600] {
                assert_eq!(
                    decide(
                        &me(),
                        o.observed(),
                        t0 + Duration::from_secs(later),
                        running
                    ),
                    Step::Refuse {
                        holder: h.into(),
                        alive: Alive::RunningHere
                    },
                    "{h} after {later} s"
                );
            }
        }
    }

    #[test]
    fn another_hosts_holder_is_watched_then_taken_over_after_the_lease_duration() {
        // Fake clock: instants derived from one origin, no sleeping.
        let t0 = Instant::now();
        let h = "bob@jump-2/77";
        let mut o = first_look(held_by(h, 5), t0);
        // Its process cannot be checked from here: the local pid table is not asked.
        let step = decide(&me(), o.observed(), t0, |_| panic!("not this host"));
        assert_eq!(
            step,
            Step::Wait {
                holder: h.into(),
                remaining: Duration::from_secs(30)
            }
        );
        // Looked again 20 s later, unchanged: 10 s left.
        let t20 = t0 + Duration::from_secs(20);
        o.see(Some(held_by(h, 5)), t20);
        assert_eq!(
            decide(&me(), o.observed(), t20, unknown),
            Step::Wait {
                holder: h.into(),
                remaining: Duration::from_secs(10)
            }
        );
        // Unchanged for the whole lease duration since first seen: expired, taken over.
        let t30 = t0 + Duration::from_secs(30);
        o.see(Some(held_by(h, 5)), t30);
        assert_eq!(
            decide(&me(), o.observed(), t30, unknown),
            Step::Take {
                reason: TakeReason::Expired(h.into()),
                transitions: 6,
                keep_acquire_time: false
            }
        );
    }

    #[test]
    fn expiry_ignores_renew_time_and_counts_from_the_local_observation() {
        // renewTime years in the past (a skewed clock, or just old): still valid for a
        // full lease duration from when this process first saw it.
        let t0 = Instant::now();
        let mut r = held_by("bob@jump-2/77", 0);
        r.renew_time = Some(Timestamp::UNIX_EPOCH);
        let o = first_look(r.clone(), t0);
        assert!(matches!(
            decide(&me(), o.observed(), t0 + Duration::from_secs(29), unknown),
            Step::Wait { .. }
        ));
        // And a renewTime in the future does not keep it alive either.
        r.renew_time = Some(Timestamp::MAX);
        let o = first_look(r, t0);
        assert!(matches!(
            decide(&me(), o.observed(), t0 + Duration::from_secs(30), unknown),
            Step::Take {
                reason: TakeReason::Expired(_),
                ..
            }
        ));
    }

    #[test]
    fn a_holder_that_renews_while_watched_is_alive_and_refused() {
        let t0 = Instant::now();
        let h = "bob@jump-2/77";
        let mut o = first_look(held_by(h, 0), t0);
        let mut renewed = held_by(h, 0);
        renewed.renew_time = Some(Timestamp::from_second(10).expect("ts"));
        let t10 = t0 + Duration::from_secs(10);
        o.see(Some(renewed.clone()), t10);
        assert_eq!(
            decide(&me(), o.observed(), t10, unknown),
            Step::Refuse {
                holder: h.into(),
                alive: Alive::Renewing
            }
        );
        // The clock restarts at the change: expired only 30 s after it.
        o.see(Some(renewed), t0 + Duration::from_secs(39));
        assert!(matches!(
            decide(&me(), o.observed(), t0 + Duration::from_secs(39), unknown),
            Step::Refuse { .. }
        ));
        assert!(matches!(
            decide(&me(), o.observed(), t0 + Duration::from_secs(40), unknown),
            Step::Take { .. }
        ));
    }

    #[test]
    fn a_lease_that_appears_after_we_saw_none_was_just_taken_by_a_live_driver() {
        // Both saw no Lease; the other create won (we got 409) and we read theirs.
        let t0 = Instant::now();
        let mut o = Observer::new();
        o.see(None, t0);
        assert_eq!(decide(&me(), o.observed(), t0, unknown), Step::Create);
        o.see(Some(held_by("bob@jump-2/77", 0)), t0);
        assert!(matches!(
            decide(&me(), o.observed(), t0, unknown),
            Step::Refuse {
                alive: Alive::Renewing,
                ..
            }
        ));
    }

    #[test]
    fn a_reused_pid_on_this_host_is_judged_by_renewals() {
        let t0 = Instant::now();
        let o = first_look(held_by("alice@jump-1/4242", 0), t0);
        assert!(matches!(
            decide(&me(), o.observed(), t0, unknown),
            Step::Wait { .. }
        ));
        assert!(matches!(
            decide(&me(), o.observed(), t0 + Duration::from_secs(30), unknown),
            Step::Take {
                reason: TakeReason::Expired(_),
                ..
            }
        ));
    }

    #[test]
    fn renew_deadline_counts_from_the_last_successful_renewal() {
        let t0 = Instant::now();
        let t = LeaseTiming::DEFAULT;
        assert!(t.renew_deadline < t.duration);
        assert!(t.renew_period < t.renew_deadline);
        assert!(!renew_deadline_passed(t0, t0 + Duration::from_secs(19), &t));
        assert!(renew_deadline_passed(t0, t0 + Duration::from_secs(20), &t));
    }

    #[test]
    fn records_map_to_lease_specs_and_back() {
        let r = Record {
            holder: "alice@jump-1/100".into(),
            duration_seconds: 30,
            acquire_time: Some(Timestamp::from_second(1_800_000_000).expect("ts")),
            renew_time: Some(Timestamp::from_second(1_800_000_010).expect("ts")),
            transitions: 2,
        };
        let spec = r.to_spec();
        assert_eq!(Record::from_spec(Some(&spec)), r);
        // MicroTime on the wire: six fractional digits.
        let json = serde_json::to_value(&spec).expect("json");
        assert_eq!(json["renewTime"], "2027-01-15T08:00:10.000000Z");
        assert_eq!(Record::from_spec(None), Record::default());
    }

    #[test]
    fn this_process_runs_and_a_reaped_child_is_gone() {
        if !std::path::Path::new("/proc/self").exists() {
            return;
        }
        assert_eq!(process_liveness(std::process::id()), Liveness::Running);
        let mut child = std::process::Command::new("true").spawn().expect("true");
        let pid = child.id();
        child.wait().expect("wait");
        assert_eq!(process_liveness(pid), Liveness::Gone);
        // pid 1 runs another program: this host cannot tell whether it is a wavelift.
        assert_ne!(process_liveness(1), Liveness::Gone);
    }

    #[test]
    fn held_errors_name_the_holder_and_since_when() {
        let e = LeaseError::Held {
            lease: "mig/wavelift-p".into(),
            holder: "bob@jump-2/77".into(),
            since: Some(Timestamp::from_second(1_800_000_000).expect("ts")),
            alive: Alive::Renewing,
        };
        let s = e.to_string();
        assert!(
            s.contains("bob@jump-2/77 since 2027-01-15 08:00:00 UTC"),
            "{s}"
        );
        assert!(s.contains("mig/wavelift-p"), "{s}");
        let e = LeaseError::Forbidden {
            verb: "create",
            lease: "mig/wavelift-p".into(),
            namespace: "mig".into(),
            message: "no".into(),
        };
        let s = e.to_string();
        assert!(
            s.contains("cannot create Lease mig/wavelift-p: forbidden")
                && s.contains(
                    "get, create and update on leases.coordination.k8s.io in namespace mig"
                ),
            "{s}"
        );
    }
}

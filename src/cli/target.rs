//! Connecting a command to its cluster: the embedded rehearsal (sim, in-process, seeded from
//! the plan) or a kubeconfig context, with the matching source and prober.

use crate::checks::probe::{Prober, RealProber, SimProber};
use crate::cluster::client::{choose_target, connect, is_sim, Mode, Target};
use crate::cluster::forklift::SourceConn;
use crate::engine::WindowClock;
use crate::plan::{Plan, PowerOff, SourceKind};
use crate::sim::controllers::rehearsal::Rehearsal;
use crate::sim::controllers::scenario::Scenario;
use crate::source::vsphere::VsphereClient;
use crate::source::{Credentials, Secret, SourceOps};
use k8s_openapi::api::core::v1::Secret as KSecret;
use kube::api::Api;
use std::sync::Arc;

/// How the run talks to the world.
pub struct Connected {
    pub client: kube::Client,
    pub source: Option<Arc<dyn SourceOps>>,
    pub prober: Arc<dyn Prober>,
    /// `SIM` or the context name, for headers and logs.
    pub label: String,
    pub mode: Mode,
    /// The kubeconfig of the in-process rehearsal (kubectl can look at it meanwhile).
    pub sim_kubeconfig: Option<std::path::PathBuf>,
    /// Keeps the in-process rehearsal alive.
    pub _rehearsal: Option<Rehearsal>,
    /// The rehearsal world's clock, which change windows are judged by (`None`: a real
    /// cluster, the wall clock).
    pub window_clock: Option<WindowClock>,
    /// The Forklift backend: the credentials and vCenter endpoint for Forklift's source
    /// Provider (`None`: CDI, or `forklift_provider` names an existing Provider).
    pub forklift_source: Option<(Credentials, SourceConn)>,
}

/// The rehearsal's vCenter as Forklift's source Provider sees it: the sim's own address
/// (`https://<addr>/sdk`; its certificate is a fixture the simulated Forklift only checks
/// is there).
fn sim_forklift(plan: &Plan, addr: &str, creds: &Credentials) -> Option<(Credentials, SourceConn)> {
    (plan.meta.backend.value == crate::plan::Backend::Forklift
        && plan.meta.forklift_provider.is_none())
    .then(|| {
        (
            creds.clone(),
            SourceConn {
                url: format!("https://{addr}/sdk"),
                ca_pem: crate::cluster::forklift::pem(
                    b"rehearsal: the simulated vCenter has no certificate",
                ),
            },
        )
    })
}

/// [`connect_for`] for a command: a failure is printed and becomes exit code 2 (nothing
/// was sent to the cluster).
pub async fn connect_or_exit(
    plan: &Plan,
    sim: bool,
    context: Option<&str>,
    dry_run: bool,
    rehearsal: &super::RehearsalArgs,
) -> Result<Connected, std::process::ExitCode> {
    connect_for(plan, sim, context, dry_run, rehearsal)
        .await
        .map_err(|e| {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(super::EXIT_INVALID)
        })
}

pub async fn connect_for(
    plan: &Plan,
    sim: bool,
    context: Option<&str>,
    dry_run: bool,
    rehearsal: &super::RehearsalArgs,
) -> anyhow::Result<Connected> {
    match choose_target(sim, context, plan.meta.context.as_deref()) {
        Target::Sim => {
            let mut scenario = Scenario::from_plan(plan);
            if let Some(s) = rehearsal.speed {
                anyhow::ensure!(
                    s.is_finite() && s > 0.0,
                    "--speed must be a positive number"
                );
                scenario.speed = s;
            }
            if let Some(ms) = rehearsal.clock_start_ms()? {
                scenario.clock_start_ms = Some(ms);
            }
            let r = Rehearsal::start(scenario, 0).await?;
            let window_clock = Some(WindowClock {
                start_ms: r.controllers.world.clock_ms(),
                speed: r.controllers.world.speed(),
            });
            // A kubeconfig for kubectl while the rehearsal runs (best effort).
            let sim_kubeconfig = crate::logging::log_dir().and_then(|d| {
                let p = d.join(format!("rehearsal-{}.kubeconfig", std::process::id()));
                super::sim::write_kubeconfig(&p, &r.sim.url()).ok()?;
                Some(p)
            });
            let creds = Credentials {
                user: "sim-user".into(),
                password: Secret::new("sim-password"),
            };
            let forklift_source = sim_forklift(plan, &r.sim.addr.to_string(), &creds);
            let source: Arc<dyn SourceOps> = Arc::new(
                VsphereClient::new(&r.world_url, None, creds)?
                    .with_task_poll(sim_task_poll(r.controllers.world.speed())),
            );
            Ok(Connected {
                client: r.client(),
                source: Some(source),
                prober: Arc::new(SimProber::new(r.world_url.clone())),
                label: format!("SIM {}", r.sim.url()),
                mode: if dry_run {
                    Mode::DryRun
                } else {
                    Mode::Rehearsal
                },
                sim_kubeconfig,
                _rehearsal: Some(r),
                window_clock,
                forklift_source,
            })
        }
        Target::Context(ctx) => {
            let conn = connect(ctx.as_deref()).await?;
            if is_sim(&conn.client).await {
                // `wavelift sim serve`: its vSphere endpoint and network share the API port.
                let creds = sim_credentials(plan, &conn.client).await;
                let prober = SimProber::new(conn.url.clone());
                let window_clock = prober
                    .clock()
                    .await
                    .map(|(start_ms, speed)| WindowClock { start_ms, speed })
                    .ok();
                let poll = sim_task_poll(window_clock.map_or(1.0, |c| c.speed));
                let addr = conn
                    .url
                    .split("://")
                    .last()
                    .unwrap_or_default()
                    .trim_end_matches('/')
                    .to_string();
                let forklift_source = sim_forklift(plan, &addr, &creds);
                let source: Arc<dyn SourceOps> =
                    Arc::new(VsphereClient::new(&conn.url, None, creds)?.with_task_poll(poll));
                return Ok(Connected {
                    client: conn.client,
                    source: Some(source),
                    prober: Arc::new(prober),
                    label: format!("SIM {} ({})", conn.url, conn.context),
                    mode: if dry_run {
                        Mode::DryRun
                    } else {
                        Mode::Rehearsal
                    },
                    sim_kubeconfig: std::env::var_os("KUBECONFIG").map(Into::into),
                    _rehearsal: None,
                    window_clock,
                    forklift_source,
                });
            }
            let source = vsphere_source(plan, &conn.client).await?;
            let forklift_source = real_forklift(plan, &conn.client).await?;
            Ok(Connected {
                client: conn.client,
                source,
                prober: Arc::new(RealProber::default()),
                label: conn.context,
                mode: if dry_run { Mode::DryRun } else { Mode::Live },
                sim_kubeconfig: None,
                _rehearsal: None,
                window_clock: None,
                forklift_source,
            })
        }
    }
}

/// Credentials for the sim's vSphere endpoint: the plan's Secret when present.
async fn sim_credentials(plan: &Plan, client: &kube::Client) -> Credentials {
    let fallback = Credentials {
        user: "sim-user".into(),
        password: Secret::new("sim-password"),
    };
    let Some(name) = &plan.source.credentials_secret else {
        return fallback;
    };
    let api: Api<KSecret> = Api::namespaced(client.clone(), plan.meta.namespace.as_str());
    match api.get(name.as_str()).await {
        Ok(s) => {
            let data = s
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect();
            Credentials::from_secret_data(&data).unwrap_or(fallback)
        }
        Err(_) => fallback,
    }
}

/// The Forklift backend on a real cluster: vCenter's credentials (environment, else the
/// plan's credentials Secret) and its certificate, fetched over a connection pinned by the
/// plan's `thumbprint`, for the source Provider wavelift writes.
async fn real_forklift(
    plan: &Plan,
    client: &kube::Client,
) -> anyhow::Result<Option<(Credentials, SourceConn)>> {
    if plan.meta.backend.value != crate::plan::Backend::Forklift
        || plan.meta.forklift_provider.is_some()
    {
        return Ok(None);
    }
    let (Some(url), Some(thumb)) = (&plan.source.url, &plan.source.thumbprint) else {
        anyhow::bail!("backend = \"forklift\" without `forklift_provider` needs [source] url and thumbprint for Forklift's source Provider");
    };
    let creds = vsphere_credentials(plan, client).await?;
    let conn = crate::engine::forklift_preflight::source_conn(url.as_str(), thumb.as_str())
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    Ok(Some((creds, conn)))
}

/// vCenter's credentials: the environment, else the plan's credentials Secret.
async fn vsphere_credentials(plan: &Plan, client: &kube::Client) -> anyhow::Result<Credentials> {
    if let Some(c) = Credentials::from_env() {
        return Ok(c);
    }
    let Some(name) = &plan.source.credentials_secret else {
        anyhow::bail!("vCenter credentials: a Secret or WAVELIFT_VSPHERE_USER/PASSWORD");
    };
    let api: Api<KSecret> = Api::namespaced(client.clone(), plan.meta.namespace.as_str());
    let secret = api
        .get(name.as_str())
        .await
        .map_err(|e| anyhow::anyhow!("Secret {}: {e}", name.value))?;
    let data = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    Credentials::from_secret_data(&data).ok_or_else(|| {
        anyhow::anyhow!(
            "Secret {} has no accessKeyId/secretKey (or username/password)",
            name.value
        )
    })
}

/// The vSphere client for `power_off = "vsphere-api"`: credentials from the environment, else
/// from the plan's credentials Secret.
async fn vsphere_source(
    plan: &Plan,
    client: &kube::Client,
) -> anyhow::Result<Option<Arc<dyn SourceOps>>> {
    if plan.source.power_off != PowerOff::VsphereApi {
        return Ok(None);
    }
    let Some(url) = &plan.source.url else {
        return Ok(None);
    };
    let creds = match Credentials::from_env() {
        Some(c) => c,
        None => {
            let Some(name) = &plan.source.credentials_secret else {
                anyhow::bail!("power_off = \"vsphere-api\" needs credentials: a Secret or WAVELIFT_VSPHERE_USER/PASSWORD");
            };
            let api: Api<KSecret> = Api::namespaced(client.clone(), plan.meta.namespace.as_str());
            let secret = api
                .get(name.as_str())
                .await
                .map_err(|e| anyhow::anyhow!("Secret {}: {e}", name.value))?;
            let data = secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect();
            Credentials::from_secret_data(&data).ok_or_else(|| {
                anyhow::anyhow!(
                    "Secret {} has no accessKeyId/secretKey (or username/password)",
                    name.value
                )
            })?
        }
    };
    let thumb = if plan.source.kind == SourceKind::Vsphere {
        plan.source.thumbprint.as_ref().map(|t| t.as_str())
    } else {
        None
    };
    Ok(Some(Arc::new(VsphereClient::new(
        url.as_str(),
        thumb,
        creds,
    )?)))
}

/// How often to poll a vCenter task of the rehearsal world, whose clock runs `speed` times
/// faster: every simulated second, at least every 5 ms and at most every second.
fn sim_task_poll(speed: f64) -> std::time::Duration {
    std::time::Duration::from_secs_f64((1.0 / speed.max(1e-6)).clamp(0.005, 1.0))
}

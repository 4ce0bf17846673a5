//! A whole rehearsal environment in-process: the API server seeded from a scenario, the
//! simulated controllers, and the world endpoints (vSphere REST, network probes).

use super::endpoints::{self, VcenterFaults, WorldState};
use super::scenario::Scenario;
use super::Controllers;
use crate::sim::{self, SimHandle, SimOptions};
use std::sync::Arc;

pub struct Rehearsal {
    pub sim: SimHandle,
    pub controllers: Controllers,
    /// Base URL of the world endpoints (`/api/vcenter/…`, `/sim/v1/probe`): the API's own.
    pub world_url: String,
    /// The vSphere endpoint's fault and request counters.
    pub vcenter: Arc<VcenterFaults>,
}

impl Rehearsal {
    /// Starts the sim on `port` (0: any free port) with `scenario`.
    pub async fn start(scenario: Scenario, port: u16) -> anyhow::Result<Rehearsal> {
        let opts = SimOptions {
            port,
            extra_objects: scenario.seed_objects(),
            faults: sim::ApiFaults {
                error_rate: scenario.api_error_rate,
                error_code: scenario.api_error_code,
                latency: std::time::Duration::from_millis(scenario.api_latency_ms),
                seed: scenario.seed,
            },
            watch_max_duration: scenario
                .watch_drop_seconds
                .map(std::time::Duration::from_secs_f64),
            kubevirt_webhooks: true,
            // bridge-marker (kubevirt/bridge-marker `pkg/marker/marker.go`) advertises each
            // host bridge as a node resource with a capacity of 1000.
            node_resources: scenario
                .node_bridges
                .iter()
                .map(|b| {
                    (
                        format!("{}{b}", crate::cluster::build::BRIDGE_RESOURCE),
                        "1k".to_string(),
                    )
                })
                .collect(),
            bare_nodes: scenario.bridgeless_nodes.clone(),
            access: sim::access::Authorizer {
                deny: scenario.rbac_deny.clone(),
            },
            crds: scenario.forklift.crds(),
            ..SimOptions::default()
        };
        let extension = opts.extension.clone();
        let sim = sim::start(opts).await?;
        let vcenter = Arc::new(VcenterFaults::new(
            scenario.vcenter_error_rate,
            scenario.seed,
        ));
        let login = (
            scenario.vcenter_user.clone(),
            scenario.vcenter_password.clone(),
        );
        let forklift = scenario.forklift.installed;
        let forklift_scenario = Arc::new(scenario.clone());
        let mut controllers = super::spawn(sim.controller_client(), scenario);
        if forklift {
            // Forklift's controller, once its operator is installed; it reaches the
            // simulated vCenter at the API's own address (`/sdk`).
            controllers.tasks.push(tokio::spawn(super::forklift::run(
                super::forklift::Forklift {
                    client: sim.controller_client(),
                    scenario: forklift_scenario,
                    world: controllers.world.clone(),
                    clock: super::SimClock {
                        speed: controllers.world.speed(),
                    },
                    vcenter: sim.addr.to_string(),
                },
            )));
        }
        let state = WorldState::new(controllers.world.clone(), vcenter.clone())
            .with_credentials(&login.0, &login.1);
        let _ = extension.set(crate::sim::server::Extension {
            router: endpoints::router(state),
            handles: endpoints::handles,
        });
        let world_url = sim.url();
        Ok(Rehearsal {
            sim,
            controllers,
            world_url,
            vcenter,
        })
    }

    pub fn client(&self) -> kube::Client {
        self.sim.client()
    }
}

//! A whole rehearsal environment in-process: the API server seeded from a scenario, the
//! simulated controllers, and the world endpoints (vSphere REST, network probes).

use super::endpoints::{self, WorldState};
use super::scenario::Scenario;
use super::Controllers;
use crate::sim::{self, SimHandle, SimOptions};
use std::net::SocketAddr;

pub struct Rehearsal {
    pub sim: SimHandle,
    pub controllers: Controllers,
    /// Base URL of the world endpoints (`/api/vcenter/…`, `/sim/v1/probe`).
    pub world_url: String,
    world_task: tokio::task::JoinHandle<()>,
}

impl Drop for Rehearsal {
    fn drop(&mut self) {
        self.world_task.abort();
    }
}

impl Rehearsal {
    /// Starts the sim on `port` (0: any free port) with `scenario`.
    pub async fn start(scenario: Scenario, port: u16) -> anyhow::Result<Rehearsal> {
        let opts = SimOptions {
            port,
            extra_objects: scenario.seed_objects(),
            ..SimOptions::default()
        };
        let sim = sim::start(opts).await?;
        let controllers = super::spawn(sim.client(), scenario);
        let state = WorldState::new(controllers.world.clone(), controllers.stores.clone());
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let app = endpoints::router(state);
        let world_task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Rehearsal {
            sim,
            controllers,
            world_url: format!("http://{addr}"),
            world_task,
        })
    }

    pub fn client(&self) -> kube::Client {
        self.sim.client()
    }
}

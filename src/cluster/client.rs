//! Which cluster to talk to: a kubeconfig context (like kubectl: `KUBECONFIG`, `--context`,
//! the plan's `context`, the current context, in-cluster config), or the embedded sim when no
//! kubeconfig exists or `--sim` is given.

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// Where the run goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The embedded rehearsal cluster, started in-process.
    Sim,
    /// A kubeconfig context (`None`: the current context).
    Context(Option<String>),
}

/// Decides the target: `--sim` wins, then `--context`; with no kubeconfig anywhere (and not
/// in a pod) the sim, even when the plan names a context (a rehearsal cannot reach it
/// anyway, and the UI says REHEARSAL); otherwise the plan's `context` or the current one.
pub fn choose_target(sim: bool, context: Option<&str>, plan_context: Option<&str>) -> Target {
    if sim {
        return Target::Sim;
    }
    if let Some(c) = context {
        return Target::Context(Some(c.to_string()));
    }
    if !(kubeconfig_exists() || std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()) {
        return Target::Sim;
    }
    Target::Context(plan_context.map(str::to_string))
}

fn kubeconfig_exists() -> bool {
    if let Some(paths) = std::env::var_os("KUBECONFIG") {
        return std::env::split_paths(&paths).any(|p| p.is_file());
    }
    dirs::home_dir().is_some_and(|h| h.join(".kube").join("config").is_file())
}

/// A client for a kubeconfig context (or in-cluster config when no kubeconfig exists).
pub async fn connect(context: Option<&str>) -> anyhow::Result<(Client, String)> {
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    let config = match Kubeconfig::read() {
        Ok(kc) => {
            let name = context
                .map(str::to_string)
                .or_else(|| kc.current_context.clone())
                .unwrap_or_else(|| "default".to_string());
            let cfg = Config::from_custom_kubeconfig(kc, &options).await?;
            return Ok((Client::try_from(cfg)?, name));
        }
        Err(_) => Config::incluster()?,
    };
    Ok((Client::try_from(config)?, "in-cluster".to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_choices_win() {
        assert_eq!(choose_target(true, Some("prod"), None), Target::Sim);
        assert_eq!(
            choose_target(false, Some("prod"), Some("plan")),
            Target::Context(Some("prod".into()))
        );
    }
}

//! The target guard: every address a webhook's host name resolves to is checked before the
//! client connects (DNS rebinding gains nothing: the address connected to is one checked), and
//! a name is checked once at creation too.

use loyalty_core::webhooks::{address_is_private, TargetPolicy, TargetUrl};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::SocketAddr;
use std::time::Duration;

/// How long creation waits for a name to resolve; a name that does not resolve in time is
/// accepted (it is checked again at every delivery).
const CREATION_LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// The client's resolver: the system's, with the addresses the policy refuses left out; a
/// name left with none fails to connect.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GuardedResolver {
    pub(crate) policy: TargetPolicy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = resolved
                .iter()
                .copied()
                .filter(|address| policy.allows(address.ip()))
                .collect();
            if allowed.is_empty() && !resolved.is_empty() {
                return Err(Box::new(Refused) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// A target refused by the policy.
#[derive(Debug, thiserror::Error)]
#[error("refused: the target resolves only to loopback, private or link-local addresses (the server sends there only with --allow-private-webhook-targets)")]
pub(crate) struct Refused;

/// At creation: refuses a URL whose host is a private address, `localhost`, or a name that
/// resolves to any private address.
pub(crate) async fn check_at_creation(url: &str, policy: TargetPolicy) -> Result<(), String> {
    if policy.allow_private {
        return Ok(());
    }
    let target = TargetUrl::parse(url)?;
    target.check_literal_host()?;
    let Some(name) = target.host_name() else {
        return Ok(());
    };
    let lookup = tokio::net::lookup_host((name, target.port()));
    if let Ok(Ok(addresses)) = tokio::time::timeout(CREATION_LOOKUP_TIMEOUT, lookup).await {
        for address in addresses {
            if address_is_private(address.ip()) {
                return Err(format!(
                    "the target's name resolves to {}, a loopback, private or link-local \
                     address; the server refuses those unless it runs with \
                     --allow-private-webhook-targets",
                    address.ip()
                ));
            }
        }
    }
    Ok(())
}

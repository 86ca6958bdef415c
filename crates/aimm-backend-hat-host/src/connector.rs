//! [`HatConnector`]: the loader's [`EventConnector`] for Hat event servers,
//! one server or the active one of a redundant group.

use crate::client::{HatClientConfig, HatEventClient, ServerTarget};
use aimm_backend_api::{BackendError, ErrorKind};
use aimm_backend_loader::{ConnectRequest, Connected, EventConnector, EventTarget};
use hat_monitor_client::{follow_active, FollowConfig};
use std::time::{Duration, Instant};

/// Connects [`HatEventClient`]s on the calling thread's tokio runtime.
#[derive(Debug, Default, Clone, Copy)]
pub struct HatConnector;

/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Longest wait between attempts to reach the monitor: the monitor is what
/// says where to write, so it is tried again sooner.
const MAX_MONITOR_BACKOFF: Duration = Duration::from_secs(1);

impl EventConnector for HatConnector {
    fn connect(&self, request: &ConnectRequest) -> Result<Connected, BackendError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            BackendError::new(
                ErrorKind::Unavailable,
                "the event server connection needs a tokio runtime",
            )
        })?;
        let target = match &request.target {
            EventTarget::Server(server) => ServerTarget::Fixed(server.address()),
            EventTarget::Monitor(monitor) => {
                let group = monitor.event_server_group.clone().unwrap_or_default();
                let active = follow_active(FollowConfig {
                    monitor: monitor.address(),
                    name: request.client_name.clone(),
                    group: monitor.group.clone(),
                    server_group: group.clone(),
                    client_token: None,
                    timeout: request.timeout,
                    max_backoff: MAX_MONITOR_BACKOFF,
                });
                ServerTarget::Followed { group, active }
            }
        };
        let (client, events) = HatEventClient::start(
            runtime,
            HatClientConfig {
                target,
                client_name: request.client_name.clone(),
                subscriptions: request.subscriptions.clone(),
                timeout: request.timeout,
                idle_timeout: request.idle_timeout,
                query_timeout: request.query_timeout,
                max_backoff: MAX_BACKOFF,
            },
        );
        wait_connected(&client, &request.target, request.timeout)?;
        Ok((client, events))
    }
}

/// Blocks until `client` is connected, or fails once `timeout` has passed.
fn wait_connected(
    client: &HatEventClient,
    target: &EventTarget,
    timeout: Duration,
) -> Result<(), BackendError> {
    let deadline = Instant::now() + timeout;
    while !client.is_connected() {
        if Instant::now() >= deadline {
            return Err(BackendError::new(
                ErrorKind::Unavailable,
                format!("{target} is unavailable: no connection within {timeout:?}"),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

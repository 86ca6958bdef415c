//! [`HatConnector`]: the loader's [`EventConnector`] for Hat event servers.

use crate::client::{HatClientConfig, HatEventClient};
use aimm_backend_api::{BackendError, ErrorKind};
use aimm_backend_loader::{ConnectRequest, Connected, EventConnector};
use std::time::{Duration, Instant};

/// Connects [`HatEventClient`]s on the calling thread's tokio runtime.
#[derive(Debug, Default, Clone, Copy)]
pub struct HatConnector;

/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

impl EventConnector for HatConnector {
    fn connect(&self, request: &ConnectRequest) -> Result<Connected, BackendError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            BackendError::new(
                ErrorKind::Unavailable,
                "the event server connection needs a tokio runtime",
            )
        })?;
        let (client, events) = HatEventClient::start(
            runtime,
            HatClientConfig {
                address: request.address.clone(),
                client_name: request.client_name.clone(),
                subscriptions: request.subscriptions.clone(),
                timeout: request.timeout,
                idle_timeout: request.idle_timeout,
                max_backoff: MAX_BACKOFF,
            },
        );
        wait_connected(&client, &request.address, request.timeout)?;
        Ok((client, events))
    }
}

/// Blocks until `client` is connected, or fails once `timeout` has passed.
fn wait_connected(
    client: &HatEventClient,
    address: &str,
    timeout: Duration,
) -> Result<(), BackendError> {
    let deadline = Instant::now() + timeout;
    while !client.is_connected() {
        if Instant::now() >= deadline {
            return Err(BackendError::new(
                ErrorKind::Unavailable,
                format!(
                    "Hat event server at {address} is unavailable: no connection within {timeout:?}"
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

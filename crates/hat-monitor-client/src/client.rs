//! A component's connection to its monitor server, and [`follow_active`]:
//! the address of a group's active event server, kept current.

use crate::active::{active_server, ServerData};
use crate::msg::{BlessingRes, MsgClient, MsgClose, MsgServer};
use hat_eventer_client::chatter::Data;
use hat_eventer_client::connection::{connect as chatter_connect, ChatterConfig, ChatterError};
use hat_eventer_client::connection::{Received, Sender};
use hat_eventer_client::eventer_msg::{decode_body, encode, Message};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Why a monitor connection failed or ended.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MonitorError {
    /// The transport failed.
    #[error(transparent)]
    Chatter(#[from] ChatterError),
    /// Connecting took longer than allowed.
    #[error("no connection to the monitor within {0:?}")]
    Timeout(Duration),
    /// The monitor sent something this client does not understand.
    #[error("monitor protocol: {0}")]
    Protocol(String),
}

/// A component connected to its monitor: it announced itself, never ready
/// for blessing (it follows other components, it is not one the monitor
/// should bless), and reads the monitor's state as it changes.
pub struct Component {
    sender: Sender,
    incoming: mpsc::Receiver<Result<Received, ChatterError>>,
}

impl Component {
    /// Connects to the monitor at `address` (`host:port`) as component
    /// `name` of `group`, within `timeout`.
    pub async fn connect(
        address: &str,
        name: &str,
        group: &str,
        timeout: Duration,
    ) -> Result<Component, MonitorError> {
        let (sender, incoming) =
            tokio::time::timeout(timeout, chatter_connect(address, ChatterConfig::default()))
                .await
                .map_err(|_| MonitorError::Timeout(timeout))??;
        let hello = MsgClient {
            name: name.into(),
            group: group.into(),
            data: "null".into(),
            blessing_res: BlessingRes {
                token: None,
                ready: false,
            },
        };
        let data = Data {
            data_type: MsgClient::TYPE.into(),
            data: encode(&hello).into(),
        };
        sender.send(data, None, true).await?;
        Ok(Component { sender, incoming })
    }

    /// The monitor's next state; `None` once the monitor has asked the
    /// component to close or closed the connection.
    pub async fn next_state(&mut self) -> Result<Option<MsgServer>, MonitorError> {
        let Some(received) = self.incoming.recv().await else {
            return Ok(None);
        };
        let data = match received {
            Ok(received) => received.data,
            Err(ChatterError::Closed) => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        if data.data_type == MsgClose::TYPE {
            return Ok(None);
        }
        if data.data_type != MsgServer::TYPE {
            return Err(MonitorError::Protocol(format!(
                "expected {} or {}, got {}",
                MsgServer::TYPE,
                MsgClose::TYPE,
                data.data_type
            )));
        }
        decode_body(data.data)
            .map(Some)
            .map_err(|err| MonitorError::Protocol(format!("{}: {err}", MsgServer::TYPE)))
    }

    /// Closes the connection.
    pub async fn close(&self) {
        self.sender.close().await;
    }
}

/// What [`follow_active`] needs to know.
#[derive(Debug, Clone)]
pub struct FollowConfig {
    /// `host:port` of the monitor server.
    pub monitor: String,
    /// The component name to announce.
    pub name: String,
    /// The component group to announce.
    pub group: String,
    /// The group of the event servers to follow.
    pub server_group: String,
    /// Only a server publishing this `server_token`, if set.
    pub client_token: Option<String>,
    /// Bound on connecting to the monitor.
    pub timeout: Duration,
    /// Longest wait between reconnection attempts.
    pub max_backoff: Duration,
}

/// Follows the active event server of `config.server_group` on the
/// current tokio runtime: the returned receiver holds its data while there
/// is one, and `None` while there is none (no server blessed yet, a
/// fail-over under way, the monitor unreachable). The follower reconnects
/// to the monitor with backoff (waits from 0.1 s, doubling up to
/// `max_backoff`, back to 0.1 s once a monitor has sent its state), and
/// stops once every receiver is dropped.
pub fn follow_active(config: FollowConfig) -> watch::Receiver<Option<ServerData>> {
    let (active, receiver) = watch::channel(None);
    tokio::spawn(async move {
        tokio::select! {
            () = follow(&config, &active) => {}
            () = active.closed() => {}
        }
    });
    receiver
}

async fn follow(config: &FollowConfig, active: &watch::Sender<Option<ServerData>>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match Component::connect(&config.monitor, &config.name, &config.group, config.timeout).await
        {
            Ok(mut component) => {
                tracing::info!(monitor = %config.monitor, "connected to the Hat monitor");
                let mut heard = false;
                let ended = track(config, &mut component, active, &mut heard).await;
                component.close().await;
                // Only a monitor that said something is healthy: one that
                // closes at once is waited for longer each time.
                if heard {
                    backoff = Duration::from_millis(100);
                }
                match ended {
                    Ok(()) => {
                        tracing::warn!(monitor = %config.monitor, "the Hat monitor closed the connection")
                    }
                    Err(err) => {
                        tracing::warn!(monitor = %config.monitor, "lost the Hat monitor: {err}")
                    }
                }
            }
            Err(err) => {
                tracing::debug!(monitor = %config.monitor, "connecting to the Hat monitor: {err}");
            }
        }
        // Without the monitor nobody says which server is active.
        set_active(config, active, None);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(config.max_backoff);
    }
}

/// Publishes the active server of every state `component` reads, until
/// the monitor ends the connection; `heard` is set once a state arrived.
async fn track(
    config: &FollowConfig,
    component: &mut Component,
    active: &watch::Sender<Option<ServerData>>,
    heard: &mut bool,
) -> Result<(), MonitorError> {
    while let Some(state) = component.next_state().await? {
        *heard = true;
        let server = active_server(
            &state.components,
            &config.server_group,
            config.client_token.as_deref(),
        );
        set_active(config, active, server);
    }
    Ok(())
}

fn set_active(
    config: &FollowConfig,
    active: &watch::Sender<Option<ServerData>>,
    server: Option<ServerData>,
) {
    active.send_if_modified(|current| {
        if *current == server {
            return false;
        }
        match &server {
            Some(data) => tracing::info!(
                group = %config.server_group,
                server_id = data.server_id,
                address = %data.address,
                "the active Hat event server"
            ),
            None => tracing::warn!(group = %config.server_group, "no active Hat event server"),
        }
        *current = server;
        true
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A "monitor" that accepts connections and closes them at once,
    /// counting them.
    async fn closing_monitor() -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counted = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        (address, accepted)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_monitor_that_keeps_closing_is_retried_with_growing_waits() {
        let (monitor, accepted) = closing_monitor().await;
        let active = follow_active(FollowConfig {
            monitor,
            name: "n".into(),
            group: "g".into(),
            server_group: "event".into(),
            client_token: None,
            timeout: Duration::from_secs(1),
            max_backoff: Duration::from_secs(1),
        });
        tokio::time::sleep(Duration::from_millis(1600)).await;
        // Waits of 0.1, 0.2, 0.4 and 0.8 s: five connections in 1.6 s, and
        // more than 13 if the waits did not grow.
        let count = accepted.load(Ordering::SeqCst);
        assert!((3..=6).contains(&count), "{count} connections in 1.6 s");
        assert_eq!(
            *active.borrow(),
            None,
            "a closed connection names no server"
        );
    }
}

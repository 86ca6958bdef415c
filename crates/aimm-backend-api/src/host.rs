//! What the host lends a plugin when it creates a backend.

use crate::event_client::{EventClient, FFI_EventClient};
use crate::log_sink::{FFI_LogSink, LogSink};
use abi_stable::std_types::ROption;
use abi_stable::StableAbi;
use std::sync::Arc;

/// The host's services, as a plugin sees them.
#[derive(Clone)]
pub struct Host {
    /// Where the plugin's log lines go. Plugins normally just use `log::info!`
    /// and friends, which [`export_backend!`](crate::export_backend) routes here.
    pub log: Arc<dyn LogSink>,
    /// The host's Hat event client, if the server config has `hat.eventer_server`.
    pub event_client: Option<Arc<dyn EventClient>>,
}

/// [`Host`] as a C-compatible struct.
#[repr(C)]
#[derive(StableAbi)]
#[allow(non_camel_case_types)]
pub struct FFI_Host {
    log: FFI_LogSink,
    event_client: ROption<FFI_EventClient>,
}

impl FFI_Host {
    /// Wraps `host` for the boundary (the provider side: the host).
    pub fn new(host: Host) -> Self {
        FFI_Host {
            log: FFI_LogSink::new(host.log),
            event_client: host.event_client.map(FFI_EventClient::new).into(),
        }
    }

    /// Unwraps the received struct into native handles (the receiver side: the plugin).
    pub fn into_foreign(self) -> Host {
        Host {
            log: Arc::new(self.log.into_foreign()),
            event_client: self
                .event_client
                .into_option()
                .map(|client| Arc::new(client.into_foreign()) as Arc<dyn EventClient>),
        }
    }
}

//! A plugin whose config schema does not parse; hosts refuse it at load.

use aimm_backend_api::{Backend, BackendError, BackendPlugin, Host, Result};
use std::sync::Arc;

struct BadSchemaPlugin;

impl BackendPlugin for BadSchemaPlugin {
    const NAME: &'static str = "bad-schema";
    // An unclosed flow sequence: not YAML.
    const CONF_SCHEMA: &'static str = "type: [object\nrequired: [module]\n";
    fn create_backend(_conf: &serde_json::Value, _host: Host) -> Result<Arc<dyn Backend>> {
        Err(BackendError::invalid_config(
            "never opened: the host refuses the schema first",
        ))
    }
}

aimm_backend_api::export_backend!(BadSchemaPlugin);

//! A backend that holds no models and panics on every write.

use aimm_backend_api::{
    Backend, BackendError, BackendPlugin, Event, Host, InstanceId, Model, ModelChangeListener,
    ModelInfo, RString, RVec, Result,
};
use std::sync::Arc;

struct PanickyBackend;

impl Backend for PanickyBackend {
    fn get_models(&self) -> Result<RVec<Model>> {
        Ok(RVec::new())
    }
    fn list_models(&self) -> Result<RVec<ModelInfo>> {
        Ok(RVec::new())
    }
    fn get_model(&self, instance_id: InstanceId) -> Result<Model> {
        Err(BackendError::not_found(instance_id))
    }
    fn create_model(&self, model_type: RString, _instance: RVec<u8>) -> Result<Model> {
        panic!("panicky backend: create_model of a {model_type}")
    }
    fn update_model(&self, model: Model) -> Result<Model> {
        panic!("panicky backend: update_model of {}", model.instance_id)
    }
    fn import_model(&self, model: Model) -> Result<Model> {
        panic!("panicky backend: import_model of {}", model.instance_id)
    }
    fn register_model_change_cb(&self, _: Arc<dyn ModelChangeListener>) -> Result<u64> {
        Ok(0)
    }
    fn unregister_model_change_cb(&self, _: u64) -> Result<()> {
        Ok(())
    }
    fn process_events(&self, _: RVec<Event>) -> Result<()> {
        Ok(())
    }
    fn close(&self) -> Result<()> {
        Ok(())
    }
}

struct PanickyPlugin;

impl BackendPlugin for PanickyPlugin {
    const NAME: &'static str = "panicky";
    const CONF_SCHEMA: &'static str = "type: object\nrequired: [module]\n";
    fn create_backend(_conf: &serde_json::Value, _host: Host) -> Result<Arc<dyn Backend>> {
        Ok(Arc::new(PanickyBackend))
    }
}

aimm_backend_api::export_backend!(PanickyPlugin);

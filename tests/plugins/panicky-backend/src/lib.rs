//! A backend that holds no models and panics on every write (a model of
//! type `own-thread` panics on a thread of the plugin's own), and that logs
//! from every module-level function, for the host's error and log paths.

use aimm_backend_api::{
    Backend, BackendError, BackendPlugin, ErrorKind, Event, EventType, Host, InstanceId, Model,
    ModelChangeListener, ModelInfo, RString, RVec, Result,
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
        if model_type == "own-thread" {
            let worker = std::thread::spawn(|| panic!("panicky backend: its worker thread"));
            let _ = worker.join();
            return Err(BackendError::new(
                ErrorKind::Storage,
                "panicky backend: the worker thread panicked",
            ));
        }
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
    fn create_subscription(_conf: &serde_json::Value) -> Result<Vec<EventType>> {
        log::info!("panicky backend: subscribing to nothing");
        Ok(Vec::new())
    }
    fn scratch_conf(conf: &serde_json::Value, scratch_dir: &str) -> Result<serde_json::Value> {
        log::info!("panicky backend: scratch store in {scratch_dir}");
        Ok(conf.clone())
    }
}

aimm_backend_api::export_backend!(PanickyPlugin);

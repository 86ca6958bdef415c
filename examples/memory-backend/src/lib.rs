//! An AIMM backend plugin that keeps models in memory, like the Python
//! `aimm.server.backend.dummy`: the smallest complete plugin, and the proof
//! that a backend built outside the project can be dropped in.
//!
//! Config: `module: memory_backend`, optional `name` (default `default`).
//! Backends created with the same `name` in one process share one store, so
//! closing and reopening keeps models and never reuses an instance id; the
//! store is gone when the process ends.

use aimm_backend_api::{
    Backend, BackendError, BackendPlugin, Event, Host, InstanceId, ListenerRegistry, Model,
    ModelChangeListener, ModelInfo, RString, RVec, Result,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// The models of one named store.
#[derive(Default)]
struct Store {
    models: BTreeMap<InstanceId, Model>,
    last_id: InstanceId,
}

/// A backend over a shared named store.
struct MemoryBackend {
    store: Arc<Mutex<Store>>,
    listeners: ListenerRegistry,
}

impl MemoryBackend {
    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn named_store(name: &str) -> Arc<Mutex<Store>> {
    static STORES: OnceLock<Mutex<HashMap<String, Arc<Mutex<Store>>>>> = OnceLock::new();
    let mut stores = STORES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    stores.entry(name.to_string()).or_default().clone()
}

impl Backend for MemoryBackend {
    fn get_models(&self) -> Result<RVec<Model>> {
        Ok(self.store().models.values().cloned().collect())
    }

    fn list_models(&self) -> Result<RVec<ModelInfo>> {
        Ok(self.store().models.values().map(Model::info).collect())
    }

    fn get_model(&self, instance_id: InstanceId) -> Result<Model> {
        self.store()
            .models
            .get(&instance_id)
            .cloned()
            .ok_or(BackendError::not_found(instance_id))
    }

    fn create_model(&self, model_type: RString, instance: RVec<u8>) -> Result<Model> {
        let model = {
            let mut store = self.store();
            store.last_id += 1;
            let model = Model {
                instance_id: store.last_id,
                model_type,
                instance,
            };
            store.models.insert(model.instance_id, model.clone());
            model
        };
        self.listeners.notify(&model);
        Ok(model)
    }

    fn update_model(&self, model: Model) -> Result<Model> {
        {
            let mut store = self.store();
            let slot = store
                .models
                .get_mut(&model.instance_id)
                .ok_or(BackendError::not_found(model.instance_id))?;
            *slot = model.clone();
        }
        self.listeners.notify(&model);
        Ok(model)
    }

    fn import_model(&self, model: Model) -> Result<Model> {
        {
            let mut store = self.store();
            if store.models.contains_key(&model.instance_id) {
                return Err(BackendError::conflict(model.instance_id));
            }
            store.last_id = store.last_id.max(model.instance_id);
            store.models.insert(model.instance_id, model.clone());
        }
        self.listeners.notify(&model);
        Ok(model)
    }

    fn register_model_change_cb(&self, listener: Arc<dyn ModelChangeListener>) -> Result<u64> {
        Ok(self.listeners.register(listener))
    }

    fn unregister_model_change_cb(&self, registration: u64) -> Result<()> {
        self.listeners.unregister(registration);
        Ok(())
    }

    fn process_events(&self, _events: RVec<Event>) -> Result<()> {
        Ok(())
    }

    fn close(&self) -> Result<()> {
        Ok(())
    }
}

/// The plugin: `module: memory_backend`.
pub struct MemoryPlugin;

impl BackendPlugin for MemoryPlugin {
    const NAME: &'static str = "memory";
    const CONF_SCHEMA: &'static str = r#"
type: object
properties:
    module: {type: string}
    name: {type: string, minLength: 1}
"#;

    fn create_backend(conf: &serde_json::Value, _host: Host) -> Result<Arc<dyn Backend>> {
        let name = conf["name"].as_str().unwrap_or("default");
        log::info!("memory store `{name}` opened");
        Ok(Arc::new(MemoryBackend {
            store: named_store(name),
            listeners: ListenerRegistry::default(),
        }))
    }

    fn scratch_conf(conf: &serde_json::Value, scratch_dir: &str) -> Result<serde_json::Value> {
        let mut scratch = conf.clone();
        scratch["name"] = format!("scratch:{scratch_dir}").into();
        Ok(scratch)
    }
}

aimm_backend_api::export_backend!(MemoryPlugin);

// The conformance suite in-process, as a plugin's own `cargo test` runs
// it: the plugin's own `BackendPlugin`, no library loaded.
#[cfg(test)]
mod tests {
    use super::MemoryPlugin;
    use aimm_backend_conformance::{run, InProcessTarget};

    #[test]
    fn the_memory_backend_passes_conformance() {
        let conf = serde_json::json!({"module": "memory_backend"});
        let target = InProcessTarget::<MemoryPlugin>::scratch(conf).unwrap();
        let report = run(&target);
        assert!(report.all_passed(), "{report}");
    }
}

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use aimm_backend_api::{
    Backend, BackendError, BackendPlugin, Event, Host, InstanceId, ListenerRegistry,
    Model, ModelChangeListener, ModelInfo, Result, RString, RVec,
};

/// One named store: its models, and the last id handed out.
#[derive(Default)]
struct Store {
    models: BTreeMap<InstanceId, Model>,
    last_id: InstanceId,
}

struct MapBackend {
    store: Arc<Mutex<Store>>,
    listeners: ListenerRegistry,
}

impl MapBackend {
    /// A backend on store `name`: backends on one name share it, so
    /// models survive reopening (as the suite checks).
    fn open(name: &str) -> Self {
        static STORES: OnceLock<Mutex<HashMap<String, Arc<Mutex<Store>>>>> = OnceLock::new();
        let mut stores = STORES.get_or_init(Default::default).lock().unwrap();
        let store = stores.entry(name.to_string()).or_default().clone();
        MapBackend { store, listeners: ListenerRegistry::default() }
    }

    /// Stores `model` with `check` passed under the store's lock, then
    /// tells the listeners.
    fn put(&self, model: Model, check: impl FnOnce(&Store) -> Result<()>) -> Result<Model> {
        {
            let mut store = self.store.lock().unwrap();
            check(&store)?;
            store.last_id = store.last_id.max(model.instance_id);
            store.models.insert(model.instance_id, model.clone());
        }
        self.listeners.notify(&model);
        Ok(model)
    }
}

impl Backend for MapBackend {
    fn get_models(&self) -> Result<RVec<Model>> {
        Ok(self.store.lock().unwrap().models.values().cloned().collect())
    }
    fn list_models(&self) -> Result<RVec<ModelInfo>> {
        Ok(self.store.lock().unwrap().models.values().map(Model::info).collect())
    }
    fn get_model(&self, id: InstanceId) -> Result<Model> {
        let store = self.store.lock().unwrap();
        store.models.get(&id).cloned().ok_or(BackendError::not_found(id))
    }
    fn create_model(&self, model_type: RString, instance: RVec<u8>) -> Result<Model> {
        let model = {
            let mut store = self.store.lock().unwrap();
            store.last_id += 1;
            let model = Model { instance_id: store.last_id, model_type, instance };
            store.models.insert(model.instance_id, model.clone());
            model
        };
        self.listeners.notify(&model);
        Ok(model)
    }
    fn update_model(&self, model: Model) -> Result<Model> {
        let id = model.instance_id;
        self.put(model, |store| match store.models.contains_key(&id) {
            true => Ok(()),
            false => Err(BackendError::not_found(id)),
        })
    }
    fn import_model(&self, model: Model) -> Result<Model> {
        let id = model.instance_id;
        self.put(model, |store| match store.models.contains_key(&id) {
            true => Err(BackendError::conflict(id)),
            false => Ok(()),
        })
    }
    fn register_model_change_cb(&self, listener: Arc<dyn ModelChangeListener>) -> Result<u64> {
        Ok(self.listeners.register(listener))
    }
    fn unregister_model_change_cb(&self, registration: u64) -> Result<()> {
        self.listeners.unregister(registration);
        Ok(())
    }
    fn process_events(&self, _: RVec<Event>) -> Result<()> {
        Ok(()) // no subscription, so no events
    }
    fn close(&self) -> Result<()> {
        Ok(()) // nothing to flush
    }
}

struct MapPlugin;

impl BackendPlugin for MapPlugin {
    const NAME: &'static str = "map";
    const CONF_SCHEMA: &'static str = "
type: object
required: [module]
properties:
    module: {type: string}
    name: {type: string}
";
    fn create_backend(conf: &serde_json::Value, _host: Host) -> Result<Arc<dyn Backend>> {
        let name = conf["name"].as_str().unwrap_or("default");
        log::info!("map store {name} opened"); // ends up in the host's log
        Ok(Arc::new(MapBackend::open(name)))
    }
    fn scratch_conf(conf: &serde_json::Value, scratch_dir: &str) -> Result<serde_json::Value> {
        let mut scratch = conf.clone();
        scratch["name"] = format!("scratch {scratch_dir}").into();
        Ok(scratch)
    }
}

aimm_backend_api::export_backend!(MapPlugin);

//! [`BackendHandle`]: a loaded backend with async methods for the host.

use crate::library::PluginLibrary;
use aimm_backend_api::{
    Backend, BackendError, ErrorKind, Event, InstanceId, Model, ModelChangeListener, ModelInfo,
    RString, RVec, Result,
};
use std::sync::Arc;

/// A backend created by a plugin library.
///
/// The async methods run each (blocking) plugin call on tokio's blocking
/// pool, so they never stall the async threads; [`BackendHandle::backend`]
/// gives the blocking interface itself. Clones share one backend.
#[derive(Clone)]
pub struct BackendHandle {
    backend: Arc<dyn Backend>,
    library: Arc<PluginLibrary>,
}

impl BackendHandle {
    /// Wraps `backend`, created by `library`, for async callers.
    pub fn new(backend: Arc<dyn Backend>, library: Arc<PluginLibrary>) -> Self {
        BackendHandle { backend, library }
    }

    /// The blocking interface.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The library the backend came from.
    pub fn library(&self) -> &Arc<PluginLibrary> {
        &self.library
    }

    async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Backend) -> Result<T> + Send + 'static,
    {
        let backend = self.backend.clone();
        tokio::task::spawn_blocking(move || f(backend.as_ref()))
            .await
            .map_err(|err| {
                BackendError::new(
                    ErrorKind::Panic,
                    format!("backend call did not complete: {err}"),
                )
            })?
    }

    /// [`Backend::get_models`].
    pub async fn get_models(&self) -> Result<RVec<Model>> {
        self.run(|b| b.get_models()).await
    }

    /// [`Backend::list_models`].
    pub async fn list_models(&self) -> Result<RVec<ModelInfo>> {
        self.run(|b| b.list_models()).await
    }

    /// [`Backend::get_model`].
    pub async fn get_model(&self, instance_id: InstanceId) -> Result<Model> {
        self.run(move |b| b.get_model(instance_id)).await
    }

    /// [`Backend::create_model`].
    pub async fn create_model(&self, model_type: RString, instance: RVec<u8>) -> Result<Model> {
        self.run(move |b| b.create_model(model_type, instance))
            .await
    }

    /// [`Backend::update_model`].
    pub async fn update_model(&self, model: Model) -> Result<Model> {
        self.run(move |b| b.update_model(model)).await
    }

    /// [`Backend::import_model`].
    pub async fn import_model(&self, model: Model) -> Result<Model> {
        self.run(move |b| b.import_model(model)).await
    }

    /// [`Backend::register_model_change_cb`].
    pub async fn register_model_change_cb(
        &self,
        listener: Arc<dyn ModelChangeListener>,
    ) -> Result<u64> {
        self.run(move |b| b.register_model_change_cb(listener))
            .await
    }

    /// [`Backend::unregister_model_change_cb`].
    pub async fn unregister_model_change_cb(&self, registration: u64) -> Result<()> {
        self.run(move |b| b.unregister_model_change_cb(registration))
            .await
    }

    /// [`Backend::process_events`].
    pub async fn process_events(&self, events: RVec<Event>) -> Result<()> {
        self.run(move |b| b.process_events(events)).await
    }

    /// [`Backend::close`].
    pub async fn close(&self) -> Result<()> {
        self.run(|b| b.close()).await
    }
}

//! Models as they cross the boundary: opaque bytes with a type name.

use abi_stable::std_types::{RString, RVec};
use abi_stable::StableAbi;

/// The identifier of a stored model instance, unique within one store.
///
/// The Python reference uses SQLite row ids and event-type segments, both
/// integers; we keep the same domain.
pub type InstanceId = i64;

/// A stored model instance: its id, its type name and its serialized bytes.
///
/// The bytes are an [`RVec`], which can be moved between the host and a plugin
/// without copying: each side frees it through the allocator that made it.
///
/// ```
/// use aimm_backend_api::Model;
///
/// let model = Model::new(3, "sklearn.svm.SVC", b"\x80\x04".to_vec());
/// assert_eq!(model.model_type.as_str(), "sklearn.svm.SVC");
/// assert_eq!(model.instance.as_slice(), b"\x80\x04");
/// ```
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct Model {
    /// The id under which the model is stored.
    pub instance_id: InstanceId,
    /// The model type, which the AIMM engine pairs with a (de)serializer.
    pub model_type: RString,
    /// The serialized instance, exactly as stored.
    pub instance: RVec<u8>,
}

impl Model {
    /// A model from plain Rust values.
    pub fn new(
        instance_id: InstanceId,
        model_type: impl Into<String>,
        instance: impl Into<RVec<u8>>,
    ) -> Self {
        Model {
            instance_id,
            model_type: RString::from(model_type.into()),
            instance: instance.into(),
        }
    }

    /// The id, type and size of this model.
    pub fn info(&self) -> ModelInfo {
        ModelInfo {
            instance_id: self.instance_id,
            model_type: self.model_type.clone(),
            size: self.instance.len() as u64,
        }
    }
}

/// What [`Backend::list_models`](crate::Backend::list_models) reports of a
/// model without loading its bytes.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ModelInfo {
    /// The id under which the model is stored.
    pub instance_id: InstanceId,
    /// The model type.
    pub model_type: RString,
    /// The size of the serialized instance in bytes.
    pub size: u64,
}

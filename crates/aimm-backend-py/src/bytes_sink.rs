//! Models read straight into Python `bytes` objects: the [`ModelSink`] that
//! `NativeBackend.get_models` lends the plugin.
//!
//! For each model the sink takes the GIL only to allocate a `bytes` object
//! of the model's size, and lets the plugin write the model into it with the
//! GIL released: one copy from the store into memory Python owns, where
//! returning the plugin's own buffers cost two (the second into freshly
//! faulted pages, as much again as reading).
//!
//! This module holds the package's only `unsafe` code: writing into a
//! `bytes` object before anyone else can see it, which Python's C API allows
//! and PyO3 does not wrap.

use aimm_backend_api::{BackendError, Fill, InstanceId, ModelInfo, ModelSink, Result};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// A stored model as Python gets it: `(instance_id, model_type, bytes)`.
pub(crate) type PyModel<'py> = (InstanceId, String, Bound<'py, PyBytes>);

/// Collects the models a plugin reads, each in a `bytes` object of its own.
#[derive(Default)]
pub(crate) struct BytesSink {
    models: Vec<(InstanceId, String, Py<PyBytes>)>,
}

impl BytesSink {
    /// The models read, in the order they came.
    pub(crate) fn into_models(self, py: Python<'_>) -> Vec<PyModel<'_>> {
        self.models
            .into_iter()
            .map(|(id, model_type, bytes)| (id, model_type, bytes.into_bound(py)))
            .collect()
    }
}

impl ModelSink for BytesSink {
    fn accept(&mut self, info: ModelInfo, fill: &mut Fill<'_>) -> Result<()> {
        let len = usize::try_from(info.size).map_err(|_| too_large(&info))?;
        let (bytes, start) = Python::attach(|py| new_bytes(py, len)).map_err(|err| {
            BackendError::storage(format!(
                "allocating {len} bytes for model {}: {err}",
                info.instance_id
            ))
        })?;
        // SAFETY: `start` points to the `len` bytes of contents of `bytes`,
        // made just now by `new_bytes`; `bytes` is the only reference to the
        // object, held until after the slice is gone, so nothing else reads,
        // writes or frees those bytes meanwhile. No GIL is needed to write
        // the contents of an object no one else can see.
        let buffer = unsafe { zeroed_contents(start, len) };
        fill(buffer)?;
        self.models
            .push((info.instance_id, info.model_type.into_string(), bytes));
        Ok(())
    }
}

fn too_large(info: &ModelInfo) -> BackendError {
    BackendError::storage(format!(
        "model {} has {} bytes, more than this machine can address",
        info.instance_id, info.size
    ))
}

/// A new `bytes` object of `len` bytes, and where its contents start; the
/// contents are not yet written.
fn new_bytes(py: Python<'_>, len: usize) -> PyResult<(Py<PyBytes>, *mut u8)> {
    let ssize = pyo3::ffi::Py_ssize_t::try_from(len)
        .map_err(|_| pyo3::exceptions::PyOverflowError::new_err("model too large"))?;
    // SAFETY: with a null pointer, `PyBytes_FromStringAndSize` allocates
    // `len` bytes of contents left for the caller to write; it returns a new
    // reference, or null with an exception set, which `from_owned_ptr_or_err`
    // takes over. `PyBytes_AsString` of a `bytes` object is where those
    // contents start (the GIL is held for both).
    unsafe {
        let object = pyo3::ffi::PyBytes_FromStringAndSize(std::ptr::null(), ssize);
        let bytes = Bound::from_owned_ptr_or_err(py, object)?.cast_into_unchecked::<PyBytes>();
        let start = pyo3::ffi::PyBytes_AsString(bytes.as_ptr()) as *mut u8;
        Ok((bytes.unbind(), start))
    }
}

/// The `len` bytes at `start`, zeroed (so that they are initialized before
/// a Rust slice covers them) and lent for writing.
///
/// # Safety
///
/// `start` points to `len` writable bytes that nothing else reads, writes or
/// frees while the slice lives.
unsafe fn zeroed_contents<'b>(start: *mut u8, len: usize) -> &'b mut [u8] {
    if len == 0 {
        return &mut [];
    }
    // SAFETY: as the caller promises.
    unsafe {
        std::ptr::write_bytes(start, 0, len);
        std::slice::from_raw_parts_mut(start, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::with_python;

    fn info(instance_id: InstanceId, size: u64) -> ModelInfo {
        ModelInfo {
            instance_id,
            model_type: "m.T".into(),
            size,
        }
    }

    #[test]
    fn each_model_is_filled_into_a_bytes_object_of_its_size() {
        crate::embedded::start();
        let mut sink = BytesSink::default();
        let mut lens = Vec::new();
        for (id, size) in [(4, 3u64), (9, 0), (2, 70_000)] {
            sink.accept(info(id, size), &mut |buffer: &mut [u8]| {
                lens.push(buffer.len());
                assert!(buffer.iter().all(|&b| b == 0), "handed out zeroed");
                buffer.fill(id as u8);
                Ok(())
            })
            .unwrap();
        }
        assert_eq!(lens, [3, 0, 70_000]);
        with_python(|py| {
            let models = sink.into_models(py);
            let got: Vec<(InstanceId, String, Vec<u8>)> = models
                .into_iter()
                .map(|(id, model_type, bytes)| (id, model_type, bytes.as_bytes().to_vec()))
                .collect();
            assert_eq!(
                got,
                [
                    (4, "m.T".to_string(), vec![4u8; 3]),
                    (9, "m.T".to_string(), vec![]),
                    (2, "m.T".to_string(), vec![2u8; 70_000]),
                ]
            );
        });
    }

    #[test]
    fn a_fill_that_fails_keeps_nothing_and_its_error_is_returned() {
        crate::embedded::start();
        let mut sink = BytesSink::default();
        let err = sink
            .accept(info(1, 8), &mut |_: &mut [u8]| {
                Err(BackendError::storage("the disk said no"))
            })
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            BackendError::storage("the disk said no").to_string()
        );
        assert!(sink.models.is_empty());
    }
}

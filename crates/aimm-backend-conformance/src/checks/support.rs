//! What the checks share: opening, calls that name themselves in errors,
//! deterministic bytes, and comparing models.

use super::CheckResult;
use crate::Target;
use aimm_backend_api::{Backend, BackendError, ErrorKind, InstanceId, Model, RVec};
use std::sync::Arc;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

pub(super) fn open(target: &dyn Target) -> Result<Arc<dyn Backend>, String> {
    target
        .open()
        .map_err(|err| format!("opening the backend failed: {err}"))
}

pub(super) fn create(
    backend: &dyn Backend,
    model_type: &str,
    bytes: Vec<u8>,
) -> Result<Model, String> {
    backend
        .create_model(model_type.into(), RVec::from(bytes))
        .map_err(|err| format!("create_model({model_type:?}) failed: {err}"))
}

pub(super) fn get(backend: &dyn Backend, id: InstanceId) -> Result<Model, String> {
    backend
        .get_model(id)
        .map_err(|err| format!("get_model({id}) failed: {err}"))
}

pub(super) fn ensure(condition: bool, why: impl FnOnce() -> String) -> CheckResult {
    if condition {
        Ok(())
    } else {
        Err(why())
    }
}

pub(super) fn expect_kind<T: std::fmt::Debug>(
    result: Result<T, BackendError>,
    kind: ErrorKind,
    call: &str,
) -> CheckResult {
    match result {
        Err(err) if err.kind == kind => Ok(()),
        Err(err) => Err(format!("{call}: expected a `{kind}` error, got `{err}`")),
        Ok(value) => Err(format!(
            "{call}: expected a `{kind}` error, got Ok({value:?})"
        )),
    }
}

/// Deterministic bytes that differ between tags.
pub(super) fn bytes_for(tag: &str, len: usize) -> Vec<u8> {
    let mut state = tag.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

pub(super) fn describe(model: &Model) -> String {
    format!(
        "model {} (type {:?}, {} bytes)",
        model.instance_id,
        model.model_type.as_str(),
        model.instance.len()
    )
}

pub(super) fn same_model(found: &Model, expected: &Model, context: &str) -> CheckResult {
    ensure(found == expected, || {
        let first_diff = found
            .instance
            .iter()
            .zip(expected.instance.iter())
            .position(|(a, b)| a != b);
        format!(
            "{context}: expected {}, found {} (first differing byte: {first_diff:?})",
            describe(expected),
            describe(found)
        )
    })
}

/// Stores `bytes` as `model_type` and checks every read path gives them back.
pub(super) fn roundtrip(target: &dyn Target, model_type: &str, bytes: Vec<u8>) -> CheckResult {
    let backend = open(target)?;
    let created = create(backend.as_ref(), model_type, bytes.clone())?;
    let expected = Model::new(created.instance_id, model_type, bytes);
    same_model(&created, &expected, "create_model's return value")?;
    same_model(
        &get(backend.as_ref(), created.instance_id)?,
        &expected,
        "get_model",
    )?;
    let all = backend
        .get_models()
        .map_err(|err| format!("get_models failed: {err}"))?;
    let listed = all
        .iter()
        .find(|m| m.instance_id == created.instance_id)
        .ok_or_else(|| format!("get_models lacks model {}", created.instance_id))?;
    same_model(listed, &expected, "get_models")?;
    let reopened = open(target)?;
    same_model(
        &get(reopened.as_ref(), created.instance_id)?,
        &expected,
        "get_model after reopening",
    )
}

pub(super) fn highest_id(backend: &dyn Backend) -> Result<InstanceId, String> {
    let infos = backend
        .list_models()
        .map_err(|err| format!("list_models failed: {err}"))?;
    Ok(infos.iter().map(|i| i.instance_id).max().unwrap_or(0))
}

/// Records what a listener saw and lets a check wait for it.
#[derive(Default)]
pub(super) struct Seen {
    ids: Mutex<Vec<InstanceId>>,
    changed: Condvar,
}

impl Seen {
    pub(super) fn record(&self, model: &Model) {
        self.ids.lock().unwrap().push(model.instance_id);
        self.changed.notify_all();
    }

    /// Waits until every id in `wanted` was seen, or `timeout` passes.
    pub(super) fn wait_for(&self, wanted: &[InstanceId], timeout: Duration) -> Vec<InstanceId> {
        let deadline = Instant::now() + timeout;
        let mut ids = self.ids.lock().unwrap();
        while !wanted.iter().all(|id| ids.contains(id)) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            ids = self.changed.wait_timeout(ids, left).unwrap().0;
        }
        ids.clone()
    }
}

pub(super) const CALLBACK_WAIT: Duration = Duration::from_secs(10);

//! Change callbacks: every write reported to a registered listener, none after unregistering.

use super::support::*;
use super::{check, Check, CheckResult};
use crate::Target;
use aimm_backend_api::{Backend, Model};
use std::sync::Arc;
use std::time::Duration;

/// The checks of this capability, in the order they run.
pub(super) fn checks() -> Vec<Check> {
    vec![
        check!(
            change_callbacks_fire,
            "a registered listener hears of a create, an update and an import (within 10 s)"
        ),
        check!(
            unregistered_callbacks_stay_silent,
            "after unregister_model_change_cb the listener hears of no further write"
        ),
    ]
}

/// A listener on `backend` that records what it hears, and its registration.
fn listen(backend: &dyn Backend) -> Result<(Arc<Seen>, u64), String> {
    let seen = Arc::new(Seen::default());
    let recorder = seen.clone();
    let registration = backend
        .register_model_change_cb(Arc::new(move |m: &Model| recorder.record(m)))
        .map_err(|err| format!("register_model_change_cb failed: {err}"))?;
    Ok((seen, registration))
}

fn change_callbacks_fire(target: &dyn Target) -> CheckResult {
    let backend = open(target)?;
    let (seen, registration) = listen(backend.as_ref())?;
    let created = create(backend.as_ref(), "conformance.cb", vec![1])?;
    let updated = backend
        .update_model(Model::new(created.instance_id, "conformance.cb", vec![2]))
        .map_err(|err| format!("update_model failed: {err}"))?;
    let import_id = highest_id(backend.as_ref())? + 10;
    backend
        .import_model(Model::new(import_id, "conformance.cb", vec![3]))
        .map_err(|err| format!("import_model failed: {err}"))?;
    let ids = seen.wait_for(&[created.instance_id, import_id], CALLBACK_WAIT);
    let result = ensure(
        ids.iter().filter(|&&id| id == updated.instance_id).count() >= 2
            && ids.contains(&import_id),
        || {
            format!(
                "expected callbacks for create and update of {} and import of {import_id}, saw ids {ids:?}",
                created.instance_id
            )
        },
    );
    let _ = backend.unregister_model_change_cb(registration);
    result
}

fn unregistered_callbacks_stay_silent(target: &dyn Target) -> CheckResult {
    let backend = open(target)?;
    let (seen, registration) = listen(backend.as_ref())?;
    let first = create(backend.as_ref(), "conformance.unreg", vec![1])?;
    seen.wait_for(&[first.instance_id], CALLBACK_WAIT);
    backend
        .unregister_model_change_cb(registration)
        .map_err(|err| format!("unregister_model_change_cb failed: {err}"))?;
    let second = create(backend.as_ref(), "conformance.unreg", vec![2])?;
    let ids = seen.wait_for(&[second.instance_id], Duration::from_millis(300));
    ensure(!ids.contains(&second.instance_id), || {
        format!(
            "model {} was reported after the listener was unregistered",
            second.instance_id
        )
    })
}

//! Updates: replace bytes and type exactly, at every size, and only models that exist.

use super::support::*;
use super::{check, Check, CheckResult};
use crate::Target;
use aimm_backend_api::{ErrorKind, Model};

/// The checks of this capability, in the order they run.
pub(super) fn checks() -> Vec<Check> {
    vec![
        check!(
            update_replaces_bytes_and_type,
            "update_model replaces bytes and type, returns the model as stored, and the change survives reopening"
        ),
        check!(
            updates_across_size_thresholds_are_byte_exact,
            "updates between 0 B, 3 B, 1 MiB - 1, 1 MiB and several MiB, also of equal length, are read back exactly"
        ),
        check!(
            update_unknown_id_is_not_found,
            "update_model of an id never stored fails with NotFound and stores nothing"
        ),
    ]
}

fn update_replaces_bytes_and_type(target: &dyn Target) -> CheckResult {
    let backend = open(target)?;
    let created = create(
        backend.as_ref(),
        "conformance.before",
        bytes_for("before", 5000),
    )?;
    let replacement = Model::new(
        created.instance_id,
        "conformance.after",
        bytes_for("after", 300),
    );
    let returned = backend
        .update_model(replacement.clone())
        .map_err(|err| format!("update_model failed: {err}"))?;
    same_model(&returned, &replacement, "update_model's return value")?;
    same_model(
        &get(backend.as_ref(), created.instance_id)?,
        &replacement,
        "get_model after update",
    )?;
    let reopened = open(target)?;
    same_model(
        &get(reopened.as_ref(), created.instance_id)?,
        &replacement,
        "get_model after update and reopening",
    )
}

fn updates_across_size_thresholds_are_byte_exact(target: &dyn Target) -> CheckResult {
    const MIB: usize = 1 << 20;
    let steps: [(&str, usize); 9] = [
        ("small to large", 3 * MIB + 5),
        ("large to larger", 5 * MIB + 7),
        ("large to same length, changed", 5 * MIB + 7),
        ("large to smaller large", 2 * MIB - 1),
        ("large to exactly 1 MiB", MIB),
        ("1 MiB to one byte short", MIB - 1),
        ("to large again", 4 * MIB),
        ("large to small", 3),
        ("small to empty", 0),
    ];
    let backend = open(target)?;
    let created = create(
        backend.as_ref(),
        "conformance.sizes",
        bytes_for("sizes-0", 1000),
    )?;
    let id = created.instance_id;
    for (i, (what, len)) in steps.iter().enumerate() {
        // The type changes on every other step, also when the length does not.
        let model_type = format!("conformance.sizes.{}", i % 2);
        let expected = Model::new(id, model_type, bytes_for(&format!("sizes-{}", i + 1), *len));
        backend
            .update_model(expected.clone())
            .map_err(|err| format!("update_model ({what}, {len} bytes) failed: {err}"))?;
        same_model(
            &get(backend.as_ref(), id)?,
            &expected,
            &format!("get_model after {what}"),
        )?;
        let listed = backend
            .get_models()
            .map_err(|err| format!("get_models failed: {err}"))?
            .into_iter()
            .find(|m| m.instance_id == id)
            .ok_or_else(|| format!("get_models lacks model {id} after {what}"))?;
        same_model(&listed, &expected, &format!("get_models after {what}"))?;
        if i == 2 {
            let reopened = open(target)?;
            same_model(
                &get(reopened.as_ref(), id)?,
                &expected,
                &format!("get_model after {what} and reopening"),
            )?;
        }
    }
    let reopened = open(target)?;
    let last = steps.len();
    same_model(
        &get(reopened.as_ref(), id)?,
        &Model::new(
            id,
            format!("conformance.sizes.{}", (last - 1) % 2),
            bytes_for(&format!("sizes-{last}"), 0),
        ),
        "get_model after every update and reopening",
    )
}

fn update_unknown_id_is_not_found(target: &dyn Target) -> CheckResult {
    let backend = open(target)?;
    let unknown = highest_id(backend.as_ref())? + 1_000_000;
    expect_kind(
        backend.update_model(Model::new(unknown, "conformance.ghost", vec![1])),
        ErrorKind::NotFound,
        &format!("update_model({unknown})"),
    )?;
    expect_kind(
        backend.get_model(unknown),
        ErrorKind::NotFound,
        "get_model after the failed update",
    )
}

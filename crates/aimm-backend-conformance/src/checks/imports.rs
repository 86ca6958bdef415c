//! Imports: a model stored under the id it brings, never over another.

use super::support::*;
use super::{check, Check, CheckResult};
use crate::Target;
use aimm_backend_api::{ErrorKind, Model};

/// The checks of this capability, in the order they run.
pub(super) fn checks() -> Vec<Check> {
    vec![
        check!(
            import_keeps_the_id,
            "import_model stores the model under the id it brings"
        ),
        check!(
            import_refuses_a_taken_id,
            "import_model over an existing id fails with Conflict and leaves the model as it was"
        ),
    ]
}

fn import_keeps_the_id(target: &dyn Target) -> CheckResult {
    let backend = open(target)?;
    let id = highest_id(backend.as_ref())? + 1000;
    let model = Model::new(id, "conformance.imported", bytes_for("imported", 777));
    let returned = backend
        .import_model(model.clone())
        .map_err(|err| format!("import_model({id}) failed: {err}"))?;
    same_model(&returned, &model, "import_model's return value")?;
    same_model(
        &get(backend.as_ref(), id)?,
        &model,
        "get_model of the imported id",
    )
}

fn import_refuses_a_taken_id(target: &dyn Target) -> CheckResult {
    let backend = open(target)?;
    let original = create(
        backend.as_ref(),
        "conformance.original",
        bytes_for("original", 100),
    )?;
    let intruder = Model::new(original.instance_id, "conformance.intruder", vec![9, 9, 9]);
    expect_kind(
        backend.import_model(intruder),
        ErrorKind::Conflict,
        &format!(
            "import_model({}) over an existing model",
            original.instance_id
        ),
    )?;
    same_model(
        &get(backend.as_ref(), original.instance_id)?,
        &original,
        "the model after a refused import",
    )
}

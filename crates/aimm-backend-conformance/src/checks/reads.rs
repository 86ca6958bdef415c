//! Reads: the three read calls agree, in ascending id order, and unknown ids are `NotFound`.

use super::support::*;
use super::{check, Check, CheckResult};
use crate::Target;
use aimm_backend_api::{ErrorKind, Fill, InstanceId, Model, ModelInfo, ModelSink};

/// The checks of this capability, in the order they run.
pub(super) fn checks() -> Vec<Check> {
    vec![
        check!(
            get_unknown_id_is_not_found,
            "get_model of an unknown id, of -1 and of i64::MAX fails with NotFound"
        ),
        check!(
            list_models_agrees_with_get_models,
            "list_models gives the id, type and size of exactly the models get_models returns"
        ),
        check!(
            read_models_agrees_with_get_models,
            "read_models hands over, in order and into buffers of their exact size, exactly the models get_models returns"
        ),
        check!(
            get_model_agrees_with_get_models,
            "get_model of each id returns what get_models returned for it"
        ),
        check!(
            models_come_in_ascending_id_order,
            "get_models and list_models return ascending ids, also when a smaller id was stored after a larger"
        ),
    ]
}

fn get_unknown_id_is_not_found(target: &dyn Target) -> CheckResult {
    let backend = open(target)?;
    let unknown = highest_id(backend.as_ref())? + 1_000_000;
    for id in [unknown, -1, InstanceId::MAX] {
        expect_kind(
            backend.get_model(id),
            ErrorKind::NotFound,
            &format!("get_model({id})"),
        )?;
    }
    Ok(())
}

fn list_models_agrees_with_get_models(target: &dyn Target) -> CheckResult {
    let backend = open(target)?;
    create(
        backend.as_ref(),
        "conformance.list",
        bytes_for("list", 4321),
    )?;
    let mut listed = backend
        .list_models()
        .map_err(|err| format!("list_models failed: {err}"))?
        .into_vec();
    let mut from_models: Vec<_> = backend
        .get_models()
        .map_err(|err| format!("get_models failed: {err}"))?
        .iter()
        .map(Model::info)
        .collect();
    listed.sort();
    from_models.sort();
    ensure(listed == from_models, || {
        format!(
            "list_models gave {} entries, get_models {}; first difference: {:?}",
            listed.len(),
            from_models.len(),
            listed.iter().zip(&from_models).find(|(a, b)| a != b)
        )
    })
}

/// What [`Backend::read_models`] handed over: every model as it came.
#[derive(Default)]
struct Collected(Vec<Model>);

impl ModelSink for Collected {
    fn accept(&mut self, info: ModelInfo, fill: &mut Fill<'_>) -> aimm_backend_api::Result<()> {
        // Not zeros: a store must write every byte of the buffer.
        let mut buffer = vec![0xa5; info.size as usize];
        fill(&mut buffer)?;
        self.0
            .push(Model::new(info.instance_id, info.model_type, buffer));
        Ok(())
    }
}

fn read_models_agrees_with_get_models(target: &dyn Target) -> CheckResult {
    let backend = open(target)?;
    for (tag, len) in [
        ("read.small", 3),
        ("read.empty", 0),
        ("read.large", 1 << 20),
    ] {
        create(backend.as_ref(), "conformance.read", bytes_for(tag, len))?;
    }
    let mut read = Collected::default();
    backend
        .read_models(&mut read)
        .map_err(|err| format!("read_models failed: {err}"))?;
    let models = backend
        .get_models()
        .map_err(|err| format!("get_models failed: {err}"))?;
    ensure(read.0.len() == models.len(), || {
        format!(
            "read_models handed over {} models, get_models returned {}",
            read.0.len(),
            models.len()
        )
    })?;
    for (got, expected) in read.0.iter().zip(models.iter()) {
        same_model(got, expected, "read_models vs get_models")?;
    }
    Ok(())
}

fn get_model_agrees_with_get_models(target: &dyn Target) -> CheckResult {
    let backend = open(target)?;
    create(
        backend.as_ref(),
        "conformance.agree",
        bytes_for("agree", 99),
    )?;
    let models = backend
        .get_models()
        .map_err(|err| format!("get_models failed: {err}"))?;
    for model in models.iter() {
        same_model(
            &get(backend.as_ref(), model.instance_id)?,
            model,
            "get_model vs get_models",
        )?;
    }
    Ok(())
}

fn models_come_in_ascending_id_order(target: &dyn Target) -> CheckResult {
    let backend = open(target)?;
    let base = highest_id(backend.as_ref())?;
    for offset in [3000, 1000, 2000] {
        let id = base + offset;
        backend
            .import_model(Model::new(id, "conformance.order", vec![1]))
            .map_err(|err| format!("import_model({id}) failed: {err}"))?;
    }
    create(backend.as_ref(), "conformance.order", vec![2])?;
    let from_models: Vec<InstanceId> = backend
        .get_models()
        .map_err(|err| format!("get_models failed: {err}"))?
        .iter()
        .map(|m| m.instance_id)
        .collect();
    let listed: Vec<InstanceId> = backend
        .list_models()
        .map_err(|err| format!("list_models failed: {err}"))?
        .iter()
        .map(|m| m.instance_id)
        .collect();
    for (call, ids) in [("get_models", &from_models), ("list_models", &listed)] {
        ensure(ids.windows(2).all(|pair| pair[0] < pair[1]), || {
            let at = ids.windows(2).position(|pair| pair[0] >= pair[1]);
            format!(
                "{call} is not in ascending id order: at position {at:?} of {} ids",
                ids.len()
            )
        })?;
        for offset in [1000, 2000, 3000] {
            ensure(ids.contains(&(base + offset)), || {
                format!("{call} lacks the imported model {}", base + offset)
            })?;
        }
    }
    Ok(())
}

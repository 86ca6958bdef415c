//! Instance ids: unique, under concurrency and across reopening, and never one an imported model holds.

use super::support::*;
use super::{check, Check, CheckResult};
use crate::Target;
use aimm_backend_api::{ErrorKind, Model};
use std::collections::BTreeSet;

/// The checks of this capability, in the order they run.
pub(super) fn checks() -> Vec<Check> {
    vec![
        check!(
            ids_unique_sequential,
            "50 creates in a row get 50 distinct ids"
        ),
        check!(
            ids_unique_under_16_threads,
            "128 creates from 16 threads at once on one backend get distinct ids, each holding its own bytes"
        ),
        check!(
            fresh_ids_skip_imported_ids,
            "a create never hands out an id that an imported model holds"
        ),
        check!(
            ids_not_reused_after_reopen,
            "ids of models created before close() are not handed out again after reopening; the models survive"
        ),
    ]
}

fn ids_unique_sequential(target: &dyn Target) -> CheckResult {
    let backend = open(target)?;
    let mut ids = BTreeSet::new();
    for i in 0..50 {
        let model = create(
            backend.as_ref(),
            "conformance.seq",
            bytes_for(&format!("seq{i}"), 64),
        )?;
        ensure(ids.insert(model.instance_id), || {
            format!("create #{i} returned id {} again", model.instance_id)
        })?;
    }
    Ok(())
}

fn ids_unique_under_16_threads(target: &dyn Target) -> CheckResult {
    const THREADS: usize = 16;
    const PER_THREAD: usize = 8;
    let backend = open(target)?;
    let created: Vec<Result<Vec<Model>, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let backend = backend.clone();
                scope.spawn(move || {
                    (0..PER_THREAD)
                        .map(|i| {
                            let tag = format!("thread{t}-{i}");
                            create(
                                backend.as_ref(),
                                "conformance.threads",
                                bytes_for(&tag, 256),
                            )
                        })
                        .collect::<Result<Vec<Model>, String>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a creating thread panicked".into()))
            })
            .collect()
    });
    let mut ids = BTreeSet::new();
    for (t, models) in created.into_iter().enumerate() {
        for (i, model) in models?.into_iter().enumerate() {
            ensure(ids.insert(model.instance_id), || {
                format!(
                    "id {} handed out twice (thread {t}, create {i})",
                    model.instance_id
                )
            })?;
            let expected = Model::new(
                model.instance_id,
                "conformance.threads",
                bytes_for(&format!("thread{t}-{i}"), 256),
            );
            same_model(
                &get(backend.as_ref(), model.instance_id)?,
                &expected,
                "get_model",
            )?;
        }
    }
    ensure(ids.len() == THREADS * PER_THREAD, || {
        format!(
            "expected {} distinct ids, got {}",
            THREADS * PER_THREAD,
            ids.len()
        )
    })
}

fn fresh_ids_skip_imported_ids(target: &dyn Target) -> CheckResult {
    const ROUNDS: usize = 3;
    let backend = open(target)?;
    let mut previous = create(backend.as_ref(), "conformance.fresh", vec![0])?.instance_id;
    let mut last = create(backend.as_ref(), "conformance.fresh", vec![0])?.instance_id;
    for round in 0..ROUNDS {
        let step = last
            .checked_sub(previous)
            .filter(|step| *step > 0)
            .unwrap_or(1);
        let predicted = last.saturating_add(step);
        let imported = Model::new(predicted, "conformance.imported", vec![round as u8]);
        let ours = match backend.import_model(imported.clone()) {
            Ok(_) => true,
            // Taken already (by another writer): still not to be handed out.
            Err(err) if err.kind == ErrorKind::Conflict => false,
            Err(err) => return Err(format!("import_model({predicted}) failed: {err}")),
        };
        let fresh = create(backend.as_ref(), "conformance.fresh", vec![1])?;
        ensure(fresh.instance_id != predicted, || {
            format!("round {round}: create_model returned id {predicted}, which a model held")
        })?;
        if ours {
            same_model(
                &get(backend.as_ref(), predicted)?,
                &imported,
                "the imported model after a create",
            )?;
        }
        previous = last;
        last = fresh.instance_id;
    }
    Ok(())
}

fn ids_not_reused_after_reopen(target: &dyn Target) -> CheckResult {
    let mut seen = BTreeSet::new();
    let mut kept = Vec::new();
    for round in 0..3 {
        let backend = open(target)?;
        for i in 0..3 {
            let model = create(
                backend.as_ref(),
                "conformance.reopen",
                bytes_for(&format!("r{round}-{i}"), 32),
            )?;
            ensure(seen.insert(model.instance_id), || {
                format!(
                    "after {round} reopen(s), create_model reused id {}",
                    model.instance_id
                )
            })?;
            kept.push(model);
        }
        backend
            .close()
            .map_err(|err| format!("close failed: {err}"))?;
    }
    let backend = open(target)?;
    for model in &kept {
        same_model(
            &get(backend.as_ref(), model.instance_id)?,
            model,
            "a model after reopening",
        )?;
    }
    Ok(())
}

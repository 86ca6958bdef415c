//! The checks. Each is a plain function from a [`Target`] to pass or a reason.

use crate::Target;
use aimm_backend_api::{Backend, BackendError, ErrorKind, InstanceId, Model, RVec};
use std::collections::BTreeSet;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

type CheckResult = Result<(), String>;

/// One named behaviour check.
#[derive(Clone, Copy)]
pub struct Check {
    /// A stable name, e.g. `ids_unique_under_16_threads`.
    pub name: &'static str,
    /// Runs the check.
    pub run: fn(&dyn Target) -> CheckResult,
}

/// Every check, in the order they run.
pub fn checks() -> Vec<Check> {
    macro_rules! list {
        ($($f:ident),* $(,)?) => { vec![$(Check { name: stringify!($f), run: $f }),*] };
    }
    list![
        create_returns_the_stored_model,
        ids_unique_sequential,
        ids_unique_under_16_threads,
        roundtrip_empty,
        roundtrip_one_byte,
        roundtrip_all_byte_values,
        roundtrip_16_mib,
        roundtrip_unicode_type,
        update_replaces_bytes_and_type,
        updates_across_size_thresholds_are_byte_exact,
        update_unknown_id_is_not_found,
        get_unknown_id_is_not_found,
        import_keeps_the_id,
        import_refuses_a_taken_id,
        fresh_ids_skip_imported_ids,
        ids_not_reused_after_reopen,
        list_models_agrees_with_get_models,
        get_model_agrees_with_get_models,
        models_come_in_ascending_id_order,
        change_callbacks_fire,
        unregistered_callbacks_stay_silent,
    ]
}

// ---- helpers ---------------------------------------------------------------

fn open(target: &dyn Target) -> Result<Arc<dyn Backend>, String> {
    target
        .open()
        .map_err(|err| format!("opening the backend failed: {err}"))
}

fn create(backend: &dyn Backend, model_type: &str, bytes: Vec<u8>) -> Result<Model, String> {
    backend
        .create_model(model_type.into(), RVec::from(bytes))
        .map_err(|err| format!("create_model({model_type:?}) failed: {err}"))
}

fn get(backend: &dyn Backend, id: InstanceId) -> Result<Model, String> {
    backend
        .get_model(id)
        .map_err(|err| format!("get_model({id}) failed: {err}"))
}

fn ensure(condition: bool, why: impl FnOnce() -> String) -> CheckResult {
    if condition {
        Ok(())
    } else {
        Err(why())
    }
}

fn expect_kind<T: std::fmt::Debug>(
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
fn bytes_for(tag: &str, len: usize) -> Vec<u8> {
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

fn describe(model: &Model) -> String {
    format!(
        "model {} (type {:?}, {} bytes)",
        model.instance_id,
        model.model_type.as_str(),
        model.instance.len()
    )
}

fn same_model(found: &Model, expected: &Model, context: &str) -> CheckResult {
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
fn roundtrip(target: &dyn Target, model_type: &str, bytes: Vec<u8>) -> CheckResult {
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

fn highest_id(backend: &dyn Backend) -> Result<InstanceId, String> {
    let infos = backend
        .list_models()
        .map_err(|err| format!("list_models failed: {err}"))?;
    Ok(infos.iter().map(|i| i.instance_id).max().unwrap_or(0))
}

/// Records what a listener saw and lets a check wait for it.
#[derive(Default)]
struct Seen {
    ids: Mutex<Vec<InstanceId>>,
    changed: Condvar,
}

impl Seen {
    fn record(&self, model: &Model) {
        self.ids.lock().unwrap().push(model.instance_id);
        self.changed.notify_all();
    }

    /// Waits until every id in `wanted` was seen, or `timeout` passes.
    fn wait_for(&self, wanted: &[InstanceId], timeout: Duration) -> Vec<InstanceId> {
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

const CALLBACK_WAIT: Duration = Duration::from_secs(10);

// ---- checks ----------------------------------------------------------------

fn create_returns_the_stored_model(target: &dyn Target) -> CheckResult {
    roundtrip(target, "conformance.create", bytes_for("create", 1000))
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

fn roundtrip_empty(target: &dyn Target) -> CheckResult {
    roundtrip(target, "conformance.empty", Vec::new())
}

fn roundtrip_one_byte(target: &dyn Target) -> CheckResult {
    roundtrip(target, "conformance.one", vec![0x00])
}

fn roundtrip_all_byte_values(target: &dyn Target) -> CheckResult {
    let bytes: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    roundtrip(target, "conformance.bytes", bytes)
}

fn roundtrip_16_mib(target: &dyn Target) -> CheckResult {
    roundtrip(target, "conformance.large", bytes_for("large", 16 << 20))
}

fn roundtrip_unicode_type(target: &dyn Target) -> CheckResult {
    roundtrip(
        target,
        "модель/模型 ✓ — 🧠 \"quoted\" 'x'",
        bytes_for("unicode", 10),
    )
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

/// A create must never hand out an id an imported model holds. To test that
/// for any id scheme, each round imports a model at the id the backend would
/// hand out next if it kept stepping as it just did, then creates: a backend
/// that does not skip taken ids returns the imported id. The step is learnt
/// again each round, so a scheme whose step includes the import's own cost
/// (the event backend's session counter) is predicted by the second round.
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

/// Updates across every size a backend may store differently (SQLite from
/// 1 MiB on, through incremental blob I/O): each must be byte-exact, read
/// back by every path and after reopening.
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

/// `get_models` and `list_models` return the whole store in ascending id
/// order, also when a smaller id was stored after a larger one.
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

fn change_callbacks_fire(target: &dyn Target) -> CheckResult {
    let backend = open(target)?;
    let seen = Arc::new(Seen::default());
    let recorder = seen.clone();
    let registration = backend
        .register_model_change_cb(Arc::new(move |m: &Model| recorder.record(m)))
        .map_err(|err| format!("register_model_change_cb failed: {err}"))?;
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
    let seen = Arc::new(Seen::default());
    let recorder = seen.clone();
    let registration = backend
        .register_model_change_cb(Arc::new(move |m: &Model| recorder.record(m)))
        .map_err(|err| format!("register_model_change_cb failed: {err}"))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_names_are_unique() {
        let names: BTreeSet<_> = checks().iter().map(|c| c.name).collect();
        assert_eq!(names.len(), checks().len());
    }

    #[test]
    fn bytes_differ_by_tag() {
        assert_ne!(bytes_for("a", 64), bytes_for("b", 64));
        assert_eq!(bytes_for("a", 64), bytes_for("a", 64));
    }
}

//! Updates of large models (stored through incremental blob I/O) are
//! byte-exact in every direction, and an update of the same length writes
//! only what changed: nothing at all when the bytes are unchanged, which is
//! what the AIMM engine's update after every predict usually is.

use aimm_backend_api::{Backend, Model};
use aimm_backend_sqlite::{SqliteBackend, SqliteConfig};

const MIB: usize = 1 << 20;

fn bytes(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761) >> 13) as u8 ^ seed)
        .collect()
}

fn update(backend: &SqliteBackend, id: i64, model_type: &str, instance: &[u8]) {
    backend
        .update_model(Model::new(id, model_type, instance.to_vec()))
        .unwrap();
}

fn assert_stored(backend: &SqliteBackend, id: i64, model_type: &str, instance: &[u8]) {
    let model = backend.get_model(id).unwrap();
    assert_eq!(model.model_type.as_str(), model_type);
    assert_eq!(model.instance.len(), instance.len());
    assert!(model.instance.as_slice() == instance, "bytes differ");
}

#[test]
fn same_length_updates_of_a_large_model_are_byte_exact() {
    let dir = tempfile::tempdir().unwrap();
    let backend = SqliteBackend::open(SqliteConfig::new(dir.path().join("m.db"))).unwrap();
    let mut instance = bytes(1, 3 * MIB + 123);
    let id = backend
        .create_model("t".into(), instance.clone().into())
        .unwrap()
        .instance_id;
    // Changes at the first byte, around a compare-chunk edge and the last
    // byte, one at a time, then several at once.
    for positions in [
        vec![0],
        vec![(64 << 10) - 1],
        vec![64 << 10],
        vec![instance.len() - 1],
        vec![5, MIB, 2 * MIB + 7, instance.len() - 2],
    ] {
        for &p in &positions {
            instance[p] ^= 0xff;
        }
        update(&backend, id, "t", &instance);
        assert_stored(&backend, id, "t", &instance);
    }
    // The same bytes again, and the same bytes under another type.
    update(&backend, id, "t", &instance);
    assert_stored(&backend, id, "t", &instance);
    update(&backend, id, "other type", &instance);
    assert_stored(&backend, id, "other type", &instance);
}

#[test]
fn updates_across_the_large_model_threshold_are_byte_exact() {
    let dir = tempfile::tempdir().unwrap();
    let backend = SqliteBackend::open(SqliteConfig::new(dir.path().join("m.db"))).unwrap();
    let id = backend
        .create_model("t".into(), bytes(2, 1000).into())
        .unwrap()
        .instance_id;
    for (seed, len) in [
        (3, 2 * MIB),
        (4, 3 * MIB),
        (5, MIB + 1),
        (6, 10),
        (7, 2 * MIB),
    ] {
        let instance = bytes(seed, len);
        update(&backend, id, "t", &instance);
        assert_stored(&backend, id, "t", &instance);
    }
}

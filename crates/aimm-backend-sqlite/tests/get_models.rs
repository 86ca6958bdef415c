//! get_models returns every model byte-exact, in id order, both below and
//! above the size at which buffers are prepared on a second thread.

use aimm_backend_api::{Backend, Model};
use aimm_backend_sqlite::{SqliteBackend, SqliteConfig};

fn bytes(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn store_with(sizes: &[usize]) -> (tempfile::TempDir, SqliteBackend, Vec<Model>) {
    let dir = tempfile::tempdir().unwrap();
    let backend = SqliteBackend::open(SqliteConfig::new(dir.path().join("m.db"))).unwrap();
    let models = sizes
        .iter()
        .enumerate()
        .map(|(i, &len)| {
            backend
                .create_model(format!("t{i}").into(), bytes(i as u8, len).into())
                .unwrap()
        })
        .collect();
    (dir, backend, models)
}

#[test]
fn small_results_are_read_on_one_thread_exactly() {
    let (_dir, backend, models) = store_with(&[0, 1, 100, 70_000, 0, 5]);
    assert_eq!(backend.get_models().unwrap().into_vec(), models);
}

#[test]
fn large_results_are_read_with_prepared_buffers_exactly() {
    // 40 MiB in all, with empty, tiny, page-straddling and 2 MiB models mixed.
    let mut sizes = Vec::new();
    for i in 0..200 {
        sizes.push(match i % 5 {
            0 => 0,
            1 => 1,
            2 => 4097,
            3 => 200_000,
            _ => 2 << 20,
        });
    }
    let (_dir, backend, models) = store_with(&sizes);
    let read = backend.get_models().unwrap().into_vec();
    assert_eq!(read.len(), models.len());
    for (got, want) in read.iter().zip(&models) {
        assert!(got == want, "model {} differs", want.instance_id);
    }
}

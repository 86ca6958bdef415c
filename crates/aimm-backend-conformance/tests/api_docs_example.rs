//! The example plugin of `aimm-backend-api`'s crate docs ("Writing a
//! plugin") passes the suite as written: the docs include the same file.

include!("../../aimm-backend-api/doc/map_plugin.rs");

#[test]
fn the_api_docs_example_plugin_passes_conformance() {
    use aimm_backend_conformance::{run, InProcessTarget};
    let target =
        InProcessTarget::<MapPlugin>::scratch(serde_json::json!({"module": "map"})).unwrap();
    let report = run(&target);
    assert!(report.all_passed(), "{report}");
}

//! The interpreter the unit tests embed: a test binary is a program of its
//! own, so it links libpython (of the Python 3.11 the project pins; the
//! search path comes from `build.rs`), and each test starts the interpreter
//! before it takes the GIL.

// Declares nothing, so nothing here can be called: it only makes the test
// binary link libpython.
#[link(name = "python3.11")]
unsafe extern "C" {}

/// Starts the embedded interpreter, if no test has yet: for code under
/// test that takes the GIL itself.
pub(crate) fn start() {
    pyo3::Python::initialize();
}

/// Runs `f` with the GIL of the embedded interpreter.
pub(crate) fn with_python<R>(f: impl for<'py> FnOnce(pyo3::Python<'py>) -> R) -> R {
    start();
    pyo3::Python::attach(f)
}

/// The built-in plugin `name` of the workspace's release build, which
/// these tests load as the Python server would.
pub(crate) fn plugin(name: &str) -> std::path::PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        std::path::PathBuf::from,
    );
    let path = target.join(format!("release/libaimm_backend_{name}.so"));
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --release --workspace` first",
        path.display()
    );
    path
}

/// Records of the Python logger `name`, from now on, at `level` and
/// above: `handler.records` holds `(levelno, message, plugin_target)`.
pub(crate) fn recorded_logger<'py>(
    py: pyo3::Python<'py>,
    name: &str,
    level: u32,
) -> pyo3::Bound<'py, pyo3::PyAny> {
    use pyo3::types::PyAnyMethods;
    let globals = pyo3::types::PyDict::new(py);
    py.run(
        c"
import logging
class Recorder(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records = []
    def emit(self, record):
        self.records.append(
            (record.levelno, record.getMessage(), getattr(record, 'plugin_target', None)))
def attach(name, level):
    logger = logging.getLogger(name)
    logger.setLevel(level)
    logger.propagate = False
    handler = Recorder()
    logger.handlers[:] = [handler]
    return handler
",
        Some(&globals),
        None,
    )
    .unwrap();
    let attach = globals.get_item("attach").unwrap();
    attach.call1((name, level)).unwrap()
}

/// A stand-in for `aimm_backend._events.EventBridge` (the real one runs
/// under the real server in tests/python_package.rs): it records each
/// call in `calls` and answers `answer`, or raises `error`.
const FAKE_BRIDGE: &std::ffi::CStr = cr#"
class Bridge:
    def __init__(self):
        self.calls = []
        self.answer = None
        self.error = None
    def register(self, events, with_response):
        self.calls.append(('register', events, with_response))
        if self.error is not None:
            raise self.error
        return self.answer
    def hand_over(self, events):
        self.calls.append(('hand_over', events))
        if self.error is not None:
            raise self.error
    def query_latest(self, types):
        self.calls.append(('query_latest', types))
        if self.error is not None:
            raise self.error
        return self.answer
"#;

/// A new fake bridge (see [`FAKE_BRIDGE`]).
pub(crate) fn fake_bridge(py: pyo3::Python<'_>) -> pyo3::Bound<'_, pyo3::PyAny> {
    use pyo3::types::{PyAnyMethods, PyDictMethods};
    let globals = pyo3::types::PyDict::new(py);
    py.run(FAKE_BRIDGE, Some(&globals), None).unwrap();
    let class = globals.get_item("Bridge").unwrap().unwrap();
    class.call0().unwrap()
}

/// A `backend` section (JSON text) for the SQLite plugin on `db`.
pub(crate) fn sqlite_section(db: &std::path::Path) -> String {
    serde_json::json!({ "module": plugin("sqlite"), "path": db }).to_string()
}

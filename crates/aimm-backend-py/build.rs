//! Lets the unit tests find libpython, which only they link (see
//! `src/embedded.rs`): the extension module must not link it, since
//! the interpreter that loads the module provides its symbols
//! (`.cargo/config.toml` sets `PYO3_BUILD_EXTENSION_MODULE` for the whole
//! workspace, as maturin does). A search path links nothing by itself.

fn main() {
    if let Some(dir) = pyo3_build_config::get().lib_dir() {
        println!("cargo::rustc-link-search=native={dir}");
    }
}

//! The configuration loader (`rampart check-config` and `rampart serve` run
//! exactly this): arbitrary text as the TOML file, read, layered,
//! deserialized and validated. It must answer with problems, never panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn scratch() -> &'static tempfile::TempDir {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap())
}

fuzz_target!(|data: &[u8]| {
    let path = scratch().path().join("rampart.toml");
    std::fs::write(&path, data).unwrap();
    if let Err(error) = rampart::config::load(&path) {
        assert!(!error.problems.is_empty());
        let _ = error.to_string();
    }
});

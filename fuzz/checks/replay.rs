//! Replays fuzz inputs through a target's property on the stable toolchain (cargo-fuzz
//! needs nightly): provider/tests/fuzz_corpus.rs and handler/tests/fuzz_corpus.rs include
//! this file with `#[path]`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The committed seeds of `target` (fuzz/seeds/<target>) and the corpus local cargo-fuzz
/// runs grew (fuzz/corpus/<target>, git-ignored; absent in a fresh clone).
pub fn inputs_of(target: &str) -> [PathBuf; 2] {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    [
        fuzz.join("seeds").join(target),
        fuzz.join("corpus").join(target),
    ]
}

/// Runs `check` on every file of those of `dirs` that exist; returns outcome -> count.
/// Panics naming the first input on which `check` panics.
pub fn replay(dirs: &[PathBuf], check: fn(&[u8]) -> &'static str) -> BTreeMap<&'static str, usize> {
    let mut outcomes = BTreeMap::new();
    for dir in dirs.iter().filter(|d| d.is_dir()) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| check(&data))
                .unwrap_or_else(|_| panic!("the fuzz property fails on {}", path.display()));
            *outcomes.entry(outcome).or_insert(0) += 1;
        }
    }
    outcomes
}

/// Control: a property that fails makes the replay fail, naming the input; a replay that
/// could not fail would pass this nowhere.
pub fn assert_a_failing_property_fails_the_replay() {
    let dir = std::env::temp_dir().join(format!("fuzz-replay-control-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("the-input"), b"\x00\xa3abc").unwrap();
    let broken: fn(&[u8]) -> &'static str = |_| panic!("broken property");
    let result = std::panic::catch_unwind(|| replay(std::slice::from_ref(&dir), broken));
    std::fs::remove_dir_all(&dir).unwrap();
    let message = result.expect_err("a failing property fails the replay");
    let text = message
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(
        text.contains("the-input"),
        "the failing input is named: {text}"
    );
}

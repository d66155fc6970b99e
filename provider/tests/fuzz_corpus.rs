//! Replays every input of the `value_msgpack` fuzz target (its committed seeds, and the
//! corpus of local cargo-fuzz runs when present) through the target's own property,
//! fuzz/checks/value_msgpack.rs, on the stable toolchain in every `cargo test`: cargo-fuzz
//! needs nightly, which CI does not have, so without this the property would never be
//! checked there.

// The check names the decoder `crate::value`: the provider's own module.
mod value {
    pub use autoheal_provider::plugin::value::*;
}

#[path = "../../fuzz/checks/value_msgpack.rs"]
mod check;
#[path = "../../fuzz/checks/replay.rs"]
mod replay;

#[test]
fn every_seed_and_corpus_input_holds_the_value_msgpack_property() {
    let dirs = replay::inputs_of("value_msgpack");
    let outcomes = replay::replay(&dirs, check::check);
    let total: usize = outcomes.values().sum();
    eprintln!("value_msgpack replay: {total} inputs, {outcomes:?}");
    let committed = std::fs::read_dir(&dirs[0]).unwrap().count();
    assert!(committed > 0 && total >= committed, "{outcomes:?}");
    // The seeds reach the deepest branch: decode, encode, decode, encode.
    assert!(
        outcomes.get("round-trip").copied().unwrap_or(0) > 0,
        "no seed reached the round trip: {outcomes:?}"
    );
}

#[test]
fn a_failing_property_fails_the_replay() {
    replay::assert_a_failing_property_fails_the_replay();
}

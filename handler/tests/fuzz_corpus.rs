//! Replays every input of the `handler_event` fuzz target (its committed seeds, and the
//! corpus of local cargo-fuzz runs when present) through the target's own property,
//! fuzz/checks/handler_event.rs, on the stable toolchain in every `cargo test`: cargo-fuzz
//! needs nightly, which CI does not have, so without this the property would never be
//! checked there.

// The check names `crate::event` and `crate::settings`: the handler's own modules.
mod event {
    pub use autoheal_handler::event::*;
}
mod settings {
    pub use autoheal_handler::settings::*;
}

#[path = "../../fuzz/checks/handler_event.rs"]
mod check;
#[path = "../../fuzz/checks/replay.rs"]
mod replay;

#[test]
fn every_seed_and_corpus_input_holds_the_handler_event_property() {
    let dirs = replay::inputs_of("handler_event");
    let outcomes = replay::replay(&dirs, check::check);
    let total: usize = outcomes.values().sum();
    eprintln!("handler_event replay: {total} inputs, {outcomes:?}");
    let committed = std::fs::read_dir(&dirs[0]).unwrap().count();
    assert!(committed > 0 && total >= committed, "{outcomes:?}");
    // The seeds reach both verdicts: the accepted launch (whose assertions are the point)
    // and the refusals.
    for outcome in ["accepted", "refused"] {
        assert!(
            outcomes.get(outcome).copied().unwrap_or(0) > 0,
            "no seed was {outcome}: {outcomes:?}"
        );
    }
}

#[test]
fn a_failing_property_fails_the_replay() {
    replay::assert_a_failing_property_fails_the_replay();
}

//! The property the `handler_event` fuzz target checks, for one input: any invocation
//! payload is accepted, refused or reported as malformed by handler/src/event.rs, never a
//! panic; an accepted one really is a launch of this function's group, through its hook, of
//! a well-formed instance id, with a token. Shared by the cargo-fuzz target (nightly) and the
//! corpus replay in handler/tests/fuzz_corpus.rs (stable, every `cargo test`): whoever
//! includes this file provides `crate::event` and `crate::settings`.

use crate::event::{classify_json, Classification, LAUNCHING};
use crate::settings::{is_ec2_id, Settings};

/// The property one input must hold (see the module documentation). Returns which way the
/// input went (`not-utf8`, `accepted`, `refused`, `malformed`), so a replay can show that its
/// inputs reached every branch.
pub fn check(data: &[u8]) -> &'static str {
    let Ok(text) = std::str::from_utf8(data) else {
        return "not-utf8";
    };
    let settings = Settings {
        volume_id: "vol-0123456789abcdef0".into(),
        allocation_id: "eipalloc-0123456789abcdef0".into(),
        device_name: "/dev/xvdb".into(),
        group_name: "web-asg".into(),
        hook_name: "web-launch".into(),
        hook_timeout: None,
    };
    match classify_json(text, &settings) {
        Ok(Classification::Accept(action)) => {
            assert_eq!(action.group_name, settings.group_name);
            assert_eq!(action.hook_name, settings.hook_name);
            assert!(is_ec2_id(&action.instance_id, "i-"), "{action:?}");
            assert!(!action.token.trim().is_empty(), "{action:?}");
            // Only the launch transition is accepted.
            let value: serde_json::Value = serde_json::from_str(text).expect("it parsed once");
            assert_eq!(value["detail"]["LifecycleTransition"], LAUNCHING);
            "accepted"
        }
        Ok(Classification::Refuse(reason)) => {
            assert!(!reason.is_empty());
            "refused"
        }
        Err(e) => {
            let _ = e.to_string();
            "malformed"
        }
    }
}

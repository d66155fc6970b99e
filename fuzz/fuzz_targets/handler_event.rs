//! Fuzzes the attachment Lambda's event parsing (handler/src/event.rs): any invocation
//! payload must be accepted, refused or reported as malformed, never panic; and an accepted
//! one must really be a launch of this function's group, through its hook, of a well-formed
//! instance id, with a token.

#![no_main]

use libfuzzer_sys::fuzz_target;

// event.rs refers to these two as `crate::deadline` and `crate::settings`; both use only std.
#[allow(dead_code)]
#[path = "../../handler/src/deadline.rs"]
mod deadline;
#[allow(dead_code)]
#[path = "../../handler/src/event.rs"]
mod event;
#[allow(dead_code)]
#[path = "../../handler/src/settings.rs"]
mod settings;

use event::{classify_json, Classification, LAUNCHING};
use settings::{is_ec2_id, Settings};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
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
        }
        Ok(Classification::Refuse(reason)) => assert!(!reason.is_empty()),
        Err(e) => {
            let _ = e.to_string();
        }
    }
});

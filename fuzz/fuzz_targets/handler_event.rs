//! Fuzzes the attachment Lambda's event parsing (handler/src/event.rs). The property is in
//! fuzz/checks/handler_event.rs, which the stable corpus replay shares.

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

#[path = "../checks/handler_event.rs"]
mod check;

fuzz_target!(|data: &[u8]| {
    check::check(data);
});

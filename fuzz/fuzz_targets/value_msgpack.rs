//! Fuzzes the provider's msgpack value decoder (provider/src/plugin/msgpack.rs and the values
//! of provider/src/plugin/value.rs), which reads every configuration, plan and state
//! Terraform sends. The property is in fuzz/checks/value_msgpack.rs, which the stable corpus
//! replay shares.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)] // the provider uses more of the module than this target
#[path = "../../provider/src/plugin/value.rs"]
mod value;

#[path = "../../provider/src/plugin/msgpack.rs"]
mod msgpack;

#[path = "../checks/value_msgpack.rs"]
mod check;

fuzz_target!(|data: &[u8]| {
    check::check(data);
});

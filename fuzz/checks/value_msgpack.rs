//! The property the `value_msgpack` fuzz target checks, for one input: any bytes decode to a
//! value or a `CodecError` of provider/src/plugin/value.rs (decoded by msgpack.rs beside it),
//! never a panic, and what decodes encodes again, stably. Shared by the cargo-fuzz target
//! (nightly) and the corpus replay in provider/tests/fuzz_corpus.rs (stable, every `cargo
//! test`): whoever includes this file provides the decoder as `crate::value`.

use std::collections::BTreeMap;

use crate::value::{Type, Value};

/// Types shaped like the provider's schemas: scalars, every collection, a nested object
/// (`timeouts`), and `dynamic`, whose values carry their own type on the wire.
fn types() -> Vec<Type> {
    let object = Type::Object(BTreeMap::from([
        ("name".to_string(), Type::String),
        ("size".to_string(), Type::Number),
        ("force".to_string(), Type::Bool),
        ("cidrs".to_string(), Type::list(Type::String)),
        ("zones".to_string(), Type::set(Type::String)),
        ("tags".to_string(), Type::map(Type::String)),
        (
            "pair".to_string(),
            Type::Tuple(vec![Type::String, Type::Number]),
        ),
        (
            "timeouts".to_string(),
            Type::Object(BTreeMap::from([("create".to_string(), Type::String)])),
        ),
        ("any".to_string(), Type::Dynamic),
    ]));
    vec![
        Type::String,
        Type::Number,
        Type::Bool,
        Type::Dynamic,
        Type::list(Type::Dynamic),
        Type::map(Type::list(Type::Number)),
        object,
    ]
}

/// The property one input must hold (see the module documentation). Returns which way the
/// input went (`empty`, `refused`, `dynamic`: decoded but fairly not re-encodable,
/// `round-trip`), so a replay can show that its inputs reached every branch.
pub fn check(data: &[u8]) -> &'static str {
    // The first byte picks the type, so each input exercises one decode path deeply.
    let Some((&selector, bytes)) = data.split_first() else {
        return "empty";
    };
    let types = types();
    let ty = &types[usize::from(selector) % types.len()];
    let Ok(decoded) = Value::from_msgpack(bytes, ty) else {
        return "refused";
    };
    // Values of `dynamic` lose their wire type on decoding (a list of mixed elements, for
    // one), so re-encoding them may fairly fail; it must still not panic.
    let contains_dynamic = format!("{ty:?}").contains("Dynamic");
    let encoded = match decoded.to_msgpack(ty) {
        Ok(b) => b,
        Err(e) if contains_dynamic => {
            let _ = e.to_string();
            return "dynamic";
        }
        Err(e) => panic!("decoded {decoded:?} as {ty:?} but cannot encode it: {e}"),
    };
    // Encoding normalizes (3.0 becomes the integer 3); after that it is a fixed point.
    let again = Value::from_msgpack(&encoded, ty)
        .unwrap_or_else(|e| panic!("our own encoding of {decoded:?} does not decode: {e}"));
    let reencoded = again
        .to_msgpack(ty)
        .unwrap_or_else(|e| panic!("{again:?} decoded from our encoding does not encode: {e}"));
    assert_eq!(encoded, reencoded, "encoding is not stable for {decoded:?}");
    // The JSON form (raw state) of whatever decoded never panics either.
    let _ = decoded.to_json().to_string();
    "round-trip"
}

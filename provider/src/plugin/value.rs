//! Terraform values (cty) and their wire encodings.
//!
//! Terraform sends configuration, plans and state as `DynamicValue`: MessagePack (always in
//! practice) or JSON (accepted by the protocol). Neither encoding is self-describing enough on
//! its own: an empty msgpack map may be an object or a map, a number may arrive as a string,
//! and an unknown value is an extension. So decoding is driven by the schema's [`Type`], just
//! as Terraform's own cty library does it. The MessagePack side is [`super::msgpack`].

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value as Json;

/// A cty type, as declared in a schema and as serialized in `Schema.Attribute.type` (JSON).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Type {
    String,
    Number,
    Bool,
    /// `cty.DynamicPseudoType`: the value carries its own type on the wire.
    Dynamic,
    List(Box<Type>),
    Set(Box<Type>),
    Map(Box<Type>),
    Object(BTreeMap<String, Type>),
    Tuple(Vec<Type>),
}

impl Type {
    pub fn list(t: Type) -> Type {
        Type::List(Box::new(t))
    }
    pub fn set(t: Type) -> Type {
        Type::Set(Box::new(t))
    }
    pub fn map(t: Type) -> Type {
        Type::Map(Box::new(t))
    }

    /// The JSON form Terraform expects in a schema: `"string"`, `["list","string"]`,
    /// `["object",{"a":"string"}]`.
    pub fn to_json(&self) -> Json {
        match self {
            Type::String => Json::from("string"),
            Type::Number => Json::from("number"),
            Type::Bool => Json::from("bool"),
            Type::Dynamic => Json::from("dynamic"),
            Type::List(t) => Json::Array(vec!["list".into(), t.to_json()]),
            Type::Set(t) => Json::Array(vec!["set".into(), t.to_json()]),
            Type::Map(t) => Json::Array(vec!["map".into(), t.to_json()]),
            Type::Object(attrs) => Json::Array(vec![
                "object".into(),
                Json::Object(
                    attrs
                        .iter()
                        .map(|(k, t)| (k.clone(), t.to_json()))
                        .collect(),
                ),
            ]),
            Type::Tuple(elems) => Json::Array(vec![
                "tuple".into(),
                Json::Array(elems.iter().map(Type::to_json).collect()),
            ]),
        }
    }

    /// Parses the JSON type form (used for dynamic values, whose type travels with them).
    pub fn from_json(j: &Json) -> Result<Type, CodecError> {
        let bad = || CodecError::new(format!("invalid type specification {j}"));
        match j {
            Json::String(s) => match s.as_str() {
                "string" => Ok(Type::String),
                "number" => Ok(Type::Number),
                "bool" => Ok(Type::Bool),
                "dynamic" => Ok(Type::Dynamic),
                _ => Err(bad()),
            },
            Json::Array(parts) if parts.len() >= 2 => {
                let kind = parts[0].as_str().ok_or_else(bad)?;
                match kind {
                    "list" => Ok(Type::list(Type::from_json(&parts[1])?)),
                    "set" => Ok(Type::set(Type::from_json(&parts[1])?)),
                    "map" => Ok(Type::map(Type::from_json(&parts[1])?)),
                    "object" => {
                        let attrs = parts[1].as_object().ok_or_else(bad)?;
                        let mut out = BTreeMap::new();
                        for (k, v) in attrs {
                            out.insert(k.clone(), Type::from_json(v)?);
                        }
                        Ok(Type::Object(out))
                    }
                    "tuple" => {
                        let elems = parts[1].as_array().ok_or_else(bad)?;
                        Ok(Type::Tuple(
                            elems
                                .iter()
                                .map(Type::from_json)
                                .collect::<Result<_, _>>()?,
                        ))
                    }
                    _ => Err(bad()),
                }
            }
            _ => Err(bad()),
        }
    }
}

/// A number as cty carries it. Terraform numbers are arbitrary precision; this provider only
/// needs integers and ordinary floats, and refuses (as a decode error) anything else.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Number {
    Int(i64),
    Float(f64),
}

impl Number {
    pub fn as_i64(self) -> Option<i64> {
        match self {
            Number::Int(i) => Some(i),
            Number::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(f as i64),
            Number::Float(_) => None,
        }
    }
    pub fn as_f64(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Float(f) => f,
        }
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Number::Int(i) => write!(f, "{i}"),
            Number::Float(x) => write!(f, "{x}"),
        }
    }
}

/// A Terraform value. `Unknown` is "known after apply"; `Null` is an absent optional value.
/// Collections hold their elements in order; a set keeps the order it was decoded in.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Value {
    #[default]
    Null,
    Unknown,
    Bool(bool),
    Number(Number),
    String(String),
    List(Vec<Value>),
    Set(Vec<Value>),
    Map(BTreeMap<String, Value>),
    Object(BTreeMap<String, Value>),
    Tuple(Vec<Value>),
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Number(Number::Int(i))
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(o: Option<T>) -> Self {
        o.map_or(Value::Null, Into::into)
    }
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
    pub fn is_unknown(&self) -> bool {
        matches!(self, Value::Unknown)
    }
    /// True when the value and everything inside it is known.
    pub fn is_wholly_known(&self) -> bool {
        match self {
            Value::Unknown => false,
            Value::List(v) | Value::Set(v) | Value::Tuple(v) => {
                v.iter().all(Value::is_wholly_known)
            }
            Value::Map(m) | Value::Object(m) => m.values().all(Value::is_wholly_known),
            _ => true,
        }
    }

    /// The attribute `name` of an object; `Null` for a null object or a missing attribute.
    pub fn attr(&self, name: &str) -> &Value {
        static NULL: Value = Value::Null;
        match self {
            Value::Object(m) => m.get(name).unwrap_or(&NULL),
            _ => &NULL,
        }
    }
    /// Sets an attribute of an object value (no-op on anything else).
    pub fn set_attr(&mut self, name: &str, v: Value) {
        if let Value::Object(m) = self {
            m.insert(name.to_string(), v);
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Number(n) => n.as_i64(),
            _ => None,
        }
    }
    /// Elements of a list, set or tuple.
    pub fn elements(&self) -> &[Value] {
        match self {
            Value::List(v) | Value::Set(v) | Value::Tuple(v) => v,
            _ => &[],
        }
    }
    /// Entries of a map or object.
    pub fn entries(&self) -> Option<&BTreeMap<String, Value>> {
        match self {
            Value::Map(m) | Value::Object(m) => Some(m),
            _ => None,
        }
    }

    /// A null value shaped like `ty`'s object: every attribute present and null. Used to
    /// build states attribute by attribute.
    pub fn null_object(ty: &Type) -> Value {
        match ty {
            Type::Object(attrs) => {
                Value::Object(attrs.keys().map(|k| (k.clone(), Value::Null)).collect())
            }
            _ => Value::Null,
        }
    }

    // ----- MessagePack -----

    /// Decodes a msgpack DynamicValue of type `ty`.
    pub fn from_msgpack(bytes: &[u8], ty: &Type) -> Result<Value, CodecError> {
        super::msgpack::decode(bytes, ty)
    }

    /// Encodes the value as msgpack for type `ty` (the form Terraform expects in responses).
    pub fn to_msgpack(&self, ty: &Type) -> Result<Vec<u8>, CodecError> {
        super::msgpack::encode(self, ty)
    }

    // ----- JSON -----

    /// Decodes a JSON DynamicValue (or raw state) of type `ty`. JSON cannot carry unknowns.
    pub fn from_json(bytes: &[u8], ty: &Type) -> Result<Value, CodecError> {
        let j: Json = serde_json::from_slice(bytes)
            .map_err(|e| CodecError::new(format!("invalid JSON: {e}")))?;
        from_js(&j, ty, &mut Vec::new())
    }

    /// JSON form of a wholly known value (used for raw state and for debugging output).
    pub fn to_json(&self) -> Json {
        match self {
            Value::Null | Value::Unknown => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Number(Number::Int(i)) => Json::from(*i),
            Value::Number(Number::Float(f)) => {
                serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number)
            }
            Value::String(s) => Json::String(s.clone()),
            Value::List(v) | Value::Set(v) | Value::Tuple(v) => {
                Json::Array(v.iter().map(Value::to_json).collect())
            }
            Value::Map(m) | Value::Object(m) => {
                Json::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
            }
        }
    }
}

/// A value that does not fit its type, with the path where it went wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}{}", if path.is_empty() { String::new() } else { format!(" at {}", path.join("")) })]
pub struct CodecError {
    pub message: String,
    pub path: Vec<String>,
}

impl CodecError {
    pub(super) fn new(message: String) -> Self {
        CodecError {
            message,
            path: Vec::new(),
        }
    }
    pub(super) fn at(message: String, path: &[Step<'_>]) -> Self {
        CodecError {
            message,
            path: render_path(path),
        }
    }
}

/// The path as an error shows it, one rendered step each (`.attr`, `["key"]`, `[0]`).
pub(super) fn render_path(path: &[Step<'_>]) -> Vec<String> {
    path.iter().map(Step::render).collect()
}

/// One step of the path to the value being decoded or encoded, borrowed from the input: a
/// value that fits its type (every one Terraform sends) costs no allocation for its path,
/// which is rendered only into an error.
#[derive(Clone, Copy, Debug)]
pub(super) enum Step<'a> {
    Attr(&'a str),
    Key(&'a str),
    Index(usize),
}

impl Step<'_> {
    fn render(&self) -> String {
        match self {
            Step::Attr(a) => format!(".{a}"),
            Step::Key(k) => format!("[{k:?}]"),
            Step::Index(i) => format!("[{i}]"),
        }
    }
}

pub(super) fn parse_number(s: &str) -> Option<Number> {
    if let Ok(i) = s.parse::<i64>() {
        return Some(Number::Int(i));
    }
    s.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .map(Number::Float)
}

fn from_js<'a>(j: &'a Json, ty: &Type, path: &mut Vec<Step<'a>>) -> Result<Value, CodecError> {
    if j.is_null() {
        return Ok(Value::Null);
    }
    let mismatch = |path: &[Step<'_>]| {
        CodecError::at(format!("expected {} but got JSON {j}", type_name(ty)), path)
    };
    match ty {
        Type::String => j
            .as_str()
            .map(|s| Value::String(s.to_string()))
            .ok_or_else(|| mismatch(path)),
        Type::Bool => j.as_bool().map(Value::Bool).ok_or_else(|| mismatch(path)),
        Type::Number => match j {
            Json::Number(n) => n
                .as_i64()
                .map(Number::Int)
                .or_else(|| n.as_f64().map(Number::Float))
                .map(Value::Number)
                .ok_or_else(|| mismatch(path)),
            Json::String(s) => parse_number(s)
                .map(Value::Number)
                .ok_or_else(|| mismatch(path)),
            _ => Err(mismatch(path)),
        },
        Type::Dynamic => {
            // JSON dynamic values are {"value": ..., "type": ...}.
            let ty_json = j.get("type").ok_or_else(|| mismatch(path))?;
            let inner = Type::from_json(ty_json)?;
            from_js(j.get("value").unwrap_or(&Json::Null), &inner, path)
        }
        Type::List(et) | Type::Set(et) => {
            let items = j.as_array().ok_or_else(|| mismatch(path))?;
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                path.push(Step::Index(i));
                out.push(from_js(item, et, path)?);
                path.pop();
            }
            Ok(if matches!(ty, Type::List(_)) {
                Value::List(out)
            } else {
                Value::Set(out)
            })
        }
        Type::Tuple(ets) => {
            let items = j
                .as_array()
                .filter(|a| a.len() == ets.len())
                .ok_or_else(|| mismatch(path))?;
            let mut out = Vec::with_capacity(items.len());
            for (i, (item, et)) in items.iter().zip(ets).enumerate() {
                path.push(Step::Index(i));
                out.push(from_js(item, et, path)?);
                path.pop();
            }
            Ok(Value::Tuple(out))
        }
        Type::Map(et) => {
            let entries = j.as_object().ok_or_else(|| mismatch(path))?;
            let mut out = BTreeMap::new();
            for (k, v) in entries {
                path.push(Step::Key(k));
                out.insert(k.clone(), from_js(v, et, path)?);
                path.pop();
            }
            Ok(Value::Map(out))
        }
        Type::Object(attrs) => {
            let entries = j.as_object().ok_or_else(|| mismatch(path))?;
            let mut out: BTreeMap<String, Value> =
                attrs.keys().map(|k| (k.clone(), Value::Null)).collect();
            for (k, v) in entries {
                let at = attrs
                    .get(k)
                    .ok_or_else(|| CodecError::at(format!("unsupported attribute {k:?}"), path))?;
                path.push(Step::Attr(k));
                out.insert(k.clone(), from_js(v, at, path)?);
                path.pop();
            }
            Ok(Value::Object(out))
        }
    }
}

/// The most specific type of a known value (for encoding values of dynamic attributes).
pub(super) fn infer_type(v: &Value) -> Type {
    match v {
        Value::Null | Value::Unknown => Type::Dynamic,
        Value::Bool(_) => Type::Bool,
        Value::Number(_) => Type::Number,
        Value::String(_) => Type::String,
        Value::List(items) => Type::list(items.first().map_or(Type::Dynamic, infer_type)),
        Value::Set(items) => Type::set(items.first().map_or(Type::Dynamic, infer_type)),
        Value::Map(m) => Type::map(m.values().next().map_or(Type::Dynamic, infer_type)),
        Value::Object(m) => {
            Type::Object(m.iter().map(|(k, v)| (k.clone(), infer_type(v))).collect())
        }
        Value::Tuple(items) => Type::Tuple(items.iter().map(infer_type).collect()),
    }
}

pub(super) fn type_name(ty: &Type) -> String {
    ty.to_json().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(pairs: &[(&str, Value)]) -> Value {
        Value::Object(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }

    fn object_type() -> Type {
        Type::Object(BTreeMap::from([
            ("name".to_string(), Type::String),
            ("size".to_string(), Type::Number),
            ("enabled".to_string(), Type::Bool),
            ("cidrs".to_string(), Type::list(Type::String)),
            ("zones".to_string(), Type::set(Type::String)),
            ("tags".to_string(), Type::map(Type::String)),
            (
                "timeouts".to_string(),
                Type::Object(BTreeMap::from([("create".to_string(), Type::String)])),
            ),
        ]))
    }

    #[test]
    fn roundtrip_nested_object_with_nulls_and_unknowns() {
        let ty = object_type();
        let v = obj(&[
            ("name", "app".into()),
            ("size", 8.into()),
            ("enabled", Value::Unknown),
            (
                "cidrs",
                Value::List(vec!["10.0.0.0/8".into(), Value::Unknown]),
            ),
            ("zones", Value::Set(vec!["a".into(), "b".into()])),
            (
                "tags",
                Value::Map(BTreeMap::from([("k".to_string(), "v".into())])),
            ),
            ("timeouts", Value::Null),
        ]);
        let bytes = v.to_msgpack(&ty).unwrap();
        assert_eq!(Value::from_msgpack(&bytes, &ty).unwrap(), v);
    }

    #[test]
    fn encoding_matches_rmpv_byte_for_byte_and_decodes_what_rmpv_writes() {
        // rmpv (the value tree this codec replaced) as an independent reference for the
        // wire form: the same bytes out, and the same value back from its bytes.
        let ty = object_type();
        let v = obj(&[
            ("name", "äpp".into()),
            ("size", Value::Number(Number::Int(-70_000))),
            ("enabled", true.into()),
            ("cidrs", Value::List(vec!["x".repeat(300).into()])),
            ("zones", Value::Set(vec![])),
            (
                "tags",
                Value::Map(BTreeMap::from([("k".to_string(), Value::Unknown)])),
            ),
            ("timeouts", obj(&[("create", Value::Null)])),
        ]);
        let ours = v.to_msgpack(&ty).unwrap();
        let theirs = rmpv::Value::Map(vec![
            (
                "cidrs".into(),
                rmpv::Value::Array(vec!["x".repeat(300).into()]),
            ),
            ("enabled".into(), true.into()),
            ("name".into(), "äpp".into()),
            ("size".into(), (-70_000i64).into()),
            (
                "tags".into(),
                rmpv::Value::Map(vec![("k".into(), rmpv::Value::Ext(0, vec![0]))]),
            ),
            (
                "timeouts".into(),
                rmpv::Value::Map(vec![("create".into(), rmpv::Value::Nil)]),
            ),
            ("zones".into(), rmpv::Value::Array(vec![])),
        ]);
        let mut expected = Vec::new();
        rmpv::encode::write_value(&mut expected, &theirs).unwrap();
        assert_eq!(ours, expected);
        assert_eq!(Value::from_msgpack(&expected, &ty).unwrap(), v);
        for big in [u64::MAX, 1 << 40] {
            let mut b = Vec::new();
            rmpv::encode::write_value(&mut b, &rmpv::Value::from(big)).unwrap();
            let expected = i64::try_from(big).map_or(Number::Float(big as f64), Number::Int);
            assert_eq!(
                Value::from_msgpack(&b, &Type::Number).unwrap(),
                Value::Number(expected)
            );
        }
    }

    #[test]
    fn object_keys_in_any_order_missing_or_repeated_decode_as_sorted_ones_do() {
        // cty sends an object's keys sorted; the decoder walks the schema beside them, so
        // any other order must still give the same value (rmpv writes the keys as given).
        let ty = object_type();
        // The attributes left out decode as null.
        let sorted = obj(&[
            ("cidrs", Value::Null),
            ("enabled", true.into()),
            ("name", "app".into()),
            ("size", Value::Number(Number::Int(3))),
            ("tags", Value::Null),
            ("timeouts", Value::Null),
            ("zones", Value::Null),
        ]);
        let encode = |pairs: Vec<(&str, rmpv::Value)>| {
            let mut b = Vec::new();
            let map = pairs.into_iter().map(|(k, v)| (k.into(), v)).collect();
            rmpv::encode::write_value(&mut b, &rmpv::Value::Map(map)).unwrap();
            b
        };
        let shuffled = encode(vec![
            ("size", 3.into()),
            ("name", "app".into()),
            ("enabled", true.into()),
        ]);
        assert_eq!(Value::from_msgpack(&shuffled, &ty).unwrap(), sorted);
        // A repeated key keeps its last value.
        let repeated = encode(vec![
            ("name", "old".into()),
            ("enabled", true.into()),
            ("name", "app".into()),
            ("size", 3.into()),
        ]);
        assert_eq!(Value::from_msgpack(&repeated, &ty).unwrap(), sorted);
        let unknown = encode(vec![("enabled", true.into()), ("nope", 1.into())]);
        let err = Value::from_msgpack(&unknown, &ty).unwrap_err();
        assert!(
            err.message.contains("unsupported attribute \"nope\""),
            "{err}"
        );
    }

    #[test]
    fn an_attribute_the_type_lacks_is_an_encoding_error_wherever_it_sorts() {
        let ty = object_type();
        for extra in ["aaa", "m", "zzz"] {
            let mut m = match obj(&[("name", "app".into())]) {
                Value::Object(m) => m,
                _ => unreachable!(),
            };
            m.insert(extra.to_string(), true.into());
            let err = Value::Object(m).to_msgpack(&ty).unwrap_err();
            assert!(
                err.message == format!("attribute {extra:?} is not in the type")
                    && err.path.is_empty(),
                "{extra}: {err}"
            );
        }
    }

    #[test]
    fn truncated_input_is_an_error_with_its_path() {
        let ty = object_type();
        let bytes = obj(&[("name", "app".into())]).to_msgpack(&ty).unwrap();
        for cut in 1..bytes.len() {
            assert!(Value::from_msgpack(&bytes[..cut], &ty).is_err(), "{cut}");
        }
        // A string announced longer than the input, inside `name`.
        let mut b = Vec::new();
        rmpv::encode::write_value(
            &mut b,
            &rmpv::Value::Map(vec![("name".into(), "abcdef".into())]),
        )
        .unwrap();
        b.truncate(b.len() - 2);
        let err = Value::from_msgpack(&b, &ty).unwrap_err();
        assert_eq!(err.path, vec![".name".to_string()], "{err}");
    }

    #[test]
    fn unknown_is_extension_zero_and_any_extension_decodes_as_unknown() {
        let bytes = Value::Unknown.to_msgpack(&Type::String).unwrap();
        assert_eq!(bytes, vec![0xd4, 0x00, 0x00]);
        // Terraform 1.6+ sends refined unknowns as extension 12 with a payload.
        let refined = [0xc7, 0x03, 0x0c, 0x81, 0x01, 0xc3];
        assert_eq!(
            Value::from_msgpack(&refined, &Type::String).unwrap(),
            Value::Unknown
        );
    }

    #[test]
    fn null_object_attributes_are_all_written() {
        let ty = object_type();
        let bytes = Value::null_object(&ty).to_msgpack(&ty).unwrap();
        let mp = rmpv::decode::read_value(&mut &bytes[..]).unwrap();
        let keys: Vec<_> = mp
            .as_map()
            .unwrap()
            .iter()
            .map(|(k, _)| k.as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            keys,
            ["cidrs", "enabled", "name", "size", "tags", "timeouts", "zones"]
        );
    }

    #[test]
    fn map_keys_in_any_order_or_repeated_decode_as_sorted_ones_do() {
        let encode = |pairs: &[(&str, &str)]| {
            let mut b = Vec::new();
            let map = pairs
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect();
            rmpv::encode::write_value(&mut b, &rmpv::Value::Map(map)).unwrap();
            b
        };
        let ty = Type::map(Type::String);
        let want = Value::Map(BTreeMap::from([
            ("a".to_string(), "1".into()),
            ("b".to_string(), "2".into()),
        ]));
        for pairs in [
            &[("a", "1"), ("b", "2")][..],
            &[("b", "2"), ("a", "1")],
            &[("a", "0"), ("b", "2"), ("a", "1")],
        ] {
            assert_eq!(
                Value::from_msgpack(&encode(pairs), &ty).unwrap(),
                want,
                "{pairs:?}"
            );
        }
    }

    #[test]
    fn empty_map_decodes_per_type() {
        let bytes = [0x80]; // empty msgpack map
        assert_eq!(
            Value::from_msgpack(&bytes, &Type::map(Type::String)).unwrap(),
            Value::Map(BTreeMap::new())
        );
        let oty = Type::Object(BTreeMap::from([("a".to_string(), Type::String)]));
        assert_eq!(
            Value::from_msgpack(&bytes, &oty).unwrap(),
            obj(&[("a", Value::Null)])
        );
    }

    #[test]
    fn numbers_as_floats_and_strings_are_accepted() {
        let f = rmpv::Value::F64(2.5);
        let mut b = Vec::new();
        rmpv::encode::write_value(&mut b, &f).unwrap();
        assert_eq!(
            Value::from_msgpack(&b, &Type::Number).unwrap(),
            Value::Number(Number::Float(2.5))
        );
        let s = rmpv::Value::String("12345678901".into());
        let mut b = Vec::new();
        rmpv::encode::write_value(&mut b, &s).unwrap();
        assert_eq!(
            Value::from_msgpack(&b, &Type::Number).unwrap().as_i64(),
            Some(12_345_678_901)
        );
        // Integral floats are written as integers, as cty does.
        assert_eq!(
            Value::Number(Number::Float(3.0))
                .to_msgpack(&Type::Number)
                .unwrap(),
            vec![3]
        );
    }

    #[test]
    fn type_mismatch_reports_the_path() {
        let ty = object_type();
        let bad = rmpv::Value::Map(vec![(
            rmpv::Value::String("cidrs".into()),
            rmpv::Value::Array(vec![rmpv::Value::Boolean(true)]),
        )]);
        let mut b = Vec::new();
        rmpv::encode::write_value(&mut b, &bad).unwrap();
        let err = Value::from_msgpack(&b, &ty).unwrap_err();
        assert_eq!(err.path, vec![".cidrs".to_string(), "[0]".to_string()]);
        assert!(err.to_string().contains("expected \"string\""), "{err}");
    }

    #[test]
    fn unsupported_attribute_and_trailing_bytes_are_errors() {
        let ty = Type::Object(BTreeMap::from([("a".to_string(), Type::String)]));
        let bad = rmpv::Value::Map(vec![(rmpv::Value::String("b".into()), rmpv::Value::Nil)]);
        let mut b = Vec::new();
        rmpv::encode::write_value(&mut b, &bad).unwrap();
        assert!(Value::from_msgpack(&b, &ty).is_err());
        assert!(Value::from_msgpack(&[0xc0, 0xc0], &Type::String).is_err());
        assert!(Value::from_msgpack(&[], &Type::String).is_err());
    }

    #[test]
    fn json_input_is_accepted() {
        let ty = object_type();
        let v = Value::from_json(
            br#"{"name":"x","size":"3","zones":["a"],"tags":{"k":"v"},"timeouts":{"create":"5m"}}"#,
            &ty,
        )
        .unwrap();
        assert_eq!(v.attr("name").as_str(), Some("x"));
        assert_eq!(v.attr("size").as_i64(), Some(3));
        assert_eq!(v.attr("zones"), &Value::Set(vec!["a".into()]));
        assert_eq!(v.attr("timeouts").attr("create").as_str(), Some("5m"));
        assert!(v.attr("enabled").is_null());
    }

    #[test]
    fn dynamic_values_carry_their_type() {
        let v = Value::List(vec!["a".into(), "b".into()]);
        let bytes = v.to_msgpack(&Type::Dynamic).unwrap();
        assert_eq!(Value::from_msgpack(&bytes, &Type::Dynamic).unwrap(), v);
        let j = br#"{"value": {"x": 1}, "type": ["object", {"x": "number"}]}"#;
        assert_eq!(
            Value::from_json(j, &Type::Dynamic)
                .unwrap()
                .attr("x")
                .as_i64(),
            Some(1)
        );
    }

    #[test]
    fn type_json_roundtrip() {
        let ty = Type::Tuple(vec![object_type(), Type::Dynamic]);
        assert_eq!(Type::from_json(&ty.to_json()).unwrap(), ty);
        assert_eq!(
            Type::list(Type::String).to_json().to_string(),
            r#"["list","string"]"#
        );
    }
}

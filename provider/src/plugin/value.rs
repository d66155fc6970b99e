//! Terraform values (cty) and their wire encodings.
//!
//! Terraform sends configuration, plans and state as `DynamicValue`: MessagePack (always in
//! practice) or JSON (accepted by the protocol). Neither encoding is self-describing enough on
//! its own: an empty msgpack map may be an object or a map, a number may arrive as a string,
//! and an unknown value is an extension. So decoding is driven by the schema's [`Type`], just
//! as Terraform's own cty library does it. The low-level msgpack reading and writing is
//! `rmpv`'s; what is ours is the mapping between cty's type system and msgpack.

use std::collections::BTreeMap;
use std::fmt;

use rmpv::Value as Mp;
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
        let mut rd = bytes;
        let mp = rmpv::decode::read_value(&mut rd)
            .map_err(|e| CodecError::new(format!("invalid msgpack: {e}")))?;
        if !rd.is_empty() {
            return Err(CodecError::new(format!(
                "{} trailing bytes after the msgpack value",
                rd.len()
            )));
        }
        from_mp(&mp, ty, &mut Vec::new())
    }

    /// Encodes the value as msgpack for type `ty` (the form Terraform expects in responses).
    pub fn to_msgpack(&self, ty: &Type) -> Result<Vec<u8>, CodecError> {
        let mp = to_mp(self, ty, &mut Vec::new())?;
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, &mp)
            .map_err(|e| CodecError::new(format!("msgpack encode failed: {e}")))?;
        Ok(out)
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
    fn new(message: String) -> Self {
        CodecError {
            message,
            path: Vec::new(),
        }
    }
    fn at(message: String, path: &[String]) -> Self {
        CodecError {
            message,
            path: path.to_vec(),
        }
    }
}

fn mp_kind(mp: &Mp) -> &'static str {
    match mp {
        Mp::Nil => "nil",
        Mp::Boolean(_) => "bool",
        Mp::Integer(_) => "integer",
        Mp::F32(_) | Mp::F64(_) => "float",
        Mp::String(_) => "string",
        Mp::Binary(_) => "binary",
        Mp::Array(_) => "array",
        Mp::Map(_) => "map",
        Mp::Ext(..) => "extension",
    }
}

fn parse_number(s: &str) -> Option<Number> {
    if let Ok(i) = s.parse::<i64>() {
        return Some(Number::Int(i));
    }
    s.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .map(Number::Float)
}

fn from_mp(mp: &Mp, ty: &Type, path: &mut Vec<String>) -> Result<Value, CodecError> {
    // Any extension is an unknown value: type 0 is cty's plain unknown, type 12 an unknown
    // with refinements (Terraform 1.6+). Refinements only narrow the unknown; dropping them
    // is always safe for a provider that never promises more than "unknown".
    if let Mp::Ext(..) = mp {
        return Ok(Value::Unknown);
    }
    if let Mp::Nil = mp {
        return Ok(Value::Null);
    }
    let mismatch = |path: &[String]| {
        CodecError::at(
            format!("expected {} but got msgpack {}", type_name(ty), mp_kind(mp)),
            path,
        )
    };
    match ty {
        Type::String => match mp {
            Mp::String(s) => s
                .as_str()
                .map(|s| Value::String(s.to_string()))
                .ok_or_else(|| CodecError::at("string is not valid UTF-8".into(), path)),
            _ => Err(mismatch(path)),
        },
        Type::Bool => match mp {
            Mp::Boolean(b) => Ok(Value::Bool(*b)),
            _ => Err(mismatch(path)),
        },
        Type::Number => match mp {
            Mp::Integer(i) => i
                .as_i64()
                .map(|i| Value::Number(Number::Int(i)))
                .or_else(|| i.as_u64().map(|u| Value::Number(Number::Float(u as f64))))
                .ok_or_else(|| mismatch(path)),
            Mp::F32(f) => Ok(Value::Number(Number::Float(f64::from(*f)))),
            Mp::F64(f) => Ok(Value::Number(Number::Float(*f))),
            // cty writes numbers that do not fit an int64 or float64 exactly as strings.
            Mp::String(s) => s
                .as_str()
                .and_then(parse_number)
                .map(Value::Number)
                .ok_or_else(|| CodecError::at(format!("invalid number {s:?}"), path)),
            _ => Err(mismatch(path)),
        },
        Type::Dynamic => {
            // A dynamic value travels as [type JSON bytes, value].
            let parts = match mp {
                Mp::Array(a) if a.len() == 2 => a,
                _ => return Err(mismatch(path)),
            };
            let ty_bytes: &[u8] = match &parts[0] {
                Mp::Binary(b) => b,
                Mp::String(s) => s.as_bytes(),
                _ => return Err(mismatch(path)),
            };
            let ty_json: Json = serde_json::from_slice(ty_bytes)
                .map_err(|e| CodecError::at(format!("invalid dynamic type: {e}"), path))?;
            let inner = Type::from_json(&ty_json)?;
            from_mp(&parts[1], &inner, path)
        }
        Type::List(et) | Type::Set(et) => {
            let items = match mp {
                Mp::Array(a) => a,
                _ => return Err(mismatch(path)),
            };
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                path.push(format!("[{i}]"));
                out.push(from_mp(item, et, path)?);
                path.pop();
            }
            Ok(if matches!(ty, Type::List(_)) {
                Value::List(out)
            } else {
                Value::Set(out)
            })
        }
        Type::Tuple(ets) => {
            let items = match mp {
                Mp::Array(a) if a.len() == ets.len() => a,
                _ => return Err(mismatch(path)),
            };
            let mut out = Vec::with_capacity(items.len());
            for (i, (item, et)) in items.iter().zip(ets).enumerate() {
                path.push(format!("[{i}]"));
                out.push(from_mp(item, et, path)?);
                path.pop();
            }
            Ok(Value::Tuple(out))
        }
        Type::Map(et) => {
            let entries = match mp {
                Mp::Map(m) => m,
                _ => return Err(mismatch(path)),
            };
            let mut out = BTreeMap::new();
            for (k, v) in entries {
                let key = k
                    .as_str()
                    .ok_or_else(|| CodecError::at("map key is not a string".into(), path))?;
                path.push(format!("[{key:?}]"));
                out.insert(key.to_string(), from_mp(v, et, path)?);
                path.pop();
            }
            Ok(Value::Map(out))
        }
        Type::Object(attrs) => {
            let entries = match mp {
                Mp::Map(m) => m,
                _ => return Err(mismatch(path)),
            };
            let mut out: BTreeMap<String, Value> =
                attrs.keys().map(|k| (k.clone(), Value::Null)).collect();
            for (k, v) in entries {
                let key = k
                    .as_str()
                    .ok_or_else(|| CodecError::at("object key is not a string".into(), path))?;
                let at = attrs.get(key).ok_or_else(|| {
                    CodecError::at(format!("unsupported attribute {key:?}"), path)
                })?;
                path.push(format!(".{key}"));
                out.insert(key.to_string(), from_mp(v, at, path)?);
                path.pop();
            }
            Ok(Value::Object(out))
        }
    }
}

fn to_mp(v: &Value, ty: &Type, path: &mut Vec<String>) -> Result<Mp, CodecError> {
    match (v, ty) {
        (Value::Unknown, _) => Ok(Mp::Ext(0, vec![0])),
        (Value::Null, Type::Dynamic) => Ok(Mp::Nil),
        (_, Type::Dynamic) => {
            // Encode as [type, value] with the type inferred from the value itself.
            let inner = infer_type(v);
            let ty_json = serde_json::to_vec(&inner.to_json()).expect("type JSON");
            Ok(Mp::Array(vec![
                Mp::Binary(ty_json),
                to_mp(v, &inner, path)?,
            ]))
        }
        (Value::Null, _) => Ok(Mp::Nil),
        (Value::Bool(b), Type::Bool) => Ok(Mp::Boolean(*b)),
        (Value::String(s), Type::String) => Ok(Mp::String(s.clone().into())),
        (Value::Number(Number::Int(i)), Type::Number) => Ok(Mp::Integer((*i).into())),
        (Value::Number(Number::Float(f)), Type::Number) => {
            if f.fract() == 0.0 && f.abs() < 9.0e15 {
                Ok(Mp::Integer((*f as i64).into()))
            } else {
                Ok(Mp::F64(*f))
            }
        }
        (Value::List(items), Type::List(et)) | (Value::Set(items), Type::Set(et)) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                path.push(format!("[{i}]"));
                out.push(to_mp(item, et, path)?);
                path.pop();
            }
            Ok(Mp::Array(out))
        }
        (Value::Tuple(items), Type::Tuple(ets)) if items.len() == ets.len() => {
            let mut out = Vec::with_capacity(items.len());
            for (item, et) in items.iter().zip(ets) {
                out.push(to_mp(item, et, path)?);
            }
            Ok(Mp::Array(out))
        }
        (Value::Map(m), Type::Map(et)) => {
            let mut out = Vec::with_capacity(m.len());
            for (k, item) in m {
                path.push(format!("[{k:?}]"));
                out.push((Mp::String(k.clone().into()), to_mp(item, et, path)?));
                path.pop();
            }
            Ok(Mp::Map(out))
        }
        (Value::Object(m), Type::Object(attrs)) => {
            // Every attribute of the type is written, in name order, as cty does.
            let mut out = Vec::with_capacity(attrs.len());
            for (k, at) in attrs {
                path.push(format!(".{k}"));
                let item = m.get(k).unwrap_or(&Value::Null);
                out.push((Mp::String(k.clone().into()), to_mp(item, at, path)?));
                path.pop();
            }
            if let Some(extra) = m.keys().find(|k| !attrs.contains_key(*k)) {
                return Err(CodecError::at(
                    format!("attribute {extra:?} is not in the type"),
                    path,
                ));
            }
            Ok(Mp::Map(out))
        }
        _ => Err(CodecError::at(
            format!("value {v:?} does not conform to {}", type_name(ty)),
            path,
        )),
    }
}

fn from_js(j: &Json, ty: &Type, path: &mut Vec<String>) -> Result<Value, CodecError> {
    if j.is_null() {
        return Ok(Value::Null);
    }
    let mismatch = |path: &[String]| {
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
                path.push(format!("[{i}]"));
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
                path.push(format!("[{i}]"));
                out.push(from_js(item, et, path)?);
                path.pop();
            }
            Ok(Value::Tuple(out))
        }
        Type::Map(et) => {
            let entries = j.as_object().ok_or_else(|| mismatch(path))?;
            let mut out = BTreeMap::new();
            for (k, v) in entries {
                path.push(format!("[{k:?}]"));
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
                path.push(format!(".{k}"));
                out.insert(k.clone(), from_js(v, at, path)?);
                path.pop();
            }
            Ok(Value::Object(out))
        }
    }
}

/// The most specific type of a known value (for encoding values of dynamic attributes).
fn infer_type(v: &Value) -> Type {
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

fn type_name(ty: &Type) -> String {
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

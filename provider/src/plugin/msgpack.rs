//! MessagePack, the encoding of every `DynamicValue` Terraform sends and expects, read and
//! written straight between the bytes and [`Value`], driven by the schema's [`Type`] (the
//! wire form alone cannot tell an empty object from an empty map, and numbers may arrive as
//! strings), as cty's own msgpack package does it.
//!
//! The wire format's markers, lengths and scalars are `rmp`'s; the mapping to cty is ours.
//! Not `rmpv` (the crate's untyped value tree) in between: Terraform validates and plans
//! each resource with two to three calls of a whole object of about 80 attributes, and the
//! tree cost every key and string an allocation of its own before the typed copy made
//! another (the codec was most of the provider's own time per call; BENCHMARKS.md, "Where
//! `terraform plan`'s time goes").

use std::collections::BTreeMap;

use rmp::Marker;

use super::value::{render_path, CodecError, Number, Step, Type, Value};

/// Decodes one msgpack value of type `ty` that must fill `bytes` exactly.
pub fn decode(bytes: &[u8], ty: &Type) -> Result<Value, CodecError> {
    let mut rd = bytes;
    let value = read(&mut rd, ty, &mut Vec::new())?;
    if !rd.is_empty() {
        return Err(CodecError::new(format!(
            "{} trailing bytes after the msgpack value",
            rd.len()
        )));
    }
    Ok(value)
}

/// Encodes `v` as type `ty`: objects with every attribute of the type, in name order, and
/// numbers in their shortest form, as cty writes them.
pub fn encode(v: &Value, ty: &Type) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(256);
    write(&mut out, v, ty, &mut Vec::new())?;
    Ok(out)
}

// ----- reading -----

fn invalid(e: impl std::fmt::Display, path: &[Step<'_>]) -> CodecError {
    CodecError::at(format!("invalid msgpack: {e}"), path)
}

/// What a marker starts, in the words of the errors.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Nil,
    Bool,
    Integer,
    Float,
    Str,
    Binary,
    Array,
    Map,
    Extension,
    Reserved,
}

impl Kind {
    fn of(m: Marker) -> Kind {
        match m {
            Marker::Null => Kind::Nil,
            Marker::True | Marker::False => Kind::Bool,
            Marker::FixPos(_)
            | Marker::FixNeg(_)
            | Marker::U8
            | Marker::U16
            | Marker::U32
            | Marker::U64
            | Marker::I8
            | Marker::I16
            | Marker::I32
            | Marker::I64 => Kind::Integer,
            Marker::F32 | Marker::F64 => Kind::Float,
            Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32 => Kind::Str,
            Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => Kind::Binary,
            Marker::FixArray(_) | Marker::Array16 | Marker::Array32 => Kind::Array,
            Marker::FixMap(_) | Marker::Map16 | Marker::Map32 => Kind::Map,
            Marker::FixExt1
            | Marker::FixExt2
            | Marker::FixExt4
            | Marker::FixExt8
            | Marker::FixExt16
            | Marker::Ext8
            | Marker::Ext16
            | Marker::Ext32 => Kind::Extension,
            Marker::Reserved => Kind::Reserved,
        }
    }

    /// The kind of the next value, without consuming it.
    fn next(rd: &[u8]) -> Option<Kind> {
        rd.first().map(|b| Kind::of(Marker::from_u8(*b)))
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Nil => "nil",
            Kind::Bool => "bool",
            Kind::Integer => "integer",
            Kind::Float => "float",
            Kind::Str => "string",
            Kind::Binary => "binary",
            Kind::Array => "array",
            Kind::Map => "map",
            Kind::Extension => "extension",
            Kind::Reserved => "reserved byte 0xc1",
        }
    }
}

/// The next `n` bytes.
fn take<'a>(rd: &mut &'a [u8], n: usize, path: &[Step<'_>]) -> Result<&'a [u8], CodecError> {
    if rd.len() < n {
        return Err(invalid(
            format!("{n} bytes announced, {} left", rd.len()),
            path,
        ));
    }
    let (head, tail) = rd.split_at(n);
    *rd = tail;
    Ok(head)
}

fn read_str<'a>(rd: &mut &'a [u8], path: &[Step<'_>]) -> Result<&'a str, CodecError> {
    match rmp::decode::read_str_from_slice(*rd) {
        Ok((s, rest)) => {
            *rd = rest;
            Ok(s)
        }
        Err(rmp::decode::DecodeStringError::InvalidUtf8(..)) => {
            Err(CodecError::at("string is not valid UTF-8".into(), path))
        }
        Err(e) => Err(invalid(e, path)),
    }
}

fn read<'a>(rd: &mut &'a [u8], ty: &Type, path: &mut Vec<Step<'a>>) -> Result<Value, CodecError> {
    let Some(&first) = rd.first() else {
        return Err(invalid("unexpected end of input", path));
    };
    let marker = Marker::from_u8(first);
    let kind = Kind::of(marker);
    // Any extension is an unknown value: type 0 is cty's plain unknown, type 12 an unknown
    // with refinements (Terraform 1.6+). Refinements only narrow the unknown; dropping them
    // is always safe for a provider that never promises more than "unknown".
    if kind == Kind::Extension {
        let meta = rmp::decode::read_ext_meta(rd).map_err(|e| invalid(e, path))?;
        take(rd, meta.size as usize, path)?;
        return Ok(Value::Unknown);
    }
    if marker == Marker::Null {
        *rd = &rd[1..];
        return Ok(Value::Null);
    }
    let mismatch = |path: &[Step<'_>]| {
        CodecError::at(
            format!(
                "expected {} but got msgpack {}",
                super::value::type_name(ty),
                kind.name()
            ),
            path,
        )
    };
    match ty {
        Type::String if kind == Kind::Str => Ok(Value::String(read_str(rd, path)?.to_owned())),
        Type::Bool if matches!(marker, Marker::True | Marker::False) => {
            *rd = &rd[1..];
            Ok(Value::Bool(marker == Marker::True))
        }
        Type::Number => match marker {
            Marker::U64 => {
                let u: u64 = rmp::decode::read_int(rd).map_err(|e| invalid(e, path))?;
                Ok(Value::Number(
                    i64::try_from(u).map_or(Number::Float(u as f64), Number::Int),
                ))
            }
            _ if kind == Kind::Integer => {
                let i: i64 = rmp::decode::read_int(rd).map_err(|e| invalid(e, path))?;
                Ok(Value::Number(Number::Int(i)))
            }
            Marker::F32 => {
                let f = rmp::decode::read_f32(rd).map_err(|e| invalid(e, path))?;
                Ok(Value::Number(Number::Float(f64::from(f))))
            }
            Marker::F64 => {
                let f = rmp::decode::read_f64(rd).map_err(|e| invalid(e, path))?;
                Ok(Value::Number(Number::Float(f)))
            }
            // cty writes numbers that do not fit an int64 or float64 exactly as strings.
            _ if kind == Kind::Str => {
                let s = read_str(rd, path)?;
                super::value::parse_number(s)
                    .map(Value::Number)
                    .ok_or_else(|| CodecError::at(format!("invalid number {s:?}"), path))
            }
            _ => Err(mismatch(path)),
        },
        Type::Dynamic => {
            // A dynamic value travels as [type JSON bytes, value].
            if kind != Kind::Array
                || rmp::decode::read_array_len(rd).map_err(|e| invalid(e, path))? != 2
            {
                return Err(mismatch(path));
            }
            let ty_bytes: &[u8] = match Kind::next(rd) {
                Some(Kind::Binary) => {
                    let n = rmp::decode::read_bin_len(rd).map_err(|e| invalid(e, path))?;
                    take(rd, n as usize, path)?
                }
                Some(Kind::Str) => read_str(rd, path)?.as_bytes(),
                _ => return Err(mismatch(path)),
            };
            let ty_json: serde_json::Value = serde_json::from_slice(ty_bytes)
                .map_err(|e| CodecError::at(format!("invalid dynamic type: {e}"), path))?;
            let inner = Type::from_json(&ty_json)?;
            read(rd, &inner, path)
        }
        Type::List(et) | Type::Set(et) if kind == Kind::Array => {
            let n = rmp::decode::read_array_len(rd).map_err(|e| invalid(e, path))? as usize;
            let out = read_elements(rd, n, std::iter::repeat(&**et), path)?;
            Ok(if matches!(ty, Type::List(_)) {
                Value::List(out)
            } else {
                Value::Set(out)
            })
        }
        Type::Tuple(ets) if kind == Kind::Array => {
            let n = rmp::decode::read_array_len(rd).map_err(|e| invalid(e, path))? as usize;
            if n != ets.len() {
                return Err(mismatch(path));
            }
            Ok(Value::Tuple(read_elements(rd, n, ets.iter(), path)?))
        }
        Type::Map(et) if kind == Kind::Map => {
            let n = rmp::decode::read_map_len(rd).map_err(|e| invalid(e, path))?;
            // Built from its pairs at once, like an object below (cty writes a map's keys
            // sorted too); a repeated key keeps its last value.
            let mut pairs: Vec<(String, Value)> = Vec::with_capacity((n as usize).min(1024));
            for _ in 0..n {
                if Kind::next(rd) != Some(Kind::Str) {
                    return Err(CodecError::at("map key is not a string".into(), path));
                }
                let key = read_str(rd, path)?;
                path.push(Step::Key(key));
                let v = read(rd, et, path)?;
                path.pop();
                pairs.push((key.to_owned(), v));
            }
            Ok(Value::Map(pairs.into_iter().collect()))
        }
        Type::Object(attrs) if kind == Kind::Map => {
            let n = rmp::decode::read_map_len(rd).map_err(|e| invalid(e, path))?;
            // cty writes an object's attributes sorted by name, as the schema's map holds
            // them: each key is first compared with the schema's next attribute only, and
            // the object is built from its sorted pairs at once (a tree search per key and
            // per insert was most of a plan's decoding). A key out of that order is looked
            // up; the result is the same.
            let mut pairs: Vec<(String, Value)> = Vec::with_capacity(attrs.len());
            let mut schema = attrs.iter().peekable();
            for _ in 0..n {
                if Kind::next(rd) != Some(Kind::Str) {
                    return Err(CodecError::at("object key is not a string".into(), path));
                }
                let key = read_str(rd, path)?;
                while schema.next_if(|(name, _)| name.as_str() < key).is_some() {}
                let (name, at) = match schema.next_if(|(name, _)| name.as_str() == key) {
                    Some(found) => found,
                    None => attrs.get_key_value(key).ok_or_else(|| {
                        CodecError::at(format!("unsupported attribute {key:?}"), path)
                    })?,
                };
                path.push(Step::Attr(key));
                let v = read(rd, at, path)?;
                path.pop();
                pairs.push((name.clone(), v));
            }
            // Sorted already (or not, and then sorted here); a repeated key keeps its last
            // value, as inserting one by one did.
            let mut out: BTreeMap<String, Value> = pairs.into_iter().collect();
            // Terraform writes every attribute; an absent one is null, as in cty.
            if out.len() < attrs.len() {
                for name in attrs.keys() {
                    if !out.contains_key(name) {
                        out.insert(name.clone(), Value::Null);
                    }
                }
            }
            Ok(Value::Object(out))
        }
        _ => Err(mismatch(path)),
    }
}

// ----- writing -----

/// Writing to a `Vec` fails only where the allocator would abort first; this keeps the
/// signatures honest without a panic path.
fn wrote<T, E: std::fmt::Display>(r: Result<T, E>) -> Result<(), CodecError> {
    r.map(|_| ())
        .map_err(|e| CodecError::new(format!("msgpack encode failed: {e}")))
}

fn write<'a>(
    out: &mut Vec<u8>,
    v: &'a Value,
    ty: &'a Type,
    path: &mut Vec<Step<'a>>,
) -> Result<(), CodecError> {
    match (v, ty) {
        // cty's plain unknown: extension 0 with one zero byte.
        (Value::Unknown, _) => {
            wrote(rmp::encode::write_ext_meta(out, 1, 0))?;
            out.push(0);
            Ok(())
        }
        (Value::Null, _) => wrote(rmp::encode::write_nil(out)),
        (_, Type::Dynamic) => {
            // [type, value], the type inferred from the value itself.
            let inner = super::value::infer_type(v);
            let ty_json = serde_json::to_vec(&inner.to_json())
                .map_err(|e| CodecError::at(format!("dynamic type: {e}"), path))?;
            wrote(rmp::encode::write_array_len(out, 2))?;
            wrote(rmp::encode::write_bin(out, &ty_json))?;
            write_owned_type(out, v, &inner, path)
        }
        (Value::Bool(b), Type::Bool) => wrote(rmp::encode::write_bool(out, *b)),
        (Value::String(s), Type::String) => wrote(rmp::encode::write_str(out, s)),
        (Value::Number(Number::Int(i)), Type::Number) => wrote(rmp::encode::write_sint(out, *i)),
        (Value::Number(Number::Float(f)), Type::Number) => {
            if f.fract() == 0.0 && f.abs() < 9.0e15 {
                wrote(rmp::encode::write_sint(out, *f as i64))
            } else {
                wrote(rmp::encode::write_f64(out, *f))
            }
        }
        (Value::List(items), Type::List(et)) | (Value::Set(items), Type::Set(et)) => {
            write_elements(out, items, std::iter::repeat(&**et), path)
        }
        (Value::Tuple(items), Type::Tuple(ets)) if items.len() == ets.len() => {
            write_elements(out, items, ets.iter(), path)
        }
        (Value::Map(m), Type::Map(et)) => {
            wrote(rmp::encode::write_map_len(out, len32(m.len(), path)?))?;
            for (k, item) in m {
                wrote(rmp::encode::write_str(out, k))?;
                path.push(Step::Key(k));
                write(out, item, et, path)?;
                path.pop();
            }
            Ok(())
        }
        (Value::Object(m), Type::Object(attrs)) => {
            // Both maps are sorted by name: the value's attributes are walked beside the
            // type's (no tree search per attribute); one the type lacks is an error.
            let extra = |name: &str, path: &[Step<'_>]| {
                CodecError::at(format!("attribute {name:?} is not in the type"), path)
            };
            wrote(rmp::encode::write_map_len(out, len32(attrs.len(), path)?))?;
            let mut values = m.iter().peekable();
            for (k, at) in attrs {
                if let Some((name, _)) = values.next_if(|(name, _)| name.as_str() < k.as_str()) {
                    return Err(extra(name, path));
                }
                let v = values
                    .next_if(|(name, _)| *name == k)
                    .map_or(&Value::Null, |(_, v)| v);
                wrote(rmp::encode::write_str(out, k))?;
                path.push(Step::Attr(k));
                write(out, v, at, path)?;
                path.pop();
            }
            match values.next() {
                Some((name, _)) => Err(extra(name, path)),
                None => Ok(()),
            }
        }
        _ => Err(CodecError::at(
            format!(
                "value {v:?} does not conform to {}",
                super::value::type_name(ty)
            ),
            path,
        )),
    }
}

/// The `n` elements of an array, the i-th of the i-th type (a list's or set's one element
/// type repeated, or a tuple's own).
fn read_elements<'a, 't>(
    rd: &mut &'a [u8],
    n: usize,
    types: impl Iterator<Item = &'t Type>,
    path: &mut Vec<Step<'a>>,
) -> Result<Vec<Value>, CodecError> {
    // A length is only a claim until the bytes are there: never reserve more than remain.
    let mut out = Vec::with_capacity(n.min(rd.len()));
    for (i, et) in types.take(n).enumerate() {
        path.push(Step::Index(i));
        out.push(read(rd, et, path)?);
        path.pop();
    }
    Ok(out)
}

/// An array of `items`, the i-th written as the i-th type (see [`read_elements`]).
fn write_elements<'a>(
    out: &mut Vec<u8>,
    items: &'a [Value],
    types: impl Iterator<Item = &'a Type>,
    path: &mut Vec<Step<'a>>,
) -> Result<(), CodecError> {
    wrote(rmp::encode::write_array_len(out, len32(items.len(), path)?))?;
    for (i, (item, et)) in items.iter().zip(types).enumerate() {
        path.push(Step::Index(i));
        write(out, item, et, path)?;
        path.pop();
    }
    Ok(())
}

/// `write` for a type made here (a dynamic value's inferred type), which cannot lend its
/// names to the path: the path below it renders at once.
fn write_owned_type(
    out: &mut Vec<u8>,
    v: &Value,
    ty: &Type,
    path: &[Step<'_>],
) -> Result<(), CodecError> {
    write(out, v, ty, &mut Vec::new()).map_err(|mut e| {
        let mut full = render_path(path);
        full.append(&mut e.path);
        e.path = full;
        e
    })
}

fn len32(n: usize, path: &[Step<'_>]) -> Result<u32, CodecError> {
    u32::try_from(n)
        .map_err(|_| CodecError::at(format!("{n} elements, more than msgpack allows"), path))
}

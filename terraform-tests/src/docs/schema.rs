//! A typed view of the blocks in `terraform providers schema -json`, as much of it as the
//! documentation shows: attributes with their type, mode and description, and nested blocks.
//!
//! Terraform prints object members sorted by name, and so are the lists here: the
//! documentation's order follows from the schema alone.

use anyhow::{anyhow, bail, Context};
use serde_json::Value;

/// One schema block (the provider's configuration, a resource, or a nested block).
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub description: String,
    /// Sorted by name.
    pub attributes: Vec<Attribute>,
    /// Sorted by name.
    pub blocks: Vec<NestedBlock>,
}

/// One attribute of a block.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    pub name: String,
    /// The type as the documentation names it, e.g. "String" or "Map of String".
    pub type_name: String,
    pub description: String,
    pub required: bool,
    pub optional: bool,
    pub computed: bool,
    pub sensitive: bool,
    pub deprecated: bool,
}

impl Attribute {
    /// Set by the provider only: an attribute for the "Attributes Reference", not an argument.
    pub fn is_read_only(&self) -> bool {
        self.computed && !self.optional && !self.required
    }
}

/// A nested block (`block_types` in the JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct NestedBlock {
    pub name: String,
    /// `single`, `list`, `set`, `map` or `group`.
    pub nesting: String,
    pub min_items: u64,
    pub max_items: Option<u64>,
    pub block: Block,
}

impl NestedBlock {
    /// A block the configuration must contain.
    pub fn is_required(&self) -> bool {
        self.min_items > 0
    }

    /// How the documentation names the kind of block, e.g. "Block" or "Block List, Max: 1".
    pub fn kind(&self) -> String {
        match (self.nesting.as_str(), self.max_items) {
            ("single" | "group", _) => "Block".to_string(),
            ("list", Some(max)) => format!("Block List, Max: {max}"),
            ("list", None) => "Block List".to_string(),
            ("set", Some(max)) => format!("Block Set, Max: {max}"),
            ("set", None) => "Block Set".to_string(),
            ("map", _) => "Block Map".to_string(),
            (other, _) => format!("Block ({other})"),
        }
    }
}

/// Parses the `block` object of a schema. `path` names it in errors (e.g.
/// `autoheal_instance.timeouts`).
pub fn parse_block(json: &Value, path: &str) -> anyhow::Result<Block> {
    if !json.is_object() {
        bail!("{path}: a schema block must be a JSON object, not {json}");
    }
    let mut attributes = Vec::new();
    if let Some(attrs) = json.get("attributes") {
        let attrs = attrs
            .as_object()
            .ok_or_else(|| anyhow!("{path}.attributes is not an object"))?;
        for (name, attr) in attrs {
            attributes.push(parse_attribute(name, attr, &format!("{path}.{name}"))?);
        }
    }
    let mut blocks = Vec::new();
    if let Some(types) = json.get("block_types") {
        let types = types
            .as_object()
            .ok_or_else(|| anyhow!("{path}.block_types is not an object"))?;
        for (name, nested) in types {
            let p = format!("{path}.{name}");
            blocks.push(NestedBlock {
                name: name.clone(),
                nesting: nested["nesting_mode"]
                    .as_str()
                    .ok_or_else(|| anyhow!("{p}: no nesting_mode"))?
                    .to_string(),
                min_items: nested["min_items"].as_u64().unwrap_or(0),
                max_items: nested["max_items"].as_u64().filter(|m| *m > 0),
                block: parse_block(&nested["block"], &p)?,
            });
        }
    }
    // serde_json keeps JSON objects sorted unless its preserve_order feature is on; sort
    // anyway so the order never depends on a feature flag.
    attributes.sort_by(|a, b| a.name.cmp(&b.name));
    blocks.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Block {
        description: description(json),
        attributes,
        blocks,
    })
}

fn parse_attribute(name: &str, json: &Value, path: &str) -> anyhow::Result<Attribute> {
    if json.get("nested_type").is_some() {
        // Protocol 6 nested attributes; the provider has none, and documenting them needs a
        // nested section like blocks get. Refuse rather than document them as a bare type.
        bail!("{path}: nested attribute types are not supported by the docs generator");
    }
    let flag = |key: &str| json[key].as_bool().unwrap_or(false);
    Ok(Attribute {
        name: name.to_string(),
        type_name: type_name(&json["type"]).with_context(|| format!("{path}: type"))?,
        description: description(json),
        required: flag("required"),
        optional: flag("optional"),
        computed: flag("computed"),
        sensitive: flag("sensitive"),
        deprecated: flag("deprecated"),
    })
}

fn description(json: &Value) -> String {
    json["description"]
        .as_str()
        .unwrap_or("")
        .trim()
        .to_string()
}

/// The documentation's name of a type in Terraform's JSON type syntax: `"string"` is
/// "String", `["map","string"]` is "Map of String", `["list",["set","number"]]` is "List of
/// Set of Number".
pub fn type_name(json: &Value) -> anyhow::Result<String> {
    match json {
        Value::String(primitive) => Ok(match primitive.as_str() {
            "string" => "String",
            "number" => "Number",
            "bool" => "Boolean",
            "dynamic" => "Dynamic",
            other => bail!("unknown primitive type {other:?}"),
        }
        .to_string()),
        Value::Array(parts) => match (parts.first().and_then(Value::as_str), parts.get(1)) {
            (Some(kind @ ("list" | "set" | "map")), Some(element)) => {
                let kind = match kind {
                    "list" => "List",
                    "set" => "Set",
                    _ => "Map",
                };
                Ok(format!("{kind} of {}", type_name(element)?))
            }
            (Some("object"), Some(_)) => Ok("Object".to_string()),
            (Some("tuple"), Some(_)) => Ok("Tuple".to_string()),
            _ => bail!("unknown type {json}"),
        },
        _ => bail!("unknown type {json}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_types_like_the_registry() {
        let cases = [
            (json!("string"), "String"),
            (json!("number"), "Number"),
            (json!("bool"), "Boolean"),
            (json!(["map", "string"]), "Map of String"),
            (json!(["list", ["set", "number"]]), "List of Set of Number"),
            (json!(["object", {"a": "string"}]), "Object"),
        ];
        for (json, want) in cases {
            assert_eq!(type_name(&json).unwrap(), want, "{json}");
        }
        assert!(type_name(&json!("float")).is_err());
        assert!(type_name(&json!(["list"])).is_err());
        assert!(type_name(&json!(3)).is_err());
    }

    #[test]
    fn parses_blocks_sorted_with_modes_and_nested_blocks() {
        let block = parse_block(
            &json!({
                "description": " The thing. ",
                "attributes": {
                    "zeta": {"type": "string", "description": "Z.", "optional": true, "computed": true},
                    "alpha": {"type": "number", "description": "A.", "required": true},
                    "id": {"type": "string", "description": "Id.", "computed": true, "sensitive": true}
                },
                "block_types": {
                    "rules": {"nesting_mode": "list", "max_items": 3, "min_items": 1,
                              "block": {"attributes": {"x": {"type": "bool", "optional": true}}}},
                    "limits": {"nesting_mode": "single", "block": {"description": "L."}}
                }
            }),
            "thing",
        )
        .unwrap();
        assert_eq!(block.description, "The thing.");
        let names: Vec<_> = block.attributes.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["alpha", "id", "zeta"]);
        assert!(block.attributes[0].required && !block.attributes[0].is_read_only());
        assert!(block.attributes[1].is_read_only() && block.attributes[1].sensitive);
        assert!(!block.attributes[2].is_read_only());
        let blocks: Vec<_> = block.blocks.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(blocks, ["limits", "rules"]);
        assert_eq!(block.blocks[0].kind(), "Block");
        assert!(!block.blocks[0].is_required());
        assert_eq!(block.blocks[1].kind(), "Block List, Max: 3");
        assert!(block.blocks[1].is_required());
        assert_eq!(block.blocks[1].block.attributes[0].type_name, "Boolean");
    }

    #[test]
    fn refuses_what_it_cannot_document() {
        let nested =
            json!({"attributes": {"n": {"nested_type": {"attributes": {}}, "optional": true}}});
        let err = parse_block(&nested, "r").unwrap_err().to_string();
        assert!(
            err.contains("r.n") && err.contains("nested attribute"),
            "{err}"
        );
        let bad_type = json!({"attributes": {"t": {"type": "float"}}});
        let err = format!("{:#}", parse_block(&bad_type, "r").unwrap_err());
        assert!(err.contains("r.t") && err.contains("float"), "{err}");
    }
}

//! Declaring schemas: attributes, nested blocks, descriptions, defaults and replace rules.
//!
//! Shaped after terraform-plugin-framework: an attribute says whether it is required, optional,
//! computed or optional+computed, and carries its plan behaviour (a default filled in at plan
//! time, "requires replacement", "use state for unknown"). Protocol 6.0 has no schema defaults,
//! so defaults are applied by [`crate::plugin::plan`] and show in the plan as ordinary values.

use std::collections::BTreeMap;

use super::value::{Type, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Required,
    Optional,
    Computed,
    /// Optional in configuration; when omitted the provider fills it (a default or AWS's value).
    OptionalComputed,
}

#[derive(Clone, Debug)]
pub struct Attribute {
    pub name: String,
    pub ty: Type,
    pub description: String,
    pub mode: Mode,
    pub sensitive: bool,
    /// A change to this attribute replaces the whole resource.
    pub requires_replace: bool,
    /// Value filled in at plan time when the configuration leaves it null.
    pub default: Option<Value>,
    /// A computed value that does not change on update keeps its prior value in the plan
    /// instead of becoming "known after apply".
    pub use_state_for_unknown: bool,
    pub deprecated: bool,
}

impl Attribute {
    fn new(name: &str, ty: Type, mode: Mode, description: &str) -> Self {
        Attribute {
            name: name.to_string(),
            ty,
            description: description.to_string(),
            mode,
            sensitive: false,
            requires_replace: false,
            default: None,
            use_state_for_unknown: false,
            deprecated: false,
        }
    }
    pub fn required(name: &str, ty: Type, description: &str) -> Self {
        Self::new(name, ty, Mode::Required, description)
    }
    pub fn optional(name: &str, ty: Type, description: &str) -> Self {
        Self::new(name, ty, Mode::Optional, description)
    }
    pub fn computed(name: &str, ty: Type, description: &str) -> Self {
        Self::new(name, ty, Mode::Computed, description)
    }
    pub fn optional_computed(name: &str, ty: Type, description: &str) -> Self {
        Self::new(name, ty, Mode::OptionalComputed, description)
    }
    /// An optional attribute whose default shows in the plan (Optional+Computed on the wire).
    pub fn with_default(name: &str, ty: Type, default: Value, description: &str) -> Self {
        let mut a = Self::new(name, ty, Mode::OptionalComputed, description);
        a.default = Some(default);
        a
    }
    pub fn requires_replace(mut self) -> Self {
        self.requires_replace = true;
        self
    }
    pub fn use_state_for_unknown(mut self) -> Self {
        self.use_state_for_unknown = true;
        self
    }
    pub fn sensitive(mut self) -> Self {
        self.sensitive = true;
        self
    }
    pub fn is_required(&self) -> bool {
        self.mode == Mode::Required
    }
    pub fn is_optional(&self) -> bool {
        matches!(self.mode, Mode::Optional | Mode::OptionalComputed)
    }
    pub fn is_computed(&self) -> bool {
        matches!(self.mode, Mode::Computed | Mode::OptionalComputed)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nesting {
    /// At most one block, e.g. `timeouts { ... }`; the value is an object or null.
    Single,
    List,
    Set,
}

#[derive(Clone, Debug)]
pub struct NestedBlock {
    pub type_name: String,
    pub nesting: Nesting,
    pub block: Block,
    pub min_items: i64,
    pub max_items: i64,
    pub requires_replace: bool,
}

impl NestedBlock {
    pub fn single(type_name: &str, block: Block) -> Self {
        NestedBlock {
            type_name: type_name.to_string(),
            nesting: Nesting::Single,
            block,
            min_items: 0,
            max_items: 0,
            requires_replace: false,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Block {
    pub description: String,
    pub attributes: Vec<Attribute>,
    pub blocks: Vec<NestedBlock>,
    pub deprecated: bool,
}

impl Block {
    pub fn new(description: &str) -> Self {
        Block {
            description: description.to_string(),
            ..Default::default()
        }
    }
    pub fn attribute(mut self, a: Attribute) -> Self {
        self.attributes.push(a);
        self
    }
    pub fn block(mut self, b: NestedBlock) -> Self {
        self.blocks.push(b);
        self
    }
    pub fn get_attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }
    pub fn get_block(&self, name: &str) -> Option<&NestedBlock> {
        self.blocks.iter().find(|b| b.type_name == name)
    }

    /// The object type of a value of this block: its attributes and nested blocks.
    pub fn value_type(&self) -> Type {
        let mut attrs: BTreeMap<String, Type> = self
            .attributes
            .iter()
            .map(|a| (a.name.clone(), a.ty.clone()))
            .collect();
        for b in &self.blocks {
            let inner = b.block.value_type();
            let ty = match b.nesting {
                Nesting::Single => inner,
                Nesting::List => Type::list(inner),
                Nesting::Set => Type::set(inner),
            };
            attrs.insert(b.type_name.clone(), ty);
        }
        Type::Object(attrs)
    }
}

#[derive(Clone, Debug, Default)]
pub struct Schema {
    pub version: i64,
    pub block: Block,
}

impl Schema {
    pub fn value_type(&self) -> Type {
        self.block.value_type()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_type_includes_nested_blocks() {
        let b = Block::new("r")
            .attribute(Attribute::required("name", Type::String, "n"))
            .block(NestedBlock::single(
                "timeouts",
                Block::new("t").attribute(Attribute::optional("create", Type::String, "c")),
            ));
        let ty = b.value_type();
        let Type::Object(attrs) = ty else {
            panic!("object expected")
        };
        assert_eq!(attrs["name"], Type::String);
        assert!(matches!(attrs["timeouts"], Type::Object(_)));
    }
}

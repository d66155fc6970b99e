//! Generic planning, as terraform-plugin-framework does it before a resource's own rules:
//! defaults fill omitted optional+computed attributes, computed attributes become unknown
//! where apply will set them, stable computed ids keep their prior value, and attributes
//! marked "requires replacement" that changed are listed so Terraform plans a replacement and
//! tells the user which attribute forced it.

use super::diagnostics::AttributePath;
use super::schema::{Block, Nesting};
use super::value::Value;

/// The outcome of generic planning.
pub struct GenericPlan {
    pub planned: Value,
    pub requires_replace: Vec<AttributePath>,
}

/// Plans `block` given Terraform's proposed new state. `prior` is `Null` on create.
pub fn plan_block(block: &Block, prior: &Value, config: &Value, proposed: &Value) -> GenericPlan {
    let mut requires_replace = Vec::new();
    if proposed.is_null() {
        // Destroy: nothing to plan.
        return GenericPlan {
            planned: Value::Null,
            requires_replace,
        };
    }
    let creating = prior.is_null();
    let mut planned = proposed.clone();
    // Does the configuration change anything the user sets? Only then may computed values
    // that are not stable across updates become unknown.
    let config_changed = !creating && configured_differs(block, prior, &planned);
    fill(block, prior, config, &mut planned, creating, config_changed);
    if !creating {
        collect_replace(
            block,
            prior,
            &planned,
            &AttributePath::default(),
            &mut requires_replace,
        );
    }
    GenericPlan {
        planned,
        requires_replace,
    }
}

fn fill(
    block: &Block,
    prior: &Value,
    config: &Value,
    planned: &mut Value,
    creating: bool,
    config_changed: bool,
) {
    for a in &block.attributes {
        let cfg = config.attr(&a.name);
        if !a.is_computed() || !cfg.is_null() {
            continue;
        }
        let value = if let Some(d) = &a.default {
            d.clone()
        } else if creating {
            Value::Unknown
        } else if a.use_state_for_unknown || !config_changed {
            prior.attr(&a.name).clone()
        } else {
            Value::Unknown
        };
        planned.set_attr(&a.name, value);
    }
    for b in &block.blocks {
        if b.nesting != Nesting::Single {
            continue;
        }
        let mut inner = planned.attr(&b.type_name).clone();
        if inner.is_null() || inner.is_unknown() {
            continue;
        }
        fill(
            &b.block,
            prior.attr(&b.type_name),
            config.attr(&b.type_name),
            &mut inner,
            creating || prior.attr(&b.type_name).is_null(),
            config_changed,
        );
        planned.set_attr(&b.type_name, inner);
    }
}

/// True when any non-computed-only attribute differs between prior state and plan.
fn configured_differs(block: &Block, prior: &Value, planned: &Value) -> bool {
    block
        .attributes
        .iter()
        .filter(|a| a.is_optional() || a.is_required())
        .any(|a| prior.attr(&a.name) != planned.attr(&a.name))
        || block
            .blocks
            .iter()
            .any(|b| prior.attr(&b.type_name) != planned.attr(&b.type_name))
}

fn collect_replace(
    block: &Block,
    prior: &Value,
    planned: &Value,
    base: &AttributePath,
    out: &mut Vec<AttributePath>,
) {
    for a in block.attributes.iter().filter(|a| a.requires_replace) {
        let before = prior.attr(&a.name);
        let after = planned.attr(&a.name);
        // An unknown planned value may turn out different: that forces replacement too, as
        // Terraform shows it ("known after apply" # forces replacement).
        if before != after {
            let mut p = base.clone();
            p.0.push(super::diagnostics::PathStep::Attribute(a.name.clone()));
            out.push(p);
        }
    }
    for b in block.blocks.iter().filter(|b| b.nesting == Nesting::Single) {
        let mut p = base.clone();
        p.0.push(super::diagnostics::PathStep::Attribute(b.type_name.clone()));
        if b.requires_replace && prior.attr(&b.type_name) != planned.attr(&b.type_name) {
            out.push(p.clone());
        }
        collect_replace(
            &b.block,
            prior.attr(&b.type_name),
            planned.attr(&b.type_name),
            &p,
            out,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::schema::{Attribute, NestedBlock};
    use crate::plugin::value::Type;

    fn block() -> Block {
        Block::new("test")
            .attribute(Attribute::required("name", Type::String, "").requires_replace())
            .attribute(Attribute::with_default("size", Type::Number, 8.into(), ""))
            .attribute(Attribute::optional("note", Type::String, ""))
            .attribute(Attribute::computed("id", Type::String, "").use_state_for_unknown())
            .attribute(Attribute::computed("serving", Type::String, ""))
            .block(NestedBlock::single(
                "timeouts",
                Block::new("").attribute(Attribute::optional("create", Type::String, "")),
            ))
    }

    fn obj(pairs: &[(&str, Value)]) -> Value {
        let ty = block().value_type();
        let mut v = Value::null_object(&ty);
        for (k, x) in pairs {
            v.set_attr(k, x.clone());
        }
        v
    }

    #[test]
    fn create_fills_defaults_and_marks_computed_unknown() {
        let config = obj(&[("name", "a".into())]);
        let p = plan_block(&block(), &Value::Null, &config, &config);
        assert_eq!(p.planned.attr("size").as_i64(), Some(8));
        assert!(p.planned.attr("id").is_unknown());
        assert!(p.planned.attr("serving").is_unknown());
        assert!(p.planned.attr("note").is_null());
        assert!(p.requires_replace.is_empty());
    }

    #[test]
    fn unchanged_update_keeps_every_computed_value() {
        let prior = obj(&[
            ("name", "a".into()),
            ("size", 8.into()),
            ("id", "a".into()),
            ("serving", "i-1".into()),
        ]);
        let config = obj(&[("name", "a".into())]);
        let p = plan_block(&block(), &prior, &config, &prior);
        assert_eq!(p.planned, prior);
    }

    #[test]
    fn update_keeps_stable_ids_and_unknowns_the_rest() {
        let prior = obj(&[
            ("name", "a".into()),
            ("size", 8.into()),
            ("id", "a".into()),
            ("serving", "i-1".into()),
        ]);
        let config = obj(&[("name", "a".into()), ("note", "x".into())]);
        let mut proposed = prior.clone();
        proposed.set_attr("note", "x".into());
        let p = plan_block(&block(), &prior, &config, &proposed);
        assert_eq!(p.planned.attr("id").as_str(), Some("a"));
        assert!(p.planned.attr("serving").is_unknown());
        assert!(p.requires_replace.is_empty());
    }

    #[test]
    fn replace_names_the_attribute() {
        let prior = obj(&[("name", "a".into()), ("size", 8.into()), ("id", "a".into())]);
        let config = obj(&[("name", "b".into())]);
        let mut proposed = prior.clone();
        proposed.set_attr("name", "b".into());
        let p = plan_block(&block(), &prior, &config, &proposed);
        assert_eq!(p.requires_replace, vec![AttributePath::root("name")]);
        let mut proposed = prior.clone();
        proposed.set_attr("name", Value::Unknown);
        let p = plan_block(&block(), &prior, &config, &proposed);
        assert_eq!(p.requires_replace, vec![AttributePath::root("name")]);
    }

    #[test]
    fn destroy_plans_null() {
        let prior = obj(&[("name", "a".into())]);
        let p = plan_block(&block(), &prior, &Value::Null, &Value::Null);
        assert!(p.planned.is_null());
    }
}

//! The generated parts of a page: argument and attribute lists, nested block sections and the
//! timeouts section, in Markdown, from a [`Block`].
//!
//! Each attribute is one list item: its name, a parenthesis with its type and what the schema
//! and the plan tell about it (default, computed when omitted, forces replacement, sensitive,
//! deprecated), then its description verbatim: the descriptions are written as the
//! documentation.

use anyhow::bail;
use serde_json::Value;

use super::schema::{Attribute, Block, NestedBlock};

/// How a resource's descriptions say what a change does. The schema JSON has no field for
/// "forces replacement" (it is a plan-time rule of the provider), so every argument of the
/// resource must end its description with one of these sentences, and the documentation marks
/// the arguments that end with `replaces`. The provider's own tests hold the sentences to its
/// replace rules (`descriptions_say_whether_a_change_replaces` in
/// provider/src/autoheal_instance/schema.rs), so the mark follows the real behaviour.
#[derive(Debug, Clone, Copy)]
pub struct ChangeSentences {
    pub replaces: &'static str,
    pub in_place: &'static str,
}

/// The sentences of `autoheal_instance` (`REPLACES` and `IN_PLACE` in
/// provider/src/autoheal_instance/schema.rs).
pub const INSTANCE_CHANGE_SENTENCES: ChangeSentences = ChangeSentences {
    replaces: "Changing it replaces the whole stack.",
    in_place: "Can be changed in place.",
};

/// What Terraform planned for a resource whose configuration sets only its required
/// arguments: the provider's defaults (`after`), and which attributes it leaves to apply time
/// (`after_unknown`), from `terraform show -json` of that plan.
#[derive(Debug, Clone, Copy)]
pub struct PlannedDefaults<'a> {
    pub after: &'a Value,
    pub after_unknown: &'a Value,
}

/// How to render the arguments of one block.
#[derive(Debug, Clone, Copy, Default)]
pub struct Arguments<'a> {
    /// Set for a resource's top-level block: every argument must say what a change does.
    pub change_sentences: Option<ChangeSentences>,
    /// Set for a resource's top-level block.
    pub defaults: Option<PlannedDefaults<'a>>,
    /// Nested blocks documented in a section of the template's own, with the anchor to link
    /// to (`timeouts` -> `#timeouts`); they get no nested section here.
    pub documented_elsewhere: &'a [(&'a str, &'a str)],
}

/// "### Required" and "### Optional" lists of a block's arguments (attributes the
/// configuration may set, and nested blocks), then a section for each nested block.
pub fn arguments(block: &Block, how: &Arguments) -> anyhow::Result<String> {
    let mut problems = Vec::new();
    let mut required = Vec::new();
    let mut optional = Vec::new();
    for attr in block.attributes.iter().filter(|a| !a.is_read_only()) {
        let mut notes = Vec::new();
        if let Some(defaults) = how.defaults.filter(|_| !attr.required) {
            notes.extend(default_note(attr, defaults));
        }
        if let Some(sentences) = how.change_sentences {
            let d = attr.description.as_str();
            if d.ends_with(sentences.replaces) {
                notes.push("Forces replacement".to_string());
            } else if !d.ends_with(sentences.in_place) {
                problems.push(format!(
                    "`{}`: its description ends with neither {:?} nor {:?}, so the docs \
                     cannot tell whether changing it replaces the resource",
                    attr.name, sentences.replaces, sentences.in_place
                ));
            }
        }
        let item = attribute_item(attr, &notes, &mut problems);
        if attr.required {
            required.push(item);
        } else {
            optional.push(item);
        }
    }
    for nested in &block.blocks {
        let link = match how
            .documented_elsewhere
            .iter()
            .find(|(name, _)| *name == nested.name)
        {
            Some((_, anchor)) => format!("[below](#{anchor})"),
            None => format!("[below](#{})", nested_anchor(&nested.name)),
        };
        let mut item = list_item(
            &nested.name,
            &[nested.kind()],
            &nested.block.description,
            &mut problems,
        );
        item.push_str(&format!(" See {link}."));
        if nested.is_required() {
            required.push(item);
        } else {
            optional.push(item);
        }
    }

    let mut out = String::new();
    for (title, items) in [("Required", &required), ("Optional", &optional)] {
        if !items.is_empty() {
            out.push_str(&format!("### {title}\n\n{}\n\n", items.join("\n")));
        }
    }
    for nested in &block.blocks {
        if how
            .documented_elsewhere
            .iter()
            .all(|(name, _)| *name != nested.name)
        {
            nested_sections(&nested.name, nested, &mut out, &mut problems);
        }
    }
    finish(out, problems)
}

/// The list of a block's read-only attributes (computed and not configurable).
pub fn attributes(block: &Block) -> anyhow::Result<String> {
    let mut problems = Vec::new();
    let items: Vec<String> = block
        .attributes
        .iter()
        .filter(|a| a.is_read_only())
        .map(|a| attribute_item(a, &[], &mut problems))
        .collect();
    if items.is_empty() {
        problems.push("the block has no read-only attributes to list".to_string());
    }
    finish(format!("{}\n", items.join("\n")), problems)
}

/// A nested block documented on its own (the `timeouts` section): its description, then its
/// attributes.
pub fn block_section(nested: &NestedBlock) -> anyhow::Result<String> {
    let mut problems = Vec::new();
    let mut out = String::new();
    if nested.block.description.is_empty() {
        problems.push(format!("block `{}` has no description", nested.name));
    }
    out.push_str(&format!("{}\n\n", nested.block.description));
    block_members(&nested.block, &mut out, &mut problems);
    finish(out, problems)
}

fn finish(out: String, problems: Vec<String>) -> anyhow::Result<String> {
    if problems.is_empty() {
        Ok(format!("{}\n", out.trim_end()))
    } else {
        bail!("{}", problems.join("\n"))
    }
}

/// A section for a nested block and, after it, one for each block nested in it. `path` is the
/// block's dotted path (`assume_role`, `a.b`).
fn nested_sections(path: &str, nested: &NestedBlock, out: &mut String, problems: &mut Vec<String>) {
    out.push_str(&format!(
        "<a id=\"{}\"></a>\n### Nested block `{path}`\n\n",
        nested_anchor(path)
    ));
    block_members(&nested.block, out, problems);
    for inner in &nested.block.blocks {
        nested_sections(&format!("{path}.{}", inner.name), inner, out, problems);
    }
}

/// Which members of a nested block each of its lists holds: (title, attributes, blocks).
type MemberGroup = (
    &'static str,
    fn(&Attribute) -> bool,
    fn(&NestedBlock) -> bool,
);

const MEMBER_GROUPS: [MemberGroup; 3] = [
    ("Required", |a| a.required, NestedBlock::is_required),
    (
        "Optional",
        |a| a.optional && !a.required,
        |b| !b.is_required(),
    ),
    ("Read-only", Attribute::is_read_only, |_| false),
];

/// The attributes and blocks of a nested block, by mode.
fn block_members(block: &Block, out: &mut String, problems: &mut Vec<String>) {
    for (title, attribute_in, block_in) in MEMBER_GROUPS {
        let mut items: Vec<String> = block
            .attributes
            .iter()
            .filter(|a| attribute_in(a))
            .map(|a| attribute_item(a, &[], problems))
            .collect();
        for inner in block.blocks.iter().filter(|b| block_in(b)) {
            let mut item = list_item(
                &inner.name,
                &[inner.kind()],
                &inner.block.description,
                problems,
            );
            item.push_str(" See below.");
            items.push(item);
        }
        if !items.is_empty() {
            out.push_str(&format!("{title}:\n\n{}\n\n", items.join("\n")));
        }
    }
}

fn attribute_item(attr: &Attribute, notes: &[String], problems: &mut Vec<String>) -> String {
    let mut parts = vec![attr.type_name.clone()];
    parts.extend(notes.iter().cloned());
    if attr.sensitive {
        parts.push("Sensitive".to_string());
    }
    if attr.deprecated {
        parts.push("**Deprecated**".to_string());
    }
    list_item(&attr.name, &parts, &attr.description, problems)
}

/// `` - `name` (part, part) description ``, with the description's further lines indented
/// so that they stay inside the list item.
fn list_item(
    name: &str,
    parts: &[String],
    description: &str,
    problems: &mut Vec<String>,
) -> String {
    if description.is_empty() {
        problems.push(format!("`{name}` has no description"));
    }
    let description = description.replace('\n', "\n  ");
    format!("- {} ({}) {description}", code(name), parts.join(", "))
}

/// The note on an optional argument's default: the value the plan filled in, or that it is
/// computed when the plan left it unknown; none when the plan left it null.
fn default_note(attr: &Attribute, defaults: PlannedDefaults) -> Option<String> {
    if defaults.after_unknown[&attr.name] == Value::Bool(true) {
        return Some("Computed if omitted".to_string());
    }
    match &defaults.after[&attr.name] {
        Value::Null => None,
        value => Some(format!("Default {}", code(&hcl(value)))),
    }
}

/// A planned JSON value as an HCL literal: `"gp3"`, `10`, `false`, `[]`, `{ "k" = "v" }`.
pub fn hcl(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => hcl_string(s),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(hcl).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(members) if members.is_empty() => "{}".to_string(),
        Value::Object(members) => {
            let members: Vec<String> = members
                .iter()
                .map(|(k, v)| format!("{} = {}", hcl_string(k), hcl(v)))
                .collect();
            format!("{{ {} }}", members.join(", "))
        }
    }
}

/// A quoted HCL string: JSON's escapes are HCL's, and `${` / `%{`, which would start a
/// template sequence in HCL, are doubled.
fn hcl_string(s: &str) -> String {
    let quoted = Value::String(s.to_string()).to_string();
    quoted.replace("${", "$${").replace("%{", "%%{")
}

/// `text` as inline code, with a longer fence when it holds a backtick.
fn code(text: &str) -> String {
    if text.contains('`') {
        format!("`` {text} ``")
    } else {
        format!("`{text}`")
    }
}

/// The HTML anchor of a nested block's section.
pub fn nested_anchor(path: &str) -> String {
    format!("nested--{}", path.replace('.', "--"))
}

#[cfg(test)]
mod tests {
    use super::super::schema::parse_block;
    use super::*;
    use serde_json::json;

    const SENTENCES: ChangeSentences = ChangeSentences {
        replaces: "Replaces.",
        in_place: "In place.",
    };

    fn resource() -> Block {
        parse_block(
            &json!({
                "description": "A thing.",
                "attributes": {
                    "name": {"type": "string", "description": "The name. Replaces.", "required": true},
                    "size": {"type": "number", "description": "Size. In place.", "optional": true, "computed": true},
                    "zone": {"type": "string", "description": "Zone. Replaces.", "optional": true, "computed": true},
                    "note": {"type": "string", "description": "A note. In place.", "optional": true},
                    "cidrs": {"type": ["list", "string"], "description": "CIDRs. In place.", "optional": true, "computed": true},
                    "secret": {"type": "string", "description": "Secret. In place.", "optional": true, "sensitive": true},
                    "id": {"type": "string", "description": "Its id.", "computed": true}
                },
                "block_types": {
                    "timeouts": {"nesting_mode": "single", "block": {
                        "description": "Time limits.",
                        "attributes": {"create": {"type": "string", "description": "Create.", "optional": true}}
                    }},
                    "rule": {"nesting_mode": "list", "block": {
                        "description": "A rule.",
                        "attributes": {
                            "port": {"type": "number", "description": "Port.", "required": true},
                            "arn": {"type": "string", "description": "ARN.", "computed": true}
                        },
                        "block_types": {"match": {"nesting_mode": "single", "block": {
                            "description": "What matches.",
                            "attributes": {"path": {"type": "string", "description": "Path.", "optional": true}}
                        }}}
                    }}
                }
            }),
            "thing",
        )
        .unwrap()
    }

    fn planned() -> (Value, Value) {
        (
            json!({"name": "n", "size": 10, "zone": null, "note": null, "cidrs": [], "secret": null, "id": "n"}),
            json!({"zone": true, "cidrs": []}),
        )
    }

    #[test]
    fn arguments_show_type_default_and_replacement() {
        let (after, after_unknown) = planned();
        let md = arguments(
            &resource(),
            &Arguments {
                change_sentences: Some(SENTENCES),
                defaults: Some(PlannedDefaults {
                    after: &after,
                    after_unknown: &after_unknown,
                }),
                documented_elsewhere: &[("timeouts", "timeouts")],
            },
        )
        .unwrap();
        let expected = "\
### Required

- `name` (String, Forces replacement) The name. Replaces.

### Optional

- `cidrs` (List of String, Default `[]`) CIDRs. In place.
- `note` (String) A note. In place.
- `secret` (String, Sensitive) Secret. In place.
- `size` (Number, Default `10`) Size. In place.
- `zone` (String, Computed if omitted, Forces replacement) Zone. Replaces.
- `rule` (Block List) A rule. See [below](#nested--rule).
- `timeouts` (Block) Time limits. See [below](#timeouts).

<a id=\"nested--rule\"></a>
### Nested block `rule`

Required:

- `port` (Number) Port.

Optional:

- `match` (Block) What matches. See below.

Read-only:

- `arn` (String) ARN.

<a id=\"nested--rule--match\"></a>
### Nested block `rule.match`

Optional:

- `path` (String) Path.
";
        assert_eq!(md, expected, "got:\n{md}");
    }

    #[test]
    fn an_argument_that_does_not_say_what_a_change_does_is_an_error() {
        let mut block = resource();
        block.attributes[0].description = "Size, with no word on changes.".to_string();
        let how = Arguments {
            change_sentences: Some(SENTENCES),
            ..Arguments::default()
        };
        let err = arguments(&block, &how).unwrap_err().to_string();
        assert!(
            err.contains("`cidrs`") && err.contains("Replaces."),
            "{err}"
        );
        // Without sentences (a provider block) nothing is asked of the descriptions.
        assert!(arguments(&block, &Arguments::default()).is_ok());
    }

    #[test]
    fn an_undocumented_member_is_an_error() {
        let mut block = resource();
        assert_eq!(block.attributes[2].name, "name");
        block.attributes[2].description.clear();
        let err = arguments(&block, &Arguments::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("`name` has no description"), "{err}");

        let mut block = resource();
        assert_eq!(block.attributes[1].name, "id");
        block.attributes[1].description.clear();
        let err = attributes(&block).unwrap_err().to_string();
        assert!(err.contains("`id` has no description"), "{err}");
    }

    #[test]
    fn attributes_list_only_the_read_only_ones() {
        assert_eq!(
            attributes(&resource()).unwrap(),
            "- `id` (String) Its id.\n"
        );
    }

    #[test]
    fn a_block_section_lists_its_members() {
        let block = resource();
        let timeouts = block.blocks.iter().find(|b| b.name == "timeouts").unwrap();
        assert_eq!(
            block_section(timeouts).unwrap(),
            "Time limits.\n\nOptional:\n\n- `create` (String) Create.\n"
        );
    }

    #[test]
    fn planned_values_become_hcl_literals() {
        assert_eq!(hcl(&json!("gp3")), "\"gp3\"");
        assert_eq!(hcl(&json!(10)), "10");
        assert_eq!(hcl(&json!(false)), "false");
        assert_eq!(hcl(&json!([])), "[]");
        assert_eq!(hcl(&json!(["a", "b"])), "[\"a\", \"b\"]");
        assert_eq!(hcl(&json!({})), "{}");
        assert_eq!(hcl(&json!({"k": "v"})), "{ \"k\" = \"v\" }");
        assert_eq!(hcl(&json!("a\"${b}%{c}")), "\"a\\\"$${b}%%{c}\"");
        assert_eq!(code("a`b"), "`` a`b ``");
    }
}

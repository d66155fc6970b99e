//! The hand-written page templates under docs/templates/ and the directives in them.
//!
//! A template is Markdown. A line holding only `{{ directive }}` is replaced by what the
//! directive renders; every other line is copied as it is. Directives:
//!
//! | directive | renders |
//! |---|---|
//! | `provider.description` | the provider block's description |
//! | `provider.arguments` | the provider's arguments and nested blocks |
//! | `provider.example PATH` | PATH as a `terraform` code block; it must set every provider argument |
//! | `resource.description` | the page's resource's description |
//! | `resource.arguments` | its arguments, with defaults and "Forces replacement" |
//! | `resource.attributes` | its read-only attributes |
//! | `resource.timeouts` | its `timeouts` block |
//! | `example PATH` | PATH (relative to the repository root) as a `terraform` code block |
//!
//! A page must use the directives that list its schema (`provider.arguments`, or
//! `resource.arguments`, `resource.attributes` and, when the resource has a `timeouts` block,
//! `resource.timeouts`), so no attribute can be left out of the documentation by a template.
//! A notice naming the template follows the front matter of every generated page.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{anyhow, bail, Context};

use super::markdown::{self, Arguments, ChangeSentences, PlannedDefaults};
use super::schema::Block;

/// The resource a page documents.
#[derive(Debug, Clone, Copy)]
pub struct ResourcePage<'a> {
    pub type_name: &'a str,
    pub block: &'a Block,
    pub defaults: PlannedDefaults<'a>,
    pub change_sentences: ChangeSentences,
}

/// What the directives of one page can draw on.
#[derive(Debug, Clone, Copy)]
pub struct PageContext<'a> {
    /// The repository root: example paths are relative to it.
    pub root: &'a Path,
    /// The template's path relative to the root, for the notice and errors.
    pub template_path: &'a str,
    pub provider: &'a Block,
    /// None for the provider's page (docs/index.md).
    pub resource: Option<ResourcePage<'a>>,
}

/// The section of the page that documents the `timeouts` block.
const TIMEOUTS_ANCHOR: &str = "timeouts";

/// Renders `template` into a page.
pub fn render(template: &str, ctx: &PageContext) -> anyhow::Result<String> {
    let mut used = BTreeSet::new();
    let mut out = String::new();
    for (i, line) in template.lines().enumerate() {
        let at = || format!("{} line {}", ctx.template_path, i + 1);
        match directive(line).with_context(at)? {
            Some(d) => {
                let text = expand(d, ctx).with_context(at)?;
                used.insert(d.split_whitespace().next().unwrap_or(d).to_string());
                out.push_str(text.trim_end());
                out.push('\n');
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    let mut needed = vec![];
    match ctx.resource {
        None => needed.push("provider.arguments"),
        Some(r) => {
            needed.extend(["resource.arguments", "resource.attributes"]);
            if r.block.blocks.iter().any(|b| b.name == "timeouts") {
                needed.push("resource.timeouts");
            }
        }
    }
    let missing: Vec<&str> = needed.into_iter().filter(|d| !used.contains(*d)).collect();
    if !missing.is_empty() {
        bail!(
            "{}: the page must use {} so that its whole schema is documented",
            ctx.template_path,
            missing
                .iter()
                .map(|d| format!("{{{{ {d} }}}}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(with_notice(&out, ctx.template_path))
}

/// The directive of a line that holds only `{{ ... }}`; an error for `{{` anywhere else, so
/// that a mistyped directive never reaches a page.
fn directive(line: &str) -> anyhow::Result<Option<&str>> {
    let t = line.trim();
    if let Some(inner) = t.strip_prefix("{{").and_then(|r| r.strip_suffix("}}")) {
        let inner = inner.trim();
        if inner.contains("{{") || inner.contains("}}") || inner.is_empty() {
            bail!("malformed directive {t:?}");
        }
        return Ok(Some(inner));
    }
    if line.contains("{{") || line.contains("}}") {
        bail!("a directive must be alone on its line: {line:?}");
    }
    Ok(None)
}

fn expand(directive: &str, ctx: &PageContext) -> anyhow::Result<String> {
    let mut words = directive.split_whitespace();
    let name = words.next().unwrap_or_default();
    let argument = words.next();
    if words.next().is_some() {
        bail!("too many arguments in {{{{ {directive} }}}}");
    }
    let no_argument = || match argument {
        None => Ok(()),
        Some(a) => Err(anyhow!("{name} takes no argument, got {a:?}")),
    };
    let path = || argument.ok_or_else(|| anyhow!("{name} needs a file path"));
    let resource = || {
        ctx.resource
            .ok_or_else(|| anyhow!("{name} is only for a resource's page"))
    };
    match name {
        "provider.description" => {
            no_argument()?;
            described(&ctx.provider.description, "the provider")
        }
        "provider.arguments" => {
            no_argument()?;
            markdown::arguments(ctx.provider, &Arguments::default())
                .context("the provider's arguments")
        }
        "provider.example" => {
            let (path, text) = read_example(ctx.root, path()?)?;
            let missing = unset_arguments(ctx.provider, "", &text);
            if !missing.is_empty() {
                bail!(
                    "{path} must set every provider argument; it does not set {}",
                    missing.join(", ")
                );
            }
            Ok(code_block(&text))
        }
        "example" => Ok(code_block(&read_example(ctx.root, path()?)?.1)),
        "resource.description" => {
            no_argument()?;
            let r = resource()?;
            described(&r.block.description, r.type_name)
        }
        "resource.arguments" => {
            no_argument()?;
            let r = resource()?;
            markdown::arguments(
                r.block,
                &Arguments {
                    change_sentences: Some(r.change_sentences),
                    defaults: Some(r.defaults),
                    documented_elsewhere: &[("timeouts", TIMEOUTS_ANCHOR)],
                },
            )
            .with_context(|| format!("the arguments of {}", r.type_name))
        }
        "resource.attributes" => {
            no_argument()?;
            let r = resource()?;
            markdown::attributes(r.block)
                .with_context(|| format!("the attributes of {}", r.type_name))
        }
        "resource.timeouts" => {
            no_argument()?;
            let r = resource()?;
            let timeouts = r
                .block
                .blocks
                .iter()
                .find(|b| b.name == "timeouts")
                .ok_or_else(|| anyhow!("{} has no timeouts block", r.type_name))?;
            markdown::block_section(timeouts)
        }
        other => bail!("unknown directive {other:?}"),
    }
}

fn described(description: &str, what: &str) -> anyhow::Result<String> {
    if description.is_empty() {
        bail!("{what} has no description in the schema");
    }
    Ok(description.to_string())
}

/// The file at `path` under `root`, with the path as given, for messages.
fn read_example<'p>(root: &Path, path: &'p str) -> anyhow::Result<(&'p str, String)> {
    let text = std::fs::read_to_string(root.join(path))
        .with_context(|| format!("cannot read the example {path}"))?;
    Ok((path, text))
}

fn code_block(text: &str) -> String {
    format!("```terraform\n{}\n```\n", text.trim_end())
}

/// The arguments of `block` (and of its nested blocks, as `block.argument`) that `hcl` never
/// sets: no uncommented line starts with `name =` or `name {`.
fn unset_arguments(block: &Block, prefix: &str, hcl: &str) -> Vec<String> {
    let sets = |name: &str| {
        hcl.lines().any(|line| {
            line.trim_start()
                .strip_prefix(name)
                .is_some_and(|rest| rest.trim_start().starts_with(['=', '{']))
        })
    };
    let mut missing = Vec::new();
    for attr in block.attributes.iter().filter(|a| !a.is_read_only()) {
        if !sets(&attr.name) {
            missing.push(format!("{prefix}{}", attr.name));
        }
    }
    for nested in &block.blocks {
        if !sets(&nested.name) {
            missing.push(format!("{prefix}{}", nested.name));
        }
        let inner_prefix = format!("{prefix}{}.", nested.name);
        missing.extend(unset_arguments(&nested.block, &inner_prefix, hcl));
    }
    missing
}

/// The page with a notice that it is generated after its front matter (which must stay first
/// for the registry).
fn with_notice(page: &str, template_path: &str) -> String {
    let notice = format!(
        "<!-- Generated by tools/gen-docs from {template_path} and the provider's schema. \
         Edit the template or the schema, not this file. -->\n"
    );
    if let Some(rest) = page.strip_prefix("---\n") {
        if let Some(end) = rest.find("\n---\n") {
            let (front, body) = rest.split_at(end + "\n---\n".len());
            return format!("---\n{front}{notice}{body}");
        }
    }
    format!("{notice}\n{page}")
}

#[cfg(test)]
mod tests {
    use super::super::schema::parse_block;
    use super::*;
    use serde_json::{json, Value};

    fn provider() -> Block {
        parse_block(
            &json!({
                "description": "The provider.",
                "attributes": {"region": {"type": "string", "description": "Region.", "optional": true}},
                "block_types": {"assume_role": {"nesting_mode": "single", "block": {
                    "description": "A role.",
                    "attributes": {"role_arn": {"type": "string", "description": "ARN.", "required": true}}
                }}}
            }),
            "provider",
        )
        .unwrap()
    }

    fn context<'a>(root: &'a Path, provider: &'a Block) -> PageContext<'a> {
        PageContext {
            root,
            template_path: "docs/templates/index.md.tmpl",
            provider,
            resource: None,
        }
    }

    #[test]
    fn expands_directives_and_adds_the_notice_after_the_front_matter() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("p.tf"),
            "provider \"x\" {\n  region = \"r\"\n  assume_role {\n    role_arn = \"a\"\n  }\n}\n",
        )
        .unwrap();
        let provider = provider();
        let page = render(
            "---\ntitle: x\n---\n\n# X\n\n{{ provider.description }}\n\n{{provider.example p.tf}}\n\n## Args\n\n  {{ provider.arguments }}\n",
            &context(dir.path(), &provider),
        )
        .unwrap();
        assert!(page.starts_with("---\ntitle: x\n---\n<!-- Generated by tools/gen-docs from docs/templates/index.md.tmpl"), "{page}");
        assert!(
            page.contains("\n# X\n\nThe provider.\n\n```terraform\nprovider \"x\" {\n"),
            "{page}"
        );
        assert!(
            page.contains("## Args\n\n### Optional\n\n- `region` (String) Region.\n"),
            "{page}"
        );
        assert!(page.contains("### Nested block `assume_role`"), "{page}");
        assert!(!page.contains("{{"), "{page}");
    }

    #[test]
    fn refuses_bad_templates() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("p.tf"),
            "provider \"x\" {\n  region = \"r\"\n  # assume_role {}\n}\n",
        )
        .unwrap();
        let provider = provider();
        let ctx = context(dir.path(), &provider);
        let cases = [
            (
                "{{ provider.arguments }}\n{{ nope }}\n",
                "unknown directive",
            ),
            (
                "{{ provider.arguments }}\nsee {{ provider.description }}\n",
                "alone on its line",
            ),
            ("# only prose\n", "must use {{ provider.arguments }}"),
            (
                "{{ provider.arguments }}\n{{ resource.attributes }}\n",
                "only for a resource's page",
            ),
            (
                "{{ provider.arguments }}\n{{ example missing.tf }}\n",
                "cannot read the example missing.tf",
            ),
            (
                "{{ provider.arguments }}\n{{ provider.example p.tf }}\n",
                "does not set assume_role, assume_role.role_arn",
            ),
            ("{{ provider.arguments extra }}\n", "takes no argument"),
        ];
        for (template, expected) in cases {
            let err = format!("{:#}", render(template, &ctx).unwrap_err());
            assert!(err.contains(expected), "{template:?}: {err}");
            assert!(err.contains("docs/templates/index.md.tmpl"), "{err}");
        }
    }

    #[test]
    fn a_resource_page_must_document_arguments_attributes_and_timeouts() {
        let dir = tempfile::tempdir().unwrap();
        let provider = provider();
        let block = parse_block(
            &json!({
                "description": "R.",
                "attributes": {
                    "name": {"type": "string", "description": "N. Replaces.", "required": true},
                    "id": {"type": "string", "description": "Id.", "computed": true}
                },
                "block_types": {"timeouts": {"nesting_mode": "single", "block": {
                    "description": "Limits.",
                    "attributes": {"create": {"type": "string", "description": "C.", "optional": true}}
                }}}
            }),
            "r",
        )
        .unwrap();
        let (after, unknown) = (json!({"name": null}), Value::Null);
        let ctx = PageContext {
            template_path: "docs/templates/resources/r.md.tmpl",
            resource: Some(ResourcePage {
                type_name: "x_r",
                block: &block,
                defaults: PlannedDefaults {
                    after: &after,
                    after_unknown: &unknown,
                },
                change_sentences: ChangeSentences {
                    replaces: "Replaces.",
                    in_place: "In place.",
                },
            }),
            ..context(dir.path(), &provider)
        };
        let err = render(
            "{{ resource.arguments }}\n{{ resource.attributes }}\n",
            &ctx,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("{{ resource.timeouts }}"), "{err}");
        let page = render(
            "{{ resource.description }}\n## Arguments\n{{ resource.arguments }}\n## Attributes\n{{ resource.attributes }}\n## Timeouts\n{{ resource.timeouts }}\n",
            &ctx,
        )
        .unwrap();
        assert!(page.contains("R.\n## Arguments\n### Required\n\n- `name` (String, Forces replacement) N. Replaces.\n"), "{page}");
        assert!(
            page.contains("- `timeouts` (Block) Limits. See [below](#timeouts)."),
            "{page}"
        );
        assert!(
            page.contains("## Attributes\n- `id` (String) Id.\n"),
            "{page}"
        );
        assert!(
            page.contains("## Timeouts\nLimits.\n\nOptional:\n\n- `create` (String) C.\n"),
            "{page}"
        );
    }
}

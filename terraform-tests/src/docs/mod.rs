//! docs/ in the Terraform Registry layout (`docs/index.md`, `docs/resources/<name>.md`),
//! generated from what Terraform itself reports about the provider installed from the
//! filesystem mirror, and the hand-written templates under docs/templates/.
//!
//! Two inputs come from Terraform, run in a copy of `docs/templates/defaults/` (a configuration
//! that sets only the required arguments of each resource):
//!
//! * `terraform providers schema -json`: every attribute, its type, mode and description;
//! * `terraform plan` of that configuration, as `show -json`: the defaults the provider plans
//!   for what the configuration leaves out, which the schema JSON does not carry. The plan
//!   needs no AWS call; AWS is pointed at a [`ConnectionCounter`] all the same.
//!
//! [`render`] turns them and the templates into pages deterministically (no time stamps, no
//! versions, sorted attributes), `tools/gen-docs` writes them ([`write`]), and
//! `tests/docs.rs` fails when the committed pages differ from a fresh rendering ([`check`]).

pub mod diff;
pub mod markdown;
pub mod schema;
pub mod template;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use serde_json::Value;

use crate::saved_plan::plan_saved;
use crate::{ConnectionCounter, Terraform, TerraformBinary, PROVIDER_ADDRESS};
use markdown::{PlannedDefaults, INSTANCE_CHANGE_SENTENCES};
use template::{PageContext, ResourcePage};

/// The provider's name: resource `x` is `autoheal_x`, documented in docs/resources/x.md.
const PROVIDER_NAME: &str = "autoheal";
/// The template of docs/index.md.
const INDEX_TEMPLATE: &str = "docs/templates/index.md.tmpl";
/// Where the resources' templates are: `<name>.md.tmpl` for `autoheal_<name>`.
const RESOURCE_TEMPLATES: &str = "docs/templates/resources";
const TEMPLATE_SUFFIX: &str = ".md.tmpl";
/// The configuration planned for the defaults: each resource type once, named `defaults`,
/// with only its required arguments.
const DEFAULTS_CONFIG: &str = "docs/templates/defaults";
const DEFAULTS_NAME: &str = "defaults";
/// Where the resource pages go.
const RESOURCE_PAGES: &str = "docs/resources";

/// What Terraform reported: the provider's entry of `providers schema -json` and the JSON of
/// the defaults configuration's plan.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// E.g. "Terraform 1.0.3", for messages.
    pub terraform: String,
    pub schema: Value,
    pub plan: Value,
}

/// A generated page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Relative to the repository root, e.g. `docs/resources/instance.md`.
    pub path: PathBuf,
    pub text: String,
}

/// Runs Terraform (`tf`) in a copy of the defaults configuration: init from the mirror,
/// `providers schema -json`, `plan -out` and `show -json`.
pub fn collect(tf: &TerraformBinary, root: &Path) -> anyhow::Result<Inputs> {
    let counter = ConnectionCounter::start().context("starting the stand-in AWS endpoint")?;
    let terraform = Terraform::new(
        tf.options(root.join(DEFAULTS_CONFIG))
            .with_envs(counter.aws_env()),
    )?;
    terraform.init().context("terraform init")?;
    let all = terraform.providers_schema_json()?;
    let schema = all["provider_schemas"]
        .get(PROVIDER_ADDRESS)
        .cloned()
        .ok_or_else(|| anyhow!("{PROVIDER_ADDRESS} is not in `providers schema -json`"))?;
    let plan = plan_saved(&terraform)
        .with_context(|| format!("planning {DEFAULTS_CONFIG}"))?
        .json;
    Ok(Inputs {
        terraform: tf.name.clone(),
        schema,
        plan,
    })
}

/// Every page of docs/, rendered from `inputs` and the templates under `root`.
pub fn render(inputs: &Inputs, root: &Path) -> anyhow::Result<Vec<Page>> {
    let provider = schema::parse_block(&inputs.schema["provider"]["block"], "provider")?;
    if inputs.schema["data_source_schemas"]
        .as_object()
        .is_some_and(|d| !d.is_empty())
    {
        bail!("the provider has data sources, which the docs generator does not document yet");
    }
    let resources = inputs.schema["resource_schemas"]
        .as_object()
        .ok_or_else(|| anyhow!("the schema has no resource_schemas"))?;

    let mut pages = vec![Page {
        path: PathBuf::from("docs/index.md"),
        text: template::render(
            &read(root, INDEX_TEMPLATE)?,
            &PageContext {
                root,
                template_path: INDEX_TEMPLATE,
                provider: &provider,
                resource: None,
            },
        )?,
    }];

    let templates = resource_templates(root)?;
    let documented: BTreeSet<String> = templates
        .iter()
        .map(|name| format!("{PROVIDER_NAME}_{name}"))
        .collect();
    let undocumented: Vec<&String> = resources
        .keys()
        .filter(|t| !documented.contains(*t))
        .collect();
    if !undocumented.is_empty() {
        bail!(
            "no template for {undocumented:?}: add {RESOURCE_TEMPLATES}/<name>{TEMPLATE_SUFFIX} \
             for each"
        );
    }
    for name in &templates {
        let type_name = format!("{PROVIDER_NAME}_{name}");
        let template_path = format!("{RESOURCE_TEMPLATES}/{name}{TEMPLATE_SUFFIX}");
        let json = resources.get(&type_name).ok_or_else(|| {
            anyhow!("{template_path} documents {type_name}, which the provider does not have")
        })?;
        let block = schema::parse_block(&json["block"], &type_name)?;
        let change = planned_defaults(&inputs.plan, &type_name, &block)?;
        let page = template::render(
            &read(root, &template_path)?,
            &PageContext {
                root,
                template_path: &template_path,
                provider: &provider,
                resource: Some(ResourcePage {
                    type_name: &type_name,
                    block: &block,
                    defaults: PlannedDefaults {
                        after: &change["after"],
                        after_unknown: &change["after_unknown"],
                    },
                    change_sentences: INSTANCE_CHANGE_SENTENCES,
                }),
            },
        )?;
        pages.push(Page {
            path: PathBuf::from(format!("{RESOURCE_PAGES}/{name}.md")),
            text: page,
        });
    }
    Ok(pages)
}

/// The planned change of `<type_name>.defaults`, after checking that the configuration set
/// exactly the required arguments (anything more would pass for a provider default).
fn planned_defaults<'p>(
    plan: &'p Value,
    type_name: &str,
    block: &schema::Block,
) -> anyhow::Result<&'p Value> {
    let address = format!("{type_name}.{DEFAULTS_NAME}");
    let configured = plan["configuration"]["root_module"]["resources"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["address"] == address.as_str()))
        .ok_or_else(|| anyhow!("{DEFAULTS_CONFIG} has no resource {address}"))?;
    let set: BTreeSet<&str> = configured["expressions"]
        .as_object()
        .map(|e| e.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let required: BTreeSet<&str> = block
        .attributes
        .iter()
        .filter(|a| a.required)
        .map(|a| a.name.as_str())
        .chain(
            block
                .blocks
                .iter()
                .filter(|b| b.is_required())
                .map(|b| b.name.as_str()),
        )
        .collect();
    if set != required {
        bail!(
            "{DEFAULTS_CONFIG}: {address} must set exactly the required arguments {required:?}, \
             so that its plan shows the provider's defaults; it sets {set:?}"
        );
    }
    plan["resource_changes"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["address"] == address.as_str()))
        .map(|c| &c["change"])
        .ok_or_else(|| anyhow!("the plan of {DEFAULTS_CONFIG} has no change for {address}"))
}

/// The names of the resource templates, sorted.
fn resource_templates(root: &Path) -> anyhow::Result<Vec<String>> {
    let dir = root.join(RESOURCE_TEMPLATES);
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let file_name = entry?.file_name();
        let file_name = file_name.to_string_lossy();
        match file_name.strip_suffix(TEMPLATE_SUFFIX) {
            Some(name) => names.push(name.to_string()),
            None => bail!("{RESOURCE_TEMPLATES}/{file_name} is not a *{TEMPLATE_SUFFIX} template"),
        }
    }
    names.sort();
    Ok(names)
}

fn read(root: &Path, path: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(root.join(path)).with_context(|| format!("reading {path}"))
}

/// The generated pages already in docs/resources/ that no template produces any more.
fn stale_pages(pages: &[Page], root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let dir = root.join(RESOURCE_PAGES);
    let mut stale = Vec::new();
    if !dir.is_dir() {
        return Ok(stale);
    }
    for entry in std::fs::read_dir(&dir)? {
        let path = Path::new(RESOURCE_PAGES).join(entry?.file_name());
        if pages.iter().all(|p| p.path != path) {
            stale.push(path);
        }
    }
    stale.sort();
    Ok(stale)
}

/// How the committed docs/ differs from `pages`: one message per file, with a diff; empty
/// when docs/ is up to date.
pub fn check(pages: &[Page], root: &Path) -> anyhow::Result<Vec<String>> {
    let mut problems = Vec::new();
    for page in pages {
        match std::fs::read_to_string(root.join(&page.path)) {
            Ok(committed) if committed == page.text => {}
            Ok(committed) => problems.push(format!(
                "{} differs from what the schema and templates give now (- committed, + \
                 generated):\n{}",
                page.path.display(),
                diff::diff(&committed, &page.text)
            )),
            Err(e) => problems.push(format!("{} cannot be read: {e}", page.path.display())),
        }
    }
    for stale in stale_pages(pages, root)? {
        problems.push(format!(
            "{} is not generated from any template (its resource or template is gone)",
            stale.display()
        ));
    }
    Ok(problems)
}

/// Writes `pages` under `root` and removes stale resource pages. Returns the files written
/// or removed (an unchanged page is not rewritten).
pub fn write(pages: &[Page], root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut touched = Vec::new();
    for page in pages {
        let path = root.join(&page.path);
        if std::fs::read_to_string(&path).is_ok_and(|t| t == page.text) {
            continue;
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, &page.text).with_context(|| format!("writing {}", path.display()))?;
        touched.push(page.path.clone());
    }
    for stale in stale_pages(pages, root)? {
        std::fs::remove_file(root.join(&stale))
            .with_context(|| format!("removing {}", stale.display()))?;
        touched.push(stale);
    }
    Ok(touched)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn block() -> schema::Block {
        schema::parse_block(
            &json!({"attributes": {
                "name": {"type": "string", "description": "N.", "required": true},
                "size": {"type": "number", "description": "S.", "optional": true, "computed": true}
            }}),
            "autoheal_x",
        )
        .unwrap()
    }

    fn plan(expressions: Value) -> Value {
        json!({
            "configuration": {"root_module": {"resources": [
                {"address": "autoheal_x.defaults", "expressions": expressions}
            ]}},
            "resource_changes": [
                {"address": "autoheal_x.defaults", "change": {"after": {"name": "n", "size": 10}, "after_unknown": {}}}
            ]
        })
    }

    #[test]
    fn the_defaults_come_from_a_plan_that_sets_only_required_arguments() {
        let good = plan(json!({"name": {"constant_value": "n"}}));
        let change = planned_defaults(&good, "autoheal_x", &block()).unwrap();
        assert_eq!(change["after"]["size"], json!(10));

        let too_much = plan(json!({"name": {}, "size": {}}));
        let err = planned_defaults(&too_much, "autoheal_x", &block())
            .unwrap_err()
            .to_string();
        assert!(err.contains("exactly the required arguments"), "{err}");
        let err = planned_defaults(&good, "autoheal_y", &block())
            .unwrap_err()
            .to_string();
        assert!(err.contains("no resource autoheal_y.defaults"), "{err}");
    }

    #[test]
    fn check_reports_changed_missing_and_stale_pages_and_write_fixes_them() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("docs/resources")).unwrap();
        std::fs::write(root.join("docs/index.md"), "old\n").unwrap();
        std::fs::write(root.join("docs/resources/gone.md"), "x\n").unwrap();
        let pages = vec![
            Page {
                path: PathBuf::from("docs/index.md"),
                text: "new\n".to_string(),
            },
            Page {
                path: PathBuf::from("docs/resources/instance.md"),
                text: "i\n".to_string(),
            },
        ];
        let problems = check(&pages, root).unwrap();
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(
            problems[0].contains("docs/index.md differs") && problems[0].contains("- old\n+ new")
        );
        assert!(problems[1].contains("docs/resources/instance.md cannot be read"));
        assert!(problems[2].contains("docs/resources/gone.md is not generated"));

        let touched = write(&pages, root).unwrap();
        assert_eq!(touched.len(), 3, "{touched:?}");
        assert!(check(&pages, root).unwrap().is_empty());
        assert!(
            write(&pages, root).unwrap().is_empty(),
            "nothing left to write"
        );
    }
}

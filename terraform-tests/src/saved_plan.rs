//! A plan as data: `terraform plan -out` followed by `terraform show -json` of the saved plan.
//!
//! The human-readable plan is enough to see one attribute's value (see
//! [`crate::output::planned_attribute`]); maps, the keys of a `for_each` and what the
//! configuration itself set are easier and safer to read from the JSON plan representation,
//! which Terraform 1.0 and later print in the same shape.

use anyhow::{bail, Context};
use serde_json::Value;

use crate::{CommandOutput, Terraform};

/// The file the plan is saved to, inside the Terraform's working copy.
const PLAN_FILE: &str = "autoheal.tfplan";

/// A saved plan: the text `plan` printed and the JSON `show -json` printed for it.
#[derive(Debug, Clone)]
pub struct SavedPlan {
    /// `terraform plan -out`, for messages.
    pub plan: CommandOutput,
    /// `terraform show -json` of the saved plan.
    pub json: Value,
}

/// Runs `terraform plan -out` (with the options' variables) and `terraform show -json` on the
/// result. Errs when either command fails.
pub fn plan_saved(terraform: &Terraform) -> anyhow::Result<SavedPlan> {
    let out_arg = format!("-out={PLAN_FILE}");
    let plan = terraform.run(&["plan", "-no-color", "-input=false", &out_arg], true)?;
    if plan.exit_code != 0 {
        bail!("plan failed: {plan}");
    }
    let show = terraform.run(&["show", "-no-color", "-json", PLAN_FILE], false)?;
    if show.exit_code != 0 {
        bail!("show -json failed: {show}");
    }
    let json = serde_json::from_str(&show.stdout)
        .with_context(|| format!("`show -json` printed no JSON: {show}"))?;
    Ok(SavedPlan { plan, json })
}

impl SavedPlan {
    /// The addresses of the planned resource changes (e.g. `autoheal_instance.app["ledger"]`),
    /// in the plan's order.
    pub fn addresses(&self) -> Vec<&str> {
        self.changes()
            .iter()
            .filter_map(|c| c["address"].as_str())
            .collect()
    }

    /// The change of the resource at `address`.
    pub fn change(&self, address: &str) -> Option<&Value> {
        self.changes()
            .iter()
            .find(|c| c["address"].as_str() == Some(address))
            .map(|c| &c["change"])
    }

    /// The planned value of `attribute` of the resource at `address`: JSON null when it is null
    /// or unknown (see [`SavedPlan::is_unknown`]), None when there is no such resource.
    pub fn after(&self, address: &str, attribute: &str) -> Option<&Value> {
        self.change(address).map(|c| &c["after"][attribute])
    }

    /// Whether `attribute` of the resource at `address` is only known after apply.
    pub fn is_unknown(&self, address: &str, attribute: &str) -> bool {
        self.change(address)
            .is_some_and(|c| c["after_unknown"][attribute] == Value::Bool(true))
    }

    fn changes(&self) -> &[Value] {
        self.json["resource_changes"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

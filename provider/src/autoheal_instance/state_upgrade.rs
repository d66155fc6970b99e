//! Reading a state that an earlier provider wrote (schema version 0) as the current schema
//! (version 1), so that upgrading the provider plans nothing for a stack nobody changed: no
//! rolled instance, no replaced stack.
//!
//! Version 0 is every provider before the schema had a version: the stack's state as
//! written by commit 9fbb21f (before `ingress`, `security_group_ids`, `iam_instance_profile`,
//! `lambda_role_permissions_boundary` and `unmanaged_security_group_rules` existed, with
//! `device_name` defaulting to `/dev/xvdb`) and by b06d38b (the full current attribute set).
//! What the upgrade does, attribute by attribute:
//!
//! - `device_name`: kept as stored. A state without one (or with null) gets
//!   [`EARLIER_DEFAULT_DEVICE_NAME`], the only name a version 0 provider attached the volume
//!   as when the configuration set none; the current default, `/dev/sdf`, would roll the
//!   instance (it is in the launch template).
//! - `unmanaged_security_group_rules`: `[]` when absent, what every apply leaves and every
//!   plan proposes, so a plan without a refresh shows no change either. A refresh fills it
//!   from the group.
//! - `ingress`: left null when absent. Then the refresh adopts the group's non-SSH inbound
//!   rules as blocks ([`super::security_rules::refreshed`]): a group with only the SSH rules
//!   gets `[]`, which matches a configuration without `ingress` blocks; a rule someone added
//!   outside Terraform shows in the plan as a block going, which is what the next apply does
//!   (the group now holds exactly the configured rules).
//! - `security_group_ids`, `iam_instance_profile`, `lambda_role_permissions_boundary`: null
//!   when absent, which is what a version 0 stack had (no extra groups, no instance profile,
//!   no boundary).
//! - Attributes the current schema does not know are dropped (logged), at any depth, instead
//!   of failing the whole state: none is known today, but a hand-edited state or a future
//!   rename must not make the stack unmanageable.
//!
//! Two changes are not state and cannot be made invisible by an upgrade: a stack of 9fbb21f
//! has its Lambda role outside `/autoheal/` and a launch template whose root device is not
//! mapped encrypted. `read` reports both (the role's ARN goes null, the template version is
//! re-made) and the first apply repairs them in place without rolling the instance.

use serde_json::{Map, Value as Json};

use crate::plugin::diagnostics::Diagnostics;
use crate::plugin::value::{Type, Value};

use super::schema::EARLIER_DEFAULT_DEVICE_NAME;

/// The schema version of every state written before the schema had a version.
pub const UNVERSIONED: i64 = 0;

/// `raw_json` (a stored state of schema version `version`, as Terraform keeps it) as a value
/// of the current schema's type `ty`. Errors are diagnostics for the user, never panics.
pub fn upgrade(version: i64, raw_json: &[u8], ty: &Type) -> Result<Value, Diagnostics> {
    if version != UNVERSIONED {
        return Err(Diagnostics::from_error(
            "Unknown state version",
            format!(
                "The stored state has schema version {version}, which no release of this \
                 provider wrote. Restore the state from a backup."
            ),
        ));
    }
    let unreadable = |why: String| {
        Diagnostics::from_error(
            "Unreadable stored state",
            format!(
                "The state of schema version {UNVERSIONED} (written by an earlier provider) \
                 cannot be read: {why}."
            ),
        )
    };
    let mut json: Json =
        serde_json::from_slice(raw_json).map_err(|e| unreadable(format!("invalid JSON: {e}")))?;
    if json.is_null() {
        return Ok(Value::Null);
    }
    let Json::Object(attrs) = &mut json else {
        return Err(unreadable("it is not a JSON object".into()));
    };
    fill_v0(attrs);
    let mut dropped = Vec::new();
    prune(&mut json, ty, &mut String::new(), &mut dropped);
    if !dropped.is_empty() {
        tracing::info!(
            ?dropped,
            "state upgrade: dropped attributes the schema no longer has"
        );
    }
    let bytes = serde_json::to_vec(&json).map_err(|e| unreadable(e.to_string()))?;
    Value::from_json(&bytes, ty).map_err(|e| unreadable(e.to_string()))
}

/// The values a version 0 state lacks, chosen to keep what the stack does (see the module
/// documentation).
fn fill_v0(attrs: &mut Map<String, Json>) {
    let missing = |attrs: &Map<String, Json>, name: &str| attrs.get(name).is_none_or(Json::is_null);
    if missing(attrs, "device_name") {
        attrs.insert(
            "device_name".into(),
            Json::String(EARLIER_DEFAULT_DEVICE_NAME.into()),
        );
    }
    if missing(attrs, "unmanaged_security_group_rules") {
        attrs.insert("unmanaged_security_group_rules".into(), Json::Array(vec![]));
    }
}

/// Removes from `json` every object key that `ty` does not have, recording its path in
/// `dropped`. Values of other shapes are left for the typed decoder to judge.
fn prune(json: &mut Json, ty: &Type, path: &mut String, dropped: &mut Vec<String>) {
    match (json, ty) {
        (Json::Object(map), Type::Object(types)) => {
            map.retain(|k, _| {
                let known = types.contains_key(k);
                if !known {
                    dropped.push(format!("{path}.{k}"));
                }
                known
            });
            for (k, v) in map.iter_mut() {
                let len = path.len();
                path.push('.');
                path.push_str(k);
                prune(v, &types[k], path, dropped);
                path.truncate(len);
            }
        }
        (Json::Array(items), Type::List(et) | Type::Set(et)) => {
            for (i, item) in items.iter_mut().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                prune(item, et, path, dropped);
                path.truncate(len);
            }
        }
        (Json::Object(map), Type::Map(et)) => {
            for (k, v) in map.iter_mut() {
                let len = path.len();
                path.push_str(&format!("[{k:?}]"));
                prune(v, et, path, dropped);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autoheal_instance::plan::modify_plan;
    use crate::autoheal_instance::schema::{schema, DEFAULT_DEVICE_NAME, SCHEMA_VERSION};
    use crate::plugin::plan::plan_block;
    use crate::plugin::resource::{PlanRequest, PlanResponse, ValidateContext};

    /// States of `autoheal_instance.this["acc"]` (`fixtures/stack` with its defaults), as
    /// `terraform apply` stored them with the provider of each commit on the local AWS
    /// (terraform-tests/tests/upgrade.rs applies the same configuration with the same
    /// binaries): the instance object of terraform.tfstate, `schema_version` and
    /// `attributes`.
    const V0_B06D38B: &str = include_str!("../../tests/fixtures/state_v0_b06d38b.json");
    const V0_9FBB21F: &str = include_str!("../../tests/fixtures/state_v0_9fbb21f.json");

    fn attributes(instance: &str) -> Vec<u8> {
        let j: Json = serde_json::from_str(instance).expect("fixture is JSON");
        assert_eq!(j["schema_version"], 0, "a version 0 fixture");
        serde_json::to_vec(&j["attributes"]).unwrap()
    }

    fn upgraded(instance: &str) -> Value {
        upgrade(0, &attributes(instance), &schema().value_type())
            .unwrap_or_else(|d| panic!("upgrade failed: {d:?}"))
    }

    /// What the server did with a version 0 state before this module: the stored JSON
    /// decoded as it is.
    fn decoded_as_stored(instance: &str) -> Value {
        Value::from_json(&attributes(instance), &schema().value_type()).unwrap()
    }

    /// `fixtures/stack` with its defaults (names = ["acc"]): the configuration both commits'
    /// fixtures give the resource, as Terraform sends it.
    fn fixture_config() -> Value {
        let schema = schema();
        let mut v = Value::null_object(&schema.value_type());
        v.set_attr("name", "acc".into());
        v.set_attr("availability_zone", "ap-southeast-2a".into());
        v.set_attr("ami", "ami-0720cb7af233b0529".into());
        // No `ingress` blocks: an empty set. A `timeouts` block whose values are all null.
        v.set_attr("ingress", Value::Set(vec![]));
        let timeouts = schema
            .block
            .blocks
            .iter()
            .find(|b| b.type_name == "timeouts")
            .expect("a timeouts block");
        v.set_attr("timeouts", Value::null_object(&timeouts.block.value_type()));
        v
    }

    /// Terraform's plan of `config` over `prior`: its proposed new state (configured values,
    /// the prior value of computed attributes left null), the generic planner, our rules.
    fn plan(prior: &Value, config: &Value) -> PlanResponse {
        let schema = schema();
        let mut proposed = config.clone();
        for a in &schema.block.attributes {
            if a.is_computed() && config.attr(&a.name).is_null() {
                proposed.set_attr(&a.name, prior.attr(&a.name).clone());
            }
        }
        let generic = plan_block(&schema.block, prior, config, &proposed);
        let mut response = PlanResponse {
            planned_state: generic.planned,
            requires_replace: generic.requires_replace,
            diagnostics: Diagnostics::new(),
        };
        let context = ValidateContext {
            region: Some("ap-southeast-2".into()),
            ..Default::default()
        };
        let request = PlanRequest {
            prior_state: prior,
            config,
            proposed_new_state: &proposed,
            context: &context,
        };
        modify_plan(&schema, request, &mut response);
        response
    }

    /// The attributes whose planned value differs from `prior`, ignoring the handler's
    /// digest: the fixtures recorded the handler of their day, and a new handler is an
    /// ordinary in-place update, not something an upgrade of the state decides.
    fn changes(prior: &Value, config: &Value) -> Vec<String> {
        let r = plan(prior, config);
        assert!(!r.diagnostics.has_errors(), "{:?}", r.diagnostics);
        assert!(r.requires_replace.is_empty(), "{:?}", r.requires_replace);
        let Type::Object(types) = schema().value_type() else {
            unreachable!()
        };
        types
            .keys()
            .filter(|k| *k != "handler_sha256")
            .filter(|k| prior.attr(k) != r.planned_state.attr(k))
            .cloned()
            .collect()
    }

    /// The version Terraform records for states this provider writes: bumping it needs an
    /// upgrade from 1 here, and these tests to say what changed.
    #[test]
    fn the_schema_is_at_version_1() {
        assert_eq!(SCHEMA_VERSION, 1);
    }

    #[test]
    fn a_state_of_the_previous_release_plans_no_change() {
        let state = upgraded(V0_B06D38B);
        assert_eq!(
            state.attr("device_name").as_str(),
            Some(DEFAULT_DEVICE_NAME)
        );
        assert_eq!(changes(&state, &fixture_config()), Vec::<String>::new());
    }

    #[test]
    fn a_state_of_9fbb21f_keeps_its_device_and_plans_no_change() {
        let state = upgraded(V0_9FBB21F);
        // Written before the attributes existed: the fixture must really lack them, or this
        // test would prove nothing about filling them.
        let raw: Json = serde_json::from_str(V0_9FBB21F).unwrap();
        for absent in [
            "ingress",
            "unmanaged_security_group_rules",
            "security_group_ids",
            "iam_instance_profile",
            "lambda_role_permissions_boundary",
        ] {
            assert!(raw["attributes"].get(absent).is_none(), "{absent}");
        }
        assert_eq!(
            state.attr("device_name").as_str(),
            Some(EARLIER_DEFAULT_DEVICE_NAME)
        );
        assert_eq!(
            state.attr("unmanaged_security_group_rules"),
            &Value::List(vec![])
        );
        assert!(state.attr("iam_instance_profile").is_null());
        // What a refresh does to `ingress` (adopt the group's rules; none here).
        let mut refreshed = state.clone();
        refreshed.set_attr("ingress", Value::Set(vec![]));
        assert_eq!(changes(&refreshed, &fixture_config()), Vec::<String>::new());
    }

    /// The control: the same 9fbb21f state decoded as stored, as the server did before,
    /// plans a change (so the tests above can fail), and without its device name the plan
    /// would roll the instance onto the new default.
    #[test]
    fn without_the_upgrade_the_old_state_plans_a_change() {
        let mut stored = decoded_as_stored(V0_9FBB21F);
        stored.set_attr("ingress", Value::Set(vec![]));
        assert_eq!(
            changes(&stored, &fixture_config()),
            ["unmanaged_security_group_rules"]
        );
        stored.set_attr("unmanaged_security_group_rules", Value::List(vec![]));
        stored.set_attr("device_name", Value::Null);
        let r = plan(&stored, &fixture_config());
        assert_eq!(
            r.planned_state.attr("device_name").as_str(),
            Some(DEFAULT_DEVICE_NAME)
        );
        assert!(r.planned_state.attr("instance_id").is_unknown(), "a roll");
    }

    #[test]
    fn a_state_without_a_device_name_gets_the_one_version_0_defaulted_to() {
        let mut raw: Json = serde_json::from_str(V0_9FBB21F).unwrap();
        raw["attributes"]
            .as_object_mut()
            .unwrap()
            .remove("device_name");
        let bytes = serde_json::to_vec(&raw["attributes"]).unwrap();
        let state = upgrade(0, &bytes, &schema().value_type()).unwrap();
        assert_eq!(
            state.attr("device_name").as_str(),
            Some(EARLIER_DEFAULT_DEVICE_NAME)
        );
    }

    #[test]
    fn attributes_the_schema_no_longer_has_are_dropped_not_fatal() {
        let mut raw: Json = serde_json::from_str(V0_B06D38B).unwrap();
        raw["attributes"]["retired_attribute"] = Json::from("x");
        raw["attributes"]["timeouts"] = serde_json::json!({"create": "20m", "read": "5m"});
        let bytes = serde_json::to_vec(&raw["attributes"]).unwrap();
        // The strict decoder (a state of the current version) refuses it...
        assert!(Value::from_json(&bytes, &schema().value_type()).is_err());
        // ...the upgrade keeps everything else.
        let state = upgrade(0, &bytes, &schema().value_type()).unwrap();
        assert_eq!(state.attr("timeouts").attr("create").as_str(), Some("20m"));
        assert_eq!(state.attr("name").as_str(), Some("acc"));
    }

    #[test]
    fn unreadable_states_are_diagnostics() {
        let ty = schema().value_type();
        for (raw, version) in [
            (&b"{not json"[..], 0),
            (b"[1, 2]", 0),
            (br#"{"volume_size": "ten"}"#, 0),
            (b"{}", 7),
        ] {
            let d = upgrade(version, raw, &ty).expect_err("refused");
            assert!(d.has_errors());
        }
        assert_eq!(upgrade(0, b"null", &ty).unwrap(), Value::Null);
    }
}

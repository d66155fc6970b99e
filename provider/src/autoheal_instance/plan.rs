//! Plan rules of `autoheal_instance`, run after the generic planner (which has filled
//! defaults, made computed attributes unknown on create, kept the stable computed ids on
//! update and listed the changed "requires replacement" attributes).
//!
//! What this adds:
//! - validation again, with the provider's region and with the values that were unknown at
//!   validate time (only errors: warnings were already shown by validate);
//! - `id` = `name`, and the AWS names derived from `name` alone (see [`super::names`]);
//! - network: with `subnet_id` configured, `vpc_cidr`/`subnet_cidr` are null (no VPC is
//!   created); dropping `subnet_id` from a stack that ran in the user's subnet makes
//!   `subnet_id` unknown, which replaces the stack with one in a new VPC;
//! - volume: with `existing_volume_id`, `volume_size`/`volume_type` report that volume (known
//!   after apply on create, kept on update) and `volume_on_destroy` is null; otherwise
//!   `volume_iops`/`volume_throughput` not configured become unknown when AWS's baseline may
//!   change (new type, or new size of a gp2 volume), and a smaller `volume_size` is an error;
//! - `device_name` not configured: [`DEFAULT_DEVICE_NAME`] on create, the prior state's on
//!   update (it is optional and computed, not a schema default), so a stack made with the
//!   earlier default `/dev/xvdb`, which validation now refuses in a configuration, keeps it
//!   and an upgraded provider rolls no instance;
//! - a change to what the launch template holds (see [`ROLLING_ATTRIBUTES`]) makes
//!   `instance_id` and `launch_template_version` unknown: a rolling replacement happens.
//!   Anything else keeps the serving instance. Tags are not in the launch template: the
//!   instance gets them from the Auto Scaling group's propagated tags, so a tag change does
//!   not roll the instance (the AWS layer must keep it that way);
//! - `handler_sha256` is the digest of the handler that will be deployed, known at plan time:
//!   the shipped zip's for `lambda_architecture`, or the file at `handler_zip` (a build that
//!   ships no arm64 zip needs `handler_zip` for arm64);
//! - `tags_all` = the provider's `default_tags` merged under `tags` (unknown while either is);
//! - `handler_zip` must exist at plan time.
//!
//! `requires_replace` is then brought up to date with the final planned values.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::plugin::diagnostics::{AttributePath, Severity};
use crate::plugin::resource::{PlanRequest, PlanResponse};
use crate::plugin::schema::Schema;
use crate::plugin::value::Value;

use super::names::{DerivedName, AUTOSCALING_GROUP, LIFECYCLE_HOOK, LOG_GROUP};
use super::schema::DEFAULT_DEVICE_NAME;
use super::validate::validate;

/// Attributes that go into the launch template: changing one creates a new template version
/// and rolls the instance (a new one is launched and receives the volume and the address).
pub const ROLLING_ATTRIBUTES: &[&str] = &[
    "ami",
    "instance_type",
    "user_data",
    "key_name",
    "device_name",
    "mount_point",
    "filesystem",
    "security_group_ids",
    "iam_instance_profile",
];

/// Computed ids of objects an update recreates when they were deleted out of band (see
/// `read`: it sets them to null).
const REPAIRABLE: &[&str] = &[
    "allocation_id",
    "public_ip",
    "event_rule_arn",
    "lambda_function_arn",
    "lambda_role_arn",
    "security_group_id",
    "launch_template_id",
    "instance_id",
];

/// Computed names that follow from `name` alone, so the plan knows them.
const DERIVED_NAMES: &[(&str, DerivedName)] = &[
    ("autoscaling_group_name", AUTOSCALING_GROUP),
    ("lifecycle_hook_name", LIFECYCLE_HOOK),
    ("log_group_name", LOG_GROUP),
];

/// The resource-specific plan rules; see the module documentation.
pub fn modify_plan(schema: &Schema, request: PlanRequest<'_>, response: &mut PlanResponse) {
    if response.planned_state.is_null() {
        return; // destroy
    }
    let prior = request.prior_state;
    let config = request.config;
    let creating = prior.is_null();

    let validation = validate(config, request.context);
    response
        .diagnostics
        .extend(crate::plugin::diagnostics::Diagnostics(
            validation
                .0
                .into_iter()
                .filter(|d| d.severity == Severity::Error)
                .collect(),
        ));
    let zip_already_invalid = response
        .diagnostics
        .iter()
        .any(|d| d.attribute == Some(AttributePath::root("handler_zip")));

    let planned = &mut response.planned_state;

    // Identity and derived names.
    let name = planned.attr("name").as_str().map(str::to_string);
    planned.set_attr("id", name.clone().map_or(Value::Unknown, Value::String));
    for (attr, derived) in DERIVED_NAMES {
        let value = name
            .as_deref()
            .map_or(Value::Unknown, |n| Value::String(derived.for_stack(n)));
        planned.set_attr(attr, value);
    }

    // Network.
    // (Only attributes the configuration leaves null are touched: Terraform requires the plan
    // to keep every configured value. Configured conflicts are validation errors anyway.)
    if !config.attr("subnet_id").is_null() {
        for attr in ["vpc_cidr", "subnet_cidr"] {
            if config.attr(attr).is_null() {
                planned.set_attr(attr, Value::Null);
            }
        }
    } else if !creating && prior.attr("vpc_cidr").is_null() && !prior.attr("subnet_id").is_null() {
        // The stack ran in the user's subnet; without one, a new VPC is needed.
        planned.set_attr("subnet_id", Value::Unknown);
    }

    // Data volume.
    if !config.attr("existing_volume_id").is_null() {
        for attr in ["volume_size", "volume_type"] {
            if config.attr(attr).is_null() {
                let value = if creating {
                    Value::Unknown
                } else {
                    prior.attr(attr).clone()
                };
                planned.set_attr(attr, value);
            }
        }
        if config.attr("volume_on_destroy").is_null() {
            planned.set_attr("volume_on_destroy", Value::Null);
        }
    } else if !creating {
        let type_changed = prior.attr("volume_type") != planned.attr("volume_type");
        let size_changed = prior.attr("volume_size") != planned.attr("volume_size");
        let gp2 = planned.attr("volume_type").as_str() == Some("gp2");
        if config.attr("volume_iops").is_null() && (type_changed || (size_changed && gp2)) {
            planned.set_attr("volume_iops", Value::Unknown);
        }
        if config.attr("volume_throughput").is_null() && type_changed {
            planned.set_attr("volume_throughput", Value::Unknown);
        }
        if let (Some(before), Some(after)) = (
            prior.attr("volume_size").as_i64(),
            planned.attr("volume_size").as_i64(),
        ) {
            if after < before {
                response.diagnostics.attribute_error(
                    AttributePath::root("volume_size"),
                    "EBS volumes cannot shrink",
                    format!(
                        "The data volume has {before} GiB and `volume_size` asks for {after}. \
                         EBS volumes can only grow: keep `volume_size` at {before} or more. To \
                         move to a smaller volume, copy the data to a new stack."
                    ),
                );
            }
        }
    }

    // The device name: the default for new stacks only. An existing stack keeps the one in
    // its state (the generic planner copied it), whatever default it was created with; one
    // without any (never seen) gets the default.
    if config.attr("device_name").is_null() && (creating || prior.attr("device_name").is_null()) {
        planned.set_attr("device_name", Value::String(DEFAULT_DEVICE_NAME.into()));
    }

    // The instance and its launch template.
    if !creating {
        let rolls = ROLLING_ATTRIBUTES
            .iter()
            .any(|a| prior.attr(a) != planned.attr(a));
        if rolls {
            planned.set_attr("instance_id", Value::Unknown);
            planned.set_attr("launch_template_version", Value::Unknown);
        }
        // Parts deleted out of band: read set their ids to null; the update recreates them,
        // so their ids are not known until it has.
        let mut repairs = false;
        for attr in REPAIRABLE {
            if prior.attr(attr).is_null() {
                planned.set_attr(attr, Value::Unknown);
                repairs = true;
            }
        }
        if repairs {
            planned.set_attr("launch_template_version", Value::Unknown);
        }
        // Failover turned on or off writes a template version (instance tags in the metadata
        // service), without rolling the instance.
        let failover = |v: &Value| {
            !v.attr("failover_zones").elements().is_empty()
                && !v.attr("snapshot_interval").is_null()
        };
        if failover(prior) != failover(planned) || planned.attr("failover_zones").is_unknown() {
            planned.set_attr("launch_template_version", Value::Unknown);
        }
    }

    // The persistent network interface: null without one; unknown when it is to be made (or
    // made again, after read found it gone); its addresses unknown while read found it in
    // need of repair (see `read`).
    const INTERFACE: [&str; 3] = [
        "network_interface_id",
        "network_interface_private_ip",
        "network_interface_mac_address",
    ];
    match planned.attr("persistent_network_interface") {
        Value::Unknown => INTERFACE
            .iter()
            .for_each(|a| planned.set_attr(a, Value::Unknown)),
        v if v.as_bool() != Some(true) => INTERFACE
            .iter()
            .for_each(|a| planned.set_attr(a, Value::Null)),
        _ if creating || prior.attr("network_interface_id").is_null() => INTERFACE
            .iter()
            .for_each(|a| planned.set_attr(a, Value::Unknown)),
        _ if prior.attr("network_interface_private_ip").is_null() => {
            planned.set_attr("network_interface_private_ip", Value::Unknown);
            planned.set_attr("network_interface_mac_address", Value::Unknown);
        }
        _ => {}
    }
    // The alarms: null without `alarm_actions`; unknown when they are to be made (or made
    // again, or rewritten after read found them different).
    let actions = planned.attr("alarm_actions").clone();
    for attr in ["heal_failure_alarm_arn", "no_in_service_alarm_arn"] {
        if actions.is_unknown() {
            planned.set_attr(attr, Value::Unknown);
        } else if actions.elements().is_empty() {
            planned.set_attr(attr, Value::Null);
        } else if creating || prior.attr(attr).is_null() {
            planned.set_attr(attr, Value::Unknown);
        }
    }

    // The snapshot schedule's rule: null without `snapshot_interval`; unknown when it is to
    // be made (or made again, after read found it gone or not what the stack writes).
    let interval = planned.attr("snapshot_interval").clone();
    if interval.is_unknown() {
        planned.set_attr("snapshot_rule_arn", Value::Unknown);
    } else if interval.is_null() {
        planned.set_attr("snapshot_rule_arn", Value::Null);
    } else if creating || prior.attr("snapshot_rule_arn").is_null() {
        planned.set_attr("snapshot_rule_arn", Value::Unknown);
    }

    // The zone failover's function, role and rule: null without failover zones or without
    // scheduled snapshots; unknown when they are to be made (or made again, after read found
    // one gone or not what the stack writes).
    let zones = planned.attr("failover_zones").clone();
    const FAILOVER: [&str; 3] = [
        "failover_function_arn",
        "failover_role_arn",
        "failover_rule_arn",
    ];
    for attr in FAILOVER {
        if zones.is_unknown() || interval.is_unknown() {
            planned.set_attr(attr, Value::Unknown);
        } else if zones.elements().is_empty() || interval.is_null() {
            planned.set_attr(attr, Value::Null);
        } else if creating || FAILOVER.iter().any(|a| prior.attr(a).is_null()) {
            planned.set_attr(attr, Value::Unknown);
        }
    }

    // Where the stack serves (see `active`): reported with the failover, unknown until an
    // apply first reports it; without the failover, null unless the refresh found the group
    // serving away from home (the failover was turned off after it moved).
    // A configured `active_availability_zone` is kept as configured: the home zone, to fail
    // back (see `failback`).
    for attr in ["active_availability_zone", "active_volume_id"] {
        let prior_zone = prior.attr("active_availability_zone");
        let away = (!prior_zone.is_null() && prior_zone != planned.attr("availability_zone"))
            || (!prior.attr("active_volume_id").is_null()
                && prior.attr("active_volume_id") != prior.attr("volume_id"));
        if !config.attr(attr).is_null() {
            continue;
        }
        if zones.is_unknown() || interval.is_unknown() {
            planned.set_attr(attr, Value::Unknown);
        } else if !zones.elements().is_empty() && !interval.is_null() {
            if creating || prior.attr(attr).is_null() {
                planned.set_attr(attr, Value::Unknown);
            }
        } else if creating || !away {
            planned.set_attr(attr, Value::Null);
        }
    }

    // Failing back: the serving volume is restored into the home zone as the new data
    // volume, and a new instance (from a template version naming it) serves it.
    if super::failback::failing_back(prior, planned) {
        for attr in [
            "active_volume_id",
            "volume_id",
            "volume_source_snapshot_id",
            "instance_id",
            "launch_template_version",
            "last_snapshot_id",
            "last_snapshot_time",
        ] {
            planned.set_attr(attr, Value::Unknown);
        }
    }

    // The failover zones' subnets. With `subnet_id` the configuration names them. Without,
    // they are the provider's: null without `failover_zones`; unknown when one is to be made
    // or deleted (a zone added or removed, or read found one gone).
    if !planned.attr("vpc_cidr").is_null() {
        let zones = planned.attr("failover_zones").clone();
        let wanted: BTreeSet<&str> = zones.elements().iter().filter_map(Value::as_str).collect();
        let same = planned
            .attr("failover_subnet_ids")
            .entries()
            .map_or(wanted.is_empty(), |m| {
                m.keys().map(String::as_str).collect::<BTreeSet<_>>() == wanted
            });
        if !zones.is_wholly_known() || (!wanted.is_empty() && (creating || !same)) {
            planned.set_attr("failover_subnet_ids", Value::Unknown);
        } else if wanted.is_empty() {
            planned.set_attr("failover_subnet_ids", Value::Null);
        }
    }

    // Every apply leaves the security group with exactly the configured rules, so the rules
    // a refresh found beyond them show as going.
    planned.set_attr("unmanaged_security_group_rules", Value::List(vec![]));

    // The handler's digest is known at plan time: the shipped zip's, or the user's file's.
    // So a new handler shows as a change, and an unchanged one never does.
    let sha = match planned.attr("handler_zip") {
        // Regular files only: a device such as /dev/zero would be read until memory runs
        // out, and a FIFO would block the plan.
        Value::String(path) if Path::new(path).is_file() => std::fs::read(path)
            .map(|b| Value::String(crate::handler_zip::sha256_hex(&b)))
            .unwrap_or(Value::Unknown),
        // A missing file (or not a file) is reported below; the digest is simply not known.
        Value::String(_) => Value::Unknown,
        Value::Null => match planned.attr("lambda_architecture").as_str() {
            Some(arch) => match crate::handler_zip::shipped_sha256(arch) {
                Some(sha) => Value::String(sha.to_string()),
                None => {
                    response.diagnostics.attribute_error(
                        AttributePath::root("lambda_architecture"),
                        "No shipped handler for this architecture",
                        format!(
                            "This provider build ships the attachment Lambda for {} only; \
                             `lambda_architecture` is {arch:?}. Set `handler_zip` to a \
                             bootstrap zip built for {arch} (provided.al2023; \
                             `tools/build-handler --arch {arch}` makes one), or use a release \
                             build of the provider, which ships both.",
                            crate::handler_zip::shipped_architectures().join(" and ")
                        ),
                    );
                    Value::Unknown
                }
            },
            None => Value::Unknown,
        },
        _ => Value::Unknown,
    };
    planned.set_attr("handler_sha256", sha);

    // Tags.
    // The provider's default_tags first, the resource's own tags win on a clash, as in
    // terraform-provider-aws.
    let mut merged: BTreeMap<String, Value> = request
        .context
        .default_tags
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let tags_all = match planned.attr("tags") {
        _ if request.context.default_tags_unknown => Value::Unknown,
        Value::Null => Value::Map(merged),
        tags @ Value::Map(own) if tags.is_wholly_known() => {
            merged.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
            Value::Map(merged)
        }
        _ => Value::Unknown,
    };
    planned.set_attr("tags_all", tags_all);

    // The handler zip must exist now, not halfway through an apply.
    if let Some(zip) = planned.attr("handler_zip").as_str() {
        if !zip_already_invalid && !Path::new(zip).is_file() {
            let resolved = std::env::current_dir()
                .map(|d| d.join(zip).display().to_string())
                .unwrap_or_else(|_| zip.to_string());
            response.diagnostics.attribute_error(
                AttributePath::root("handler_zip"),
                "Handler zip not found",
                format!(
                    "`handler_zip` {zip:?} is not a file (looked for {resolved:?}; relative \
                     paths are resolved against the directory Terraform runs in). Build the \
                     handler first, or remove `handler_zip` to use the handler that ships \
                     with the provider."
                ),
            );
        }
    }

    if !creating {
        refresh_requires_replace(
            schema,
            prior,
            &response.planned_state,
            &mut response.requires_replace,
        );
        warn_of_data_loss(prior, response);
    }
}

/// A replacement destroys the stack first, and that destroy follows the *prior* state's
/// `volume_on_destroy`: with `delete`, the data volume goes without a snapshot. Said at plan
/// time, naming what forces the replacement and how to keep the data.
fn warn_of_data_loss(prior: &Value, response: &mut PlanResponse) {
    if response.requires_replace.is_empty()
        || prior.attr("volume_on_destroy").as_str() != Some("delete")
    {
        return;
    }
    let forced_by: Vec<String> = response
        .requires_replace
        .iter()
        .map(|p| format!("`{p}`"))
        .collect();
    let volume = prior
        .attr("volume_id")
        .as_str()
        .unwrap_or("the data volume");
    let name = prior.attr("name").as_str().unwrap_or("this stack");
    response.diagnostics.attribute_warning(
        AttributePath::root("volume_on_destroy"),
        format!("Replacing stack {name:?} deletes its data"),
        format!(
            "{} forces a replacement, which destroys the current stack first. Its \
             `volume_on_destroy` is \"delete\", so {volume} is deleted without a final \
             snapshot. To keep the data, apply `volume_on_destroy = \"snapshot\"` (an in-place \
             change) before the replacement; `lifecycle {{ prevent_destroy = true }}` makes \
             Terraform refuse any plan that would destroy it.",
            forced_by.join(", ")
        ),
    );
}

/// Makes the top-level "requires replacement" paths match the final plan: listed exactly when
/// the planned value differs from the prior one (an unknown value counts as different).
fn refresh_requires_replace(
    schema: &Schema,
    prior: &Value,
    planned: &Value,
    requires_replace: &mut Vec<AttributePath>,
) {
    for a in schema
        .block
        .attributes
        .iter()
        .filter(|a| a.requires_replace)
    {
        let path = AttributePath::root(&a.name);
        let differs = prior.attr(&a.name) != planned.attr(&a.name);
        let listed = requires_replace.contains(&path);
        if differs && !listed {
            requires_replace.push(path);
        } else if !differs && listed {
            requires_replace.retain(|p| *p != path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autoheal_instance::schema::schema;
    use crate::plugin::diagnostics::Diagnostics;
    use crate::plugin::plan::plan_block;
    use crate::plugin::resource::ValidateContext;
    use crate::plugin::value::{Number, Type};

    fn config(pairs: &[(&str, Value)]) -> Value {
        let mut v = Value::null_object(&schema().value_type());
        v.set_attr("name", "web".into());
        v.set_attr("availability_zone", "ap-southeast-2a".into());
        v.set_attr("ami", "ami-0123456789abcdef0".into());
        for (k, x) in pairs {
            v.set_attr(k, x.clone());
        }
        v
    }

    /// Terraform's proposed new state: configured values, and the prior value of computed
    /// attributes the configuration leaves null.
    fn proposed(prior: &Value, config: &Value) -> Value {
        let schema = schema();
        let mut p = config.clone();
        for a in &schema.block.attributes {
            if a.is_computed() && config.attr(&a.name).is_null() {
                p.set_attr(&a.name, prior.attr(&a.name).clone());
            }
        }
        p
    }

    fn plan(prior: &Value, config: &Value) -> PlanResponse {
        let schema = schema();
        let proposed = proposed(prior, config);
        plan_with_context(
            &schema,
            prior,
            config,
            &proposed,
            &ValidateContext {
                region: Some("ap-southeast-2".into()),
                ..Default::default()
            },
        )
    }

    fn plan_with_context(
        schema: &Schema,
        prior: &Value,
        config: &Value,
        proposed: &Value,
        context: &ValidateContext,
    ) -> PlanResponse {
        let generic = plan_block(&schema.block, prior, config, proposed);
        let mut response = PlanResponse {
            planned_state: generic.planned,
            requires_replace: generic.requires_replace,
            diagnostics: Diagnostics::new(),
        };
        modify_plan(
            schema,
            PlanRequest {
                prior_state: prior,
                config,
                proposed_new_state: proposed,
                context,
            },
            &mut response,
        );
        response
    }

    /// What a successful apply of `planned` would store: unknowns replaced by made-up values.
    fn applied(planned: &Value) -> Value {
        let Type::Object(types) = schema().value_type() else {
            unreachable!()
        };
        let mut state = planned.clone();
        for (name, ty) in &types {
            if !planned.attr(name).is_unknown() {
                continue;
            }
            let value = match ty {
                Type::Number if name == "volume_size" => Value::from(10),
                Type::Number if name == "volume_iops" => Value::from(3000),
                Type::Number if name == "volume_throughput" => Value::from(125),
                Type::Number => Value::from(1),
                Type::String if name == "subnet_id" => "subnet-0123abcd".into(),
                Type::String if name == "volume_type" => "gp3".into(),
                Type::String => format!("{name}-1").into(),
                Type::Map(_) => Value::Map(BTreeMap::new()),
                other => panic!("no made-up value for {name}: {other:?}"),
            };
            state.set_attr(name, value);
        }
        assert!(state.is_wholly_known(), "{state:?}");
        state
    }

    fn created(config: &Value) -> Value {
        let response = plan(&Value::Null, config);
        assert!(
            !response.diagnostics.has_errors(),
            "{}",
            response.diagnostics
        );
        applied(&response.planned_state)
    }

    fn error_paths(d: &Diagnostics) -> Vec<String> {
        d.iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| {
                d.attribute
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default()
            })
            .collect()
    }

    #[test]
    fn tags_all_merges_default_tags_under_own_tags() {
        let schema = schema();
        let own = Value::Map(BTreeMap::from([
            ("Team".to_string(), "app".into()),
            ("Env".to_string(), "prod".into()),
        ]));
        let cfg = config(&[("tags", own)]);
        let mut context = ValidateContext {
            region: Some("ap-southeast-2".into()),
            ..Default::default()
        };
        context.default_tags = BTreeMap::from([
            ("Env".to_string(), "dev".to_string()),
            ("Owner".to_string(), "ops".to_string()),
        ]);
        let r = plan_with_context(
            &schema,
            &Value::Null,
            &cfg,
            &proposed(&Value::Null, &cfg),
            &context,
        );
        let expected = Value::Map(BTreeMap::from([
            ("Env".to_string(), "prod".into()),
            ("Owner".to_string(), "ops".into()),
            ("Team".to_string(), "app".into()),
        ]));
        assert_eq!(r.planned_state.attr("tags_all"), &expected);
        context.default_tags_unknown = true;
        let r = plan_with_context(
            &schema,
            &Value::Null,
            &cfg,
            &proposed(&Value::Null, &cfg),
            &context,
        );
        assert!(r.planned_state.attr("tags_all").is_unknown());
    }

    #[test]
    fn create_shows_defaults_and_unknown_computed_values() {
        let r = plan(&Value::Null, &config(&[]));
        assert!(r.diagnostics.is_empty(), "{}", r.diagnostics);
        assert!(r.requires_replace.is_empty());
        let p = &r.planned_state;
        assert_eq!(p.attr("id").as_str(), Some("web"));
        assert_eq!(p.attr("vpc_cidr").as_str(), Some("10.0.0.0/16"));
        assert_eq!(p.attr("subnet_cidr").as_str(), Some("10.0.1.0/24"));
        assert_eq!(p.attr("instance_type").as_str(), Some("t3.micro"));
        assert_eq!(p.attr("volume_size").as_i64(), Some(10));
        assert_eq!(p.attr("volume_type").as_str(), Some("gp3"));
        assert_eq!(p.attr("ssh_ingress_cidrs"), &Value::List(vec![]));
        assert_eq!(p.attr("volume_on_destroy").as_str(), Some("snapshot"));
        assert_eq!(p.attr("force_detach").as_bool(), Some(false));
        assert_eq!(p.attr("log_retention_days").as_i64(), Some(30));
        assert_eq!(p.attr("autoscaling_group_name").as_str(), Some("web-asg"));
        assert_eq!(
            p.attr("lifecycle_hook_name").as_str(),
            Some("web-launch-hook")
        );
        assert_eq!(
            p.attr("log_group_name").as_str(),
            Some("/aws/lambda/web-attach")
        );
        assert_eq!(p.attr("tags_all"), &Value::Map(BTreeMap::new()));
        for computed in [
            "subnet_id",
            "vpc_id",
            "security_group_id",
            "volume_id",
            "allocation_id",
            "public_ip",
            "launch_template_id",
            "launch_template_version",
            "event_rule_arn",
            "lambda_function_arn",
            "lambda_role_arn",
            "instance_id",
            "volume_iops",
            "volume_throughput",
        ] {
            assert!(
                p.attr(computed).is_unknown(),
                "{computed}: {:?}",
                p.attr(computed)
            );
        }
        assert!(p.attr("user_data").is_null());
        assert!(p.attr("timeouts").is_null());
    }

    #[test]
    fn create_with_unknown_name_or_tags() {
        let r = plan(
            &Value::Null,
            &config(&[
                ("name", Value::Unknown),
                (
                    "tags",
                    Value::Map(BTreeMap::from([("a".into(), Value::Unknown)])),
                ),
            ]),
        );
        let p = &r.planned_state;
        assert!(p.attr("id").is_unknown());
        assert!(p.attr("autoscaling_group_name").is_unknown());
        assert!(p.attr("tags_all").is_unknown());
    }

    #[test]
    fn create_in_an_existing_subnet_with_an_existing_volume() {
        let cfg = config(&[
            ("subnet_id", "subnet-0123abcd".into()),
            ("existing_volume_id", "vol-0123abcd".into()),
        ]);
        let r = plan(&Value::Null, &cfg);
        assert!(r.diagnostics.is_empty(), "{}", r.diagnostics);
        let p = &r.planned_state;
        assert_eq!(p.attr("subnet_id").as_str(), Some("subnet-0123abcd"));
        assert!(p.attr("vpc_cidr").is_null());
        assert!(p.attr("subnet_cidr").is_null());
        assert!(p.attr("volume_size").is_unknown());
        assert!(p.attr("volume_type").is_unknown());
        assert!(p.attr("volume_on_destroy").is_null());

        // Updates keep the existing volume's size and type, with no replacement.
        let mut prior = applied(p);
        prior.set_attr("volume_size", 50.into());
        let r = plan(&prior, &cfg);
        assert!(r.diagnostics.is_empty(), "{}", r.diagnostics);
        assert!(r.requires_replace.is_empty(), "{:?}", r.requires_replace);
        assert_eq!(r.planned_state, prior);

        // Dropping subnet_id moves the stack into a new VPC: replacement.
        let cfg = config(&[("existing_volume_id", "vol-0123abcd".into())]);
        let r = plan(&prior, &cfg);
        assert!(r.planned_state.attr("subnet_id").is_unknown());
        let mut paths: Vec<_> = r.requires_replace.iter().map(ToString::to_string).collect();
        paths.sort();
        assert_eq!(paths, ["subnet_cidr", "subnet_id", "vpc_cidr"]);
    }

    #[test]
    fn unchanged_configuration_plans_no_change() {
        let cfg = config(&[
            (
                "tags",
                Value::Map(BTreeMap::from([("team".into(), "ops".into())])),
            ),
            ("volume_type", "gp2".into()),
        ]);
        let prior = created(&cfg);
        assert_eq!(prior.attr("tags_all"), cfg.attr("tags"));
        let r = plan(&prior, &cfg);
        assert!(r.diagnostics.is_empty(), "{}", r.diagnostics);
        assert!(r.requires_replace.is_empty());
        assert_eq!(r.planned_state, prior);
    }

    #[test]
    fn rules_a_refresh_found_beyond_the_configuration_plan_to_go() {
        let cfg = config(&[]);
        let mut prior = created(&cfg);
        assert_eq!(
            prior.attr("unmanaged_security_group_rules"),
            &Value::List(vec![])
        );
        prior.set_attr(
            "unmanaged_security_group_rules",
            Value::List(vec!["ingress tcp 3306-3306 from 0.0.0.0/0".into()]),
        );
        let r = plan(&prior, &cfg);
        assert!(r.requires_replace.is_empty());
        let p = &r.planned_state;
        assert_eq!(
            p.attr("unmanaged_security_group_rules"),
            &Value::List(vec![])
        );
        // Only the group changes: the instance stays.
        assert_eq!(p.attr("instance_id"), prior.attr("instance_id"));
    }

    #[test]
    fn instance_profile_and_extra_groups_roll_the_instance() {
        let prior = created(&config(&[]));
        for (attr, value) in [
            ("iam_instance_profile", Value::from("ssm-agent")),
            (
                "security_group_ids",
                Value::List(vec!["sg-0123456789abcdef0".into()]),
            ),
        ] {
            let r = plan(&prior, &config(&[(attr, value)]));
            assert!(r.diagnostics.is_empty(), "{attr}: {}", r.diagnostics);
            assert!(r.requires_replace.is_empty(), "{attr}");
            assert!(r.planned_state.attr("instance_id").is_unknown(), "{attr}");
        }
    }

    #[test]
    fn tag_change_keeps_the_instance() {
        let prior = created(&config(&[]));
        let tags = Value::Map(BTreeMap::from([("team".into(), "ops".into())]));
        let r = plan(&prior, &config(&[("tags", tags.clone())]));
        assert!(r.diagnostics.is_empty(), "{}", r.diagnostics);
        assert!(r.requires_replace.is_empty());
        let p = &r.planned_state;
        assert_eq!(p.attr("tags_all"), &tags);
        for stable in [
            "instance_id",
            "launch_template_version",
            "public_ip",
            "volume_id",
            "handler_sha256",
            "subnet_id",
            "volume_iops",
        ] {
            assert_eq!(p.attr(stable), prior.attr(stable), "{stable}");
        }
    }

    #[test]
    fn instance_type_change_rolls_the_instance() {
        let prior = created(&config(&[]));
        for (attr, value) in [
            ("instance_type", Value::from("t3.small")),
            ("ami", "ami-0fedcba9".into()),
            ("user_data", "#!/bin/sh\n".into()),
            ("key_name", "ops".into()),
            ("device_name", "/dev/sdg".into()),
            ("mount_point", "/srv".into()),
            ("filesystem", "xfs".into()),
        ] {
            let r = plan(&prior, &config(&[(attr, value)]));
            assert!(r.diagnostics.is_empty(), "{attr}: {}", r.diagnostics);
            assert!(r.requires_replace.is_empty(), "{attr}");
            let p = &r.planned_state;
            assert!(p.attr("instance_id").is_unknown(), "{attr}");
            assert!(p.attr("launch_template_version").is_unknown(), "{attr}");
            assert_eq!(p.attr("public_ip"), prior.attr("public_ip"), "{attr}");
            assert_eq!(p.attr("volume_id"), prior.attr("volume_id"), "{attr}");
            assert_eq!(
                p.attr("launch_template_id"),
                prior.attr("launch_template_id")
            );
        }
    }

    #[test]
    fn device_name_defaults_for_new_stacks_only() {
        use crate::autoheal_instance::schema::EARLIER_DEFAULT_DEVICE_NAME;
        // Create: the default.
        let r = plan(&Value::Null, &config(&[]));
        assert!(r.diagnostics.is_empty(), "{}", r.diagnostics);
        assert_eq!(
            r.planned_state.attr("device_name").as_str(),
            Some("/dev/sdf")
        );
        assert_eq!(DEFAULT_DEVICE_NAME, "/dev/sdf");

        // A stack created with the earlier default, which a configuration may no longer
        // name: an upgraded provider plans no change at all (nothing rolls).
        let mut prior = created(&config(&[]));
        prior.set_attr("device_name", EARLIER_DEFAULT_DEVICE_NAME.into());
        let r = plan(&prior, &config(&[]));
        assert!(r.diagnostics.is_empty(), "{}", r.diagnostics);
        assert!(r.requires_replace.is_empty());
        assert_eq!(
            r.planned_state.attr("device_name").as_str(),
            Some("/dev/xvdb")
        );
        assert_eq!(r.planned_state, prior);

        // Any other name in the state is kept the same way.
        prior.set_attr("device_name", "/dev/sdg".into());
        assert_eq!(plan(&prior, &config(&[])).planned_state, prior);

        // Configuring a name changes it (and rolls the instance); configuring /dev/xvdb is
        // refused even where the state has it.
        prior.set_attr("device_name", EARLIER_DEFAULT_DEVICE_NAME.into());
        let r = plan(&prior, &config(&[("device_name", "/dev/sdf".into())]));
        assert!(r.diagnostics.is_empty(), "{}", r.diagnostics);
        assert_eq!(
            r.planned_state.attr("device_name").as_str(),
            Some("/dev/sdf")
        );
        assert!(r.planned_state.attr("instance_id").is_unknown());
        let r = plan(&prior, &config(&[("device_name", "/dev/xvdb".into())]));
        assert_eq!(error_paths(&r.diagnostics), ["device_name"]);

        // A state without one (not written by this provider) gets the default.
        prior.set_attr("device_name", Value::Null);
        let r = plan(&prior, &config(&[]));
        assert_eq!(
            r.planned_state.attr("device_name").as_str(),
            Some("/dev/sdf")
        );
    }

    #[test]
    fn name_change_requires_replacement() {
        let prior = created(&config(&[]));
        let r = plan(&prior, &config(&[("name", "api".into())]));
        assert!(r.diagnostics.is_empty(), "{}", r.diagnostics);
        assert_eq!(r.requires_replace, vec![AttributePath::root("name")]);
        assert_eq!(r.planned_state.attr("id").as_str(), Some("api"));
    }

    #[test]
    fn a_replacement_that_deletes_the_volume_warns() {
        let prior = created(&config(&[("volume_on_destroy", "delete".into())]));
        let r = plan(
            &prior,
            &config(&[
                ("name", "api".into()),
                ("volume_on_destroy", "delete".into()),
            ]),
        );
        assert!(!r.diagnostics.has_errors(), "{}", r.diagnostics);
        let w: Vec<_> = r.diagnostics.iter().collect();
        assert_eq!(w.len(), 1, "{}", r.diagnostics);
        assert_eq!(w[0].severity, Severity::Warning);
        assert_eq!(
            w[0].attribute,
            Some(AttributePath::root("volume_on_destroy"))
        );
        assert!(
            w[0].detail.contains("`name`") && w[0].detail.contains("without a final snapshot"),
            "{}",
            w[0].detail
        );
        // Also when the same plan switches to "snapshot": the destroy half follows the prior.
        let r = plan(&prior, &config(&[("name", "api".into())]));
        assert_eq!(r.diagnostics.iter().count(), 1, "{}", r.diagnostics);
        // No warning without a replacement, nor with a snapshot kept.
        let r = plan(&prior, &config(&[("volume_on_destroy", "delete".into())]));
        assert!(r.diagnostics.is_empty(), "{}", r.diagnostics);
        let kept = created(&config(&[]));
        let r = plan(&kept, &config(&[("name", "api".into())]));
        assert!(r.diagnostics.is_empty(), "{}", r.diagnostics);
    }

    #[test]
    fn volume_cannot_shrink() {
        let prior = created(&config(&[("volume_size", 20.into())]));
        let r = plan(&prior, &config(&[("volume_size", 19.into())]));
        assert_eq!(error_paths(&r.diagnostics), ["volume_size"]);
        // Omitting it means the default (10): still a shrink.
        let r = plan(&prior, &config(&[]));
        assert_eq!(error_paths(&r.diagnostics), ["volume_size"]);
        // Growing is fine and keeps the instance and, for gp3, the IOPS.
        let r = plan(&prior, &config(&[("volume_size", 30.into())]));
        assert!(r.diagnostics.is_empty(), "{}", r.diagnostics);
        assert_eq!(
            r.planned_state.attr("instance_id"),
            prior.attr("instance_id")
        );
        assert_eq!(
            r.planned_state.attr("volume_iops"),
            prior.attr("volume_iops")
        );
    }

    #[test]
    fn volume_type_change_makes_baselines_unknown() {
        let prior = created(&config(&[]));
        let r = plan(&prior, &config(&[("volume_type", "gp2".into())]));
        assert!(r.diagnostics.is_empty(), "{}", r.diagnostics);
        assert!(r.planned_state.attr("volume_iops").is_unknown());
        assert!(r.planned_state.attr("volume_throughput").is_unknown());
        let r = plan(&prior, &config(&[("volume_iops", 4000.into())]));
        assert_eq!(r.planned_state.attr("volume_iops").as_i64(), Some(4000));
        assert_eq!(
            r.planned_state.attr("volume_throughput"),
            prior.attr("volume_throughput")
        );
    }

    #[test]
    fn shipped_handler_digest_is_planned_and_stable() {
        let r = plan(&Value::Null, &config(&[]));
        let shipped = crate::handler_zip::shipped_sha256("x86_64").unwrap();
        assert_eq!(
            r.planned_state.attr("handler_sha256").as_str(),
            Some(shipped)
        );
        let prior = created(&config(&[]));
        let mut stale = prior.clone();
        stale.set_attr("handler_sha256", "00".into());
        let r = plan(&stale, &config(&[]));
        assert_eq!(
            r.planned_state.attr("handler_sha256").as_str(),
            Some(shipped)
        );
        let r = plan(
            &Value::Null,
            &config(&[("lambda_architecture", "arm64".into())]),
        );
        match crate::handler_zip::shipped_sha256("arm64") {
            // A release build: the arm64 zip's own digest.
            Some(arm64) => {
                assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
                assert_eq!(r.planned_state.attr("handler_sha256").as_str(), Some(arm64));
                assert_ne!(arm64, shipped);
            }
            None => assert_eq!(error_paths(&r.diagnostics), ["lambda_architecture"]),
        }
    }

    #[test]
    fn handler_zip_change_and_existence() {
        let dir = tempfile::tempdir().unwrap();
        let zip = dir.path().join("handler.zip");
        std::fs::write(&zip, b"PK").unwrap();
        let zip = zip.display().to_string();
        let prior = created(&config(&[]));
        let r = plan(&prior, &config(&[("handler_zip", zip.as_str().into())]));
        assert!(r.diagnostics.is_empty(), "{}", r.diagnostics);
        assert_eq!(
            r.planned_state.attr("handler_sha256").as_str(),
            Some(crate::handler_zip::sha256_hex(b"PK").as_str())
        );
        assert_eq!(
            r.planned_state.attr("instance_id"),
            prior.attr("instance_id")
        );

        let missing = dir.path().join("missing.zip").display().to_string();
        let r = plan(&prior, &config(&[("handler_zip", missing.into())]));
        assert_eq!(error_paths(&r.diagnostics), ["handler_zip"]);
        // A bad suffix is reported once, by validation.
        let r = plan(&prior, &config(&[("handler_zip", "handler.tgz".into())]));
        assert_eq!(error_paths(&r.diagnostics), ["handler_zip"]);
    }

    #[test]
    fn plan_validates_with_the_region() {
        let r = plan(
            &Value::Null,
            &config(&[("availability_zone", "us-east-1a".into())]),
        );
        assert_eq!(error_paths(&r.diagnostics), ["availability_zone"]);
        // Warnings belong to validate; plan does not repeat them.
        let r = plan(&Value::Null, &config(&[("lambda_timeout", 600.into())]));
        assert!(r.diagnostics.is_empty(), "{}", r.diagnostics);
    }

    #[test]
    fn destroy_is_left_alone() {
        let prior = created(&config(&[]));
        let schema = schema();
        let mut response = PlanResponse {
            planned_state: Value::Null,
            requires_replace: Vec::new(),
            diagnostics: Diagnostics::new(),
        };
        modify_plan(
            &schema,
            PlanRequest {
                prior_state: &prior,
                config: &Value::Null,
                proposed_new_state: &Value::Null,
                context: &ValidateContext::default(),
            },
            &mut response,
        );
        assert!(response.planned_state.is_null());
        assert!(response.diagnostics.is_empty());
    }

    #[test]
    fn configured_values_are_never_overridden() {
        // Conflicting settings are validation errors, but the plan still keeps what the
        // configuration says, as Terraform requires of every plan.
        let cfg = config(&[
            ("subnet_id", "subnet-0123abcd".into()),
            ("vpc_cidr", "10.0.0.0/16".into()),
            ("existing_volume_id", "vol-0123abcd".into()),
            ("volume_size", 20.into()),
            ("volume_on_destroy", "retain".into()),
        ]);
        let r = plan(&Value::Null, &cfg);
        assert!(r.diagnostics.has_errors());
        let p = &r.planned_state;
        assert_eq!(p.attr("vpc_cidr"), cfg.attr("vpc_cidr"));
        assert!(p.attr("subnet_cidr").is_null());
        assert_eq!(p.attr("volume_size"), cfg.attr("volume_size"));
        assert!(p.attr("volume_type").is_unknown());
        assert_eq!(p.attr("volume_on_destroy"), cfg.attr("volume_on_destroy"));
    }

    #[test]
    fn fractional_numbers_do_not_panic() {
        let prior = created(&config(&[]));
        let r = plan(
            &prior,
            &config(&[("volume_size", Value::Number(Number::Float(10.5)))]),
        );
        assert_eq!(error_paths(&r.diagnostics), ["volume_size"]);
    }

    const INTERFACE_ATTRS: [&str; 3] = [
        "network_interface_id",
        "network_interface_private_ip",
        "network_interface_mac_address",
    ];
    const ALARM_ATTRS: [&str; 2] = ["heal_failure_alarm_arn", "no_in_service_alarm_arn"];

    fn topics(arns: &[&str]) -> Value {
        Value::Set(arns.iter().map(|a| Value::from(*a)).collect())
    }

    #[test]
    fn a_stack_without_the_opt_ins_plans_their_attributes_null() {
        let p = plan(&Value::Null, &config(&[])).planned_state;
        for a in INTERFACE_ATTRS.iter().chain(&ALARM_ATTRS) {
            assert!(p.attr(a).is_null(), "{a}: {:?}", p.attr(a));
        }
        // And an existing one plans no change for them.
        let prior = created(&config(&[]));
        let p = plan(&prior, &config(&[])).planned_state;
        assert_eq!(p, prior);
    }

    #[test]
    fn the_interface_is_unknown_when_made_kept_when_there_and_null_when_turned_off() {
        let on = config(&[("persistent_network_interface", Value::Bool(true))]);
        let p = plan(&Value::Null, &on).planned_state;
        for a in INTERFACE_ATTRS {
            assert!(p.attr(a).is_unknown(), "{a} on create");
        }
        // Turned on in place: made now.
        let off_state = created(&config(&[]));
        let p = plan(&off_state, &on).planned_state;
        for a in INTERFACE_ATTRS {
            assert!(p.attr(a).is_unknown(), "{a} when turned on");
        }
        assert_eq!(
            p.attr("instance_id"),
            off_state.attr("instance_id"),
            "no roll"
        );
        // There: kept, an empty plan.
        let on_state = created(&on);
        assert_eq!(plan(&on_state, &on).planned_state, on_state);
        // Read found it in need of repair (its private IP nulled): the addresses are unknown,
        // the id is kept (the interface is converged, not replaced).
        let mut drifted = on_state.clone();
        drifted.set_attr("network_interface_private_ip", Value::Null);
        let p = plan(&drifted, &on).planned_state;
        assert_eq!(
            p.attr("network_interface_id"),
            on_state.attr("network_interface_id")
        );
        assert!(p.attr("network_interface_private_ip").is_unknown());
        // Read found it gone: a new one.
        let mut gone = on_state.clone();
        gone.set_attr("network_interface_id", Value::Null);
        assert!(plan(&gone, &on)
            .planned_state
            .attr("network_interface_id")
            .is_unknown());
        // Turned off: null, in place.
        let r = plan(&on_state, &config(&[]));
        for a in INTERFACE_ATTRS {
            assert!(r.planned_state.attr(a).is_null(), "{a} when turned off");
        }
        assert!(r.requires_replace.is_empty(), "{:?}", r.requires_replace);
        // Unknown until apply (from another resource): unknown.
        let p = plan(
            &Value::Null,
            &config(&[("persistent_network_interface", Value::Unknown)]),
        )
        .planned_state;
        assert!(p.attr("network_interface_id").is_unknown());
    }

    #[test]
    fn the_failover_subnets_follow_failover_zones() {
        // Failover zones come with the scheduled snapshots a failover restores.
        let fo_config = |pairs: &[(&str, Value)]| {
            let mut v = config(pairs);
            v.set_attr("snapshot_interval", "1h".into());
            v
        };
        let zones = |z: &[&str]| Value::Set(z.iter().map(|s| Value::from(*s)).collect());
        let ids = |pairs: &[(&str, &str)]| {
            Value::Map(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), Value::from(*v)))
                    .collect(),
            )
        };
        let with = fo_config(&[("failover_zones", zones(&["ap-southeast-2b"]))]);
        let at_create = plan(&Value::Null, &with);
        assert!(at_create
            .planned_state
            .attr("failover_subnet_ids")
            .is_unknown());
        // Kept while every zone has its subnet: no change.
        let mut prior = created(&with);
        prior.set_attr(
            "failover_subnet_ids",
            ids(&[("ap-southeast-2b", "subnet-b")]),
        );
        assert_eq!(plan(&prior, &with).planned_state, prior, "no change");
        // A zone added, or its subnet found gone by read: unknown (made in place).
        let more = fo_config(&[(
            "failover_zones",
            zones(&["ap-southeast-2b", "ap-southeast-2c"]),
        )]);
        let added = plan(&prior, &more);
        assert!(added.planned_state.attr("failover_subnet_ids").is_unknown());
        assert!(added.requires_replace.is_empty());
        let mut gone = prior.clone();
        gone.set_attr("failover_subnet_ids", Value::Null);
        assert!(plan(&gone, &with)
            .planned_state
            .attr("failover_subnet_ids")
            .is_unknown());
        // Without failover zones: none.
        let off = plan(&prior, &fo_config(&[]));
        assert!(off.planned_state.attr("failover_subnet_ids").is_null());
        // The user's subnets (with subnet_id): the configuration's, as they are.
        let users = fo_config(&[
            ("subnet_id", "subnet-0123456789abcdef0".into()),
            ("failover_zones", zones(&["ap-southeast-2b"])),
            (
                "failover_subnet_ids",
                ids(&[("ap-southeast-2b", "subnet-12345678")]),
            ),
        ]);
        let theirs = plan(&Value::Null, &users);
        assert_eq!(
            theirs.planned_state.attr("failover_subnet_ids"),
            &ids(&[("ap-southeast-2b", "subnet-12345678")])
        );
    }

    #[test]
    fn where_the_stack_serves_is_reported_with_the_failover() {
        const ACTIVE: [&str; 2] = ["active_availability_zone", "active_volume_id"];
        let with = {
            let mut v = config(&[("failover_zones", Value::Set(vec!["ap-southeast-2b".into()]))]);
            v.set_attr("snapshot_interval", "1h".into());
            v
        };
        let without = config(&[]);
        // Without the failover: null, at create and on a stack upgraded from a release
        // without the attributes (null in its state): no change.
        for attr in ACTIVE {
            assert!(plan(&Value::Null, &without)
                .planned_state
                .attr(attr)
                .is_null());
        }
        let upgraded = created(&without);
        assert_eq!(plan(&upgraded, &without).planned_state, upgraded);
        // With it: known after the apply, then kept.
        for attr in ACTIVE {
            assert!(plan(&Value::Null, &with)
                .planned_state
                .attr(attr)
                .is_unknown());
            assert!(plan(&upgraded, &with).planned_state.attr(attr).is_unknown());
        }
        let mut home = created(&with);
        home.set_attr("active_availability_zone", "ap-southeast-2a".into());
        let home_volume = home.attr("volume_id").clone();
        home.set_attr("active_volume_id", home_volume);
        home.set_attr(
            "failover_subnet_ids",
            Value::Map(BTreeMap::from([(
                "ap-southeast-2b".into(),
                "subnet-b".into(),
            )])),
        );
        assert_eq!(plan(&home, &with).planned_state, home, "no change");
        // Turned off at home: null. Turned off after a move: still reported (the group
        // serves from the restored volume).
        let off = plan(&home, &without).planned_state;
        for attr in ACTIVE {
            assert!(off.attr(attr).is_null(), "{attr}");
        }
        let mut moved = home.clone();
        moved.set_attr("active_availability_zone", "ap-southeast-2b".into());
        moved.set_attr("active_volume_id", "vol-restored".into());
        let off = plan(&moved, &without).planned_state;
        for attr in ACTIVE {
            assert_eq!(off.attr(attr), moved.attr(attr), "{attr}");
        }
    }

    #[test]
    fn failing_back_plans_a_new_volume_and_instance_in_place() {
        let mut with = config(&[("failover_zones", Value::Set(vec!["ap-southeast-2b".into()]))]);
        with.set_attr("snapshot_interval", "1h".into());
        let mut moved = created(&with);
        moved.set_attr("active_availability_zone", "ap-southeast-2b".into());
        moved.set_attr("active_volume_id", "vol-restored".into());
        moved.set_attr(
            "failover_subnet_ids",
            Value::Map(BTreeMap::from([(
                "ap-southeast-2b".into(),
                "subnet-b".into(),
            )])),
        );
        // Left out of the configuration: calm.
        assert_eq!(plan(&moved, &with).planned_state, moved);
        // Set to the home zone: in place, the volume, the instance and the template version
        // to come, the zone as configured.
        let mut back = with.clone();
        back.set_attr("active_availability_zone", "ap-southeast-2a".into());
        let r = plan(&moved, &back);
        assert!(r.diagnostics.is_empty(), "{}", r.diagnostics);
        assert!(r.requires_replace.is_empty(), "{:?}", r.requires_replace);
        let p = &r.planned_state;
        assert_eq!(
            p.attr("active_availability_zone").as_str(),
            Some("ap-southeast-2a")
        );
        for attr in [
            "active_volume_id",
            "volume_id",
            "instance_id",
            "launch_template_version",
        ] {
            assert!(p.attr(attr).is_unknown(), "{attr}");
        }
        assert_eq!(p.attr("allocation_id"), moved.attr("allocation_id"));
        // At home already: nothing to do.
        let mut home = moved.clone();
        home.set_attr("active_availability_zone", "ap-southeast-2a".into());
        let home_volume = home.attr("volume_id").clone();
        home.set_attr("active_volume_id", home_volume);
        assert_eq!(plan(&home, &back).planned_state, home);
    }

    #[test]
    fn the_snapshot_rule_arn_follows_snapshot_interval() {
        let arn = "arn:aws:events:ap-southeast-2:123456789012:rule/web-snapshot";
        let with = config(&[("snapshot_interval", "1h".into())]);
        let created_plan = plan(&Value::Null, &with);
        assert!(created_plan
            .planned_state
            .attr("snapshot_rule_arn")
            .is_unknown());
        // Kept while the schedule stays, also when its rate changes.
        let mut prior = created(&with);
        assert_eq!(plan(&prior, &with).planned_state, prior, "no change");
        prior.set_attr("snapshot_rule_arn", arn.into());
        prior.set_attr("last_snapshot_id", "snap-0123abcd".into());
        let kept = plan(&prior, &config(&[("snapshot_interval", "30m".into())]));
        assert_eq!(
            kept.planned_state.attr("snapshot_rule_arn").as_str(),
            Some(arn)
        );
        assert_eq!(
            kept.planned_state.attr("last_snapshot_id").as_str(),
            Some("snap-0123abcd")
        );
        // Gone with the schedule; repaired when read nulled it.
        let off = plan(&prior, &config(&[]));
        assert!(off.planned_state.attr("snapshot_rule_arn").is_null());
        prior.set_attr("snapshot_rule_arn", Value::Null);
        let repair = plan(&prior, &with);
        assert!(repair.planned_state.attr("snapshot_rule_arn").is_unknown());
        let unknown = plan(&prior, &config(&[("snapshot_interval", Value::Unknown)]));
        assert!(unknown.planned_state.attr("snapshot_rule_arn").is_unknown());
    }

    #[test]
    fn alarm_arns_follow_alarm_actions() {
        let topic = "arn:aws:sns:ap-southeast-2:123456789012:ops";
        let with = config(&[("alarm_actions", topics(&[topic]))]);
        let p = plan(&Value::Null, &with).planned_state;
        for a in ALARM_ATTRS {
            assert!(p.attr(a).is_unknown(), "{a} on create");
        }
        let state = created(&with);
        assert_eq!(plan(&state, &with).planned_state, state, "no change");
        // Other minutes: the same alarms rewritten, ARNs kept, in place.
        let minutes = config(&[
            ("alarm_actions", topics(&[topic])),
            ("alarm_no_in_service_minutes", Value::from(3)),
        ]);
        let r = plan(&state, &minutes);
        for a in ALARM_ATTRS {
            assert_eq!(r.planned_state.attr(a), state.attr(a), "{a}");
        }
        assert!(r.requires_replace.is_empty());
        // One deleted by hand (read nulled it): made again.
        let mut drifted = state.clone();
        drifted.set_attr("no_in_service_alarm_arn", Value::Null);
        let p = plan(&drifted, &with).planned_state;
        assert!(p.attr("no_in_service_alarm_arn").is_unknown());
        assert_eq!(
            p.attr("heal_failure_alarm_arn"),
            state.attr("heal_failure_alarm_arn")
        );
        // Removed, or an empty set: null.
        for without in [config(&[]), config(&[("alarm_actions", topics(&[]))])] {
            let p = plan(&state, &without).planned_state;
            for a in ALARM_ATTRS {
                assert!(p.attr(a).is_null(), "{a}");
            }
        }
    }
}

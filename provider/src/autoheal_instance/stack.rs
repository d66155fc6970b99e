//! The AWS objects of one stack, as recorded in Terraform's state: the computed attributes.
//!
//! Create fills a [`Stack`] step by step (concurrent steps share it behind a lock), so when a
//! step fails the state still names every object created so far and the next apply or destroy
//! can clean up. Read rebuilds it from AWS; delete works from it.

use crate::plugin::value::Value;

/// Ids and names of the stack's objects; `None` = not created (or not known).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stack {
    pub vpc_id: Option<String>,
    pub subnet_id: Option<String>,
    pub security_group_id: Option<String>,
    pub volume_id: Option<String>,
    pub volume_source_snapshot_id: Option<String>,
    pub allocation_id: Option<String>,
    pub public_ip: Option<String>,
    pub launch_template_id: Option<String>,
    pub launch_template_version: Option<i64>,
    pub autoscaling_group_name: Option<String>,
    pub lifecycle_hook_name: Option<String>,
    pub event_rule_arn: Option<String>,
    pub lambda_function_arn: Option<String>,
    pub lambda_role_arn: Option<String>,
    pub log_group_name: Option<String>,
    pub handler_sha256: Option<String>,
    pub instance_id: Option<String>,
    pub network_interface_id: Option<String>,
    pub network_interface_private_ip: Option<String>,
    pub network_interface_mac_address: Option<String>,
    pub snapshot_rule_arn: Option<String>,
    /// The newest completed scheduled snapshot, as of the last refresh (only read sets
    /// these; create and update keep what they had).
    pub last_snapshot_id: Option<String>,
    pub last_snapshot_time: Option<String>,
    pub heal_failure_alarm_arn: Option<String>,
    pub no_in_service_alarm_arn: Option<String>,
    pub failover_function_arn: Option<String>,
    pub failover_role_arn: Option<String>,
    pub failover_rule_arn: Option<String>,
    /// Where the stack serves, as of the last refresh (only read sets these).
    pub active_availability_zone: Option<String>,
    pub active_volume_id: Option<String>,
    /// The failover zones' subnets, zone -> subnet id (`failover_subnet_ids`); empty: none.
    pub failover_subnet_ids: std::collections::BTreeMap<String, String>,
}

/// The string attributes, in schema order, with their accessors.
macro_rules! string_fields {
    ($m:ident) => {
        $m!(vpc_id);
        $m!(subnet_id);
        $m!(security_group_id);
        $m!(volume_id);
        $m!(volume_source_snapshot_id);
        $m!(allocation_id);
        $m!(public_ip);
        $m!(launch_template_id);
        $m!(autoscaling_group_name);
        $m!(lifecycle_hook_name);
        $m!(event_rule_arn);
        $m!(lambda_function_arn);
        $m!(lambda_role_arn);
        $m!(log_group_name);
        $m!(handler_sha256);
        $m!(instance_id);
        $m!(network_interface_id);
        $m!(network_interface_private_ip);
        $m!(network_interface_mac_address);
        $m!(snapshot_rule_arn);
        $m!(last_snapshot_id);
        $m!(last_snapshot_time);
        $m!(heal_failure_alarm_arn);
        $m!(no_in_service_alarm_arn);
        $m!(failover_function_arn);
        $m!(failover_role_arn);
        $m!(failover_rule_arn);
        $m!(active_availability_zone);
        $m!(active_volume_id);
    };
}

impl Stack {
    /// Reads the computed attributes of a state (unknown and null are `None`).
    pub fn from_value(v: &Value) -> Stack {
        let mut s = Stack::default();
        macro_rules! read {
            ($f:ident) => {
                s.$f = v.attr(stringify!($f)).as_str().map(str::to_string);
            };
        }
        string_fields!(read);
        s.launch_template_version = v.attr("launch_template_version").as_i64();
        s.failover_subnet_ids = super::spec::string_map(v, "failover_subnet_ids");
        s
    }

    /// Writes the computed attributes into `state`: known ones as values, the others null
    /// (a state after apply may hold no unknown value).
    pub fn write(&self, state: &mut Value) {
        macro_rules! write {
            ($f:ident) => {
                state.set_attr(stringify!($f), Value::from(self.$f.clone()));
            };
        }
        string_fields!(write);
        state.set_attr(
            "launch_template_version",
            self.launch_template_version
                .map_or(Value::Null, Value::from),
        );
        state.set_attr(
            "failover_subnet_ids",
            super::spec::string_map_value(&self.failover_subnet_ids),
        );
    }
}

/// Replaces every unknown value left in `state` (anywhere) with null.
pub fn nullify_unknowns(state: &mut Value) {
    match state {
        Value::Unknown => *state = Value::Null,
        Value::Object(m) | Value::Map(m) => m.values_mut().for_each(nullify_unknowns),
        Value::List(l) | Value::Set(l) | Value::Tuple(l) => l.iter_mut().for_each(nullify_unknowns),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autoheal_instance::schema::schema;

    #[test]
    fn round_trips_through_a_state_value() {
        let ty = schema().value_type();
        let mut state = Value::null_object(&ty);
        let stack = Stack {
            vpc_id: Some("vpc-1".into()),
            volume_id: Some("vol-1".into()),
            launch_template_version: Some(3),
            instance_id: Some("i-1".into()),
            ..Stack::default()
        };
        stack.write(&mut state);
        assert_eq!(Stack::from_value(&state), stack);
        assert!(state.attr("allocation_id").is_null());
    }

    #[test]
    fn unknowns_become_null() {
        let ty = schema().value_type();
        let mut state = Value::null_object(&ty);
        state.set_attr("vpc_id", Value::Unknown);
        state.set_attr("name", "web".into());
        nullify_unknowns(&mut state);
        assert!(state.attr("vpc_id").is_null());
        assert_eq!(state.attr("name").as_str(), Some("web"));
        assert!(state.is_wholly_known());
    }
}

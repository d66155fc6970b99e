//! The stack's two CloudWatch alarms (`alarm_actions`): what each watches and when it goes
//! off. Their definitions are built here from the spec alone, so create, update and read
//! (drift) compare against one source.
//!
//! - `<name>-heal-failed`: the attachment Lambda's `PermanentFailure` metric (namespace
//!   `Autoheal`, dimension `AutoScalingGroupName`, emitted in Embedded Metric Format by
//!   handler/src/metrics.rs: 1 for an ABANDON, a completion that failed, or a heal that failed
//!   before the instance was confirmed) summed over one minute, above 0. Missing data is "not
//!   breaching": the function reports only when it runs.
//! - `<name>-no-in-service`: the group's `GroupInServiceInstances` (namespace
//!   `AWS/AutoScaling`, published each minute while group metrics are enabled, which the
//!   provider does at create) at its minimum below 1 for `alarm_no_in_service_minutes`
//!   consecutive minutes. Missing data keeps the alarm's state ("ignore"): a stack whose
//!   metrics stop must not page on the absence alone, nor look healthy. Not "missing": with
//!   it, CloudWatch goes to ALARM on a single breaching datapoint when the others of the
//!   evaluation range are missing ("Configuring how CloudWatch alarms treat missing data",
//!   the row `- - X - -`), so every new stack would page on its first minute, whose
//!   datapoint is 0 while the first instance boots, long before N minutes have passed.
//!
//! Both notify `alarm_actions` on ALARM and again on OK.

use crate::aws::alarm::AlarmSpec;

use super::names;
use super::spec::Spec;

/// The namespace and metric the handler emits (handler/src/metrics.rs).
pub const HANDLER_NAMESPACE: &str = "Autoheal";
pub const HANDLER_FAILURE_METRIC: &str = "PermanentFailure";
/// The dimension both alarms select their group by.
pub const GROUP_DIMENSION: &str = "AutoScalingGroupName";
/// Auto Scaling's group metric of InService instances.
pub const GROUP_NAMESPACE: &str = "AWS/AutoScaling";
pub const IN_SERVICE_METRIC: &str = "GroupInServiceInstances";
const PERIOD_SECONDS: i32 = 60;

/// The alarms the spec asks for: none without `alarm_actions`.
pub fn wanted(spec: &Spec) -> Vec<AlarmSpec> {
    if !spec.has_alarms() {
        return Vec::new();
    }
    let group = names::AUTOSCALING_GROUP.for_stack(&spec.name);
    let dimensions = vec![(GROUP_DIMENSION.to_string(), group.clone())];
    vec![
        AlarmSpec {
            name: names::HEAL_FAILED_ALARM.for_stack(&spec.name),
            description: format!(
                "autoheal stack {}: the attachment Lambda could not heal an instance of {group} \
                 (see its log group /aws/lambda/{}).",
                spec.name,
                names::LAMBDA_FUNCTION.for_stack(&spec.name)
            ),
            namespace: HANDLER_NAMESPACE.into(),
            metric_name: HANDLER_FAILURE_METRIC.into(),
            dimensions: dimensions.clone(),
            statistic: "Sum".into(),
            period_seconds: PERIOD_SECONDS,
            evaluation_periods: 1,
            threshold: 0.0,
            comparison: "GreaterThanThreshold".into(),
            treat_missing_data: "notBreaching".into(),
            alarm_actions: spec.alarm_actions.clone(),
            ok_actions: spec.alarm_actions.clone(),
        },
        AlarmSpec {
            name: names::NO_IN_SERVICE_ALARM.for_stack(&spec.name),
            description: format!(
                "autoheal stack {}: {group} has had no InService instance for {} minutes.",
                spec.name, spec.alarm_no_in_service_minutes
            ),
            namespace: GROUP_NAMESPACE.into(),
            metric_name: IN_SERVICE_METRIC.into(),
            dimensions,
            statistic: "Minimum".into(),
            period_seconds: PERIOD_SECONDS,
            evaluation_periods: spec.alarm_no_in_service_minutes,
            threshold: 1.0,
            comparison: "LessThanThreshold".into(),
            treat_missing_data: "ignore".into(),
            alarm_actions: spec.alarm_actions.clone(),
            ok_actions: spec.alarm_actions.clone(),
        },
    ]
}

/// The names of both alarms, whether or not the spec wants them (what a destroy or a removal
/// of `alarm_actions` deletes).
pub fn all_names(stack_name: &str) -> Vec<String> {
    vec![
        names::HEAL_FAILED_ALARM.for_stack(stack_name),
        names::NO_IN_SERVICE_ALARM.for_stack(stack_name),
    ]
}

/// Whether `found` (as DescribeAlarms reports it) is `wanted`: the action lists compared as
/// sets, CloudWatch keeps them in its own order.
pub fn matches(found: &AlarmSpec, wanted: &AlarmSpec) -> bool {
    let sorted = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v
    };
    let mut a = found.clone();
    let mut b = wanted.clone();
    a.alarm_actions = sorted(&a.alarm_actions);
    a.ok_actions = sorted(&a.ok_actions);
    b.alarm_actions = sorted(&b.alarm_actions);
    b.ok_actions = sorted(&b.ok_actions);
    a == b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autoheal_instance::schema::schema;
    use crate::plugin::value::Value;

    fn spec(actions: &[&str], minutes: Option<i64>) -> Spec {
        let mut v = Value::null_object(&schema().value_type());
        v.set_attr("name", "web".into());
        if !actions.is_empty() {
            v.set_attr(
                "alarm_actions",
                Value::Set(actions.iter().map(|a| Value::from(*a)).collect()),
            );
        }
        if let Some(m) = minutes {
            v.set_attr("alarm_no_in_service_minutes", Value::from(m));
        }
        Spec::from_value(&v)
    }

    const TOPIC: &str = "arn:aws:sns:ap-southeast-2:123456789012:ops";

    #[test]
    fn no_actions_no_alarms() {
        assert!(wanted(&spec(&[], Some(5))).is_empty());
    }

    #[test]
    fn the_two_alarms_watch_the_handlers_metric_and_the_groups() {
        let w = wanted(&spec(&[TOPIC], None));
        assert_eq!(w.len(), 2);
        let (heal, serve) = (&w[0], &w[1]);
        assert_eq!(heal.name, "web-heal-failed");
        assert_eq!(
            (heal.namespace.as_str(), heal.metric_name.as_str()),
            ("Autoheal", "PermanentFailure")
        );
        assert_eq!(
            heal.dimensions,
            vec![("AutoScalingGroupName".into(), "web-asg".into())]
        );
        assert_eq!(
            (
                heal.statistic.as_str(),
                heal.threshold,
                heal.comparison.as_str()
            ),
            ("Sum", 0.0, "GreaterThanThreshold")
        );
        assert_eq!(serve.name, "web-no-in-service");
        assert_eq!(serve.evaluation_periods, 10, "the default minutes");
        assert_eq!(
            (
                heal.treat_missing_data.as_str(),
                serve.treat_missing_data.as_str()
            ),
            ("notBreaching", "ignore"),
            "a new stack's first minute (0 in service, the rest of the range missing) must \
             not page"
        );
        assert_eq!(
            (
                serve.statistic.as_str(),
                serve.threshold,
                serve.comparison.as_str()
            ),
            ("Minimum", 1.0, "LessThanThreshold")
        );
        assert_eq!(heal.alarm_actions, vec![TOPIC.to_string()]);
        assert_eq!(serve.ok_actions, vec![TOPIC.to_string()]);
        assert_eq!(wanted(&spec(&[TOPIC], Some(3)))[1].evaluation_periods, 3);
    }

    #[test]
    fn action_order_does_not_matter_but_everything_else_does() {
        let other = "arn:aws:sns:ap-southeast-2:123456789012:pager";
        let w = wanted(&spec(&[TOPIC, other], None));
        let mut found = w[0].clone();
        found.alarm_actions.reverse();
        assert!(matches(&found, &w[0]));
        found.threshold = 1.0;
        assert!(!matches(&found, &w[0]));
    }
}

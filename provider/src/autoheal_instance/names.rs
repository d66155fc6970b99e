//! The names of the AWS objects a stack creates, all derived from the `name` attribute.
//!
//! This is the single source of truth for them: validation derives the limit on `name` from
//! it, planning uses it for the names that are known before apply, and the AWS layer must use
//! it when it creates objects (a planned name that apply does not reproduce makes Terraform
//! fail with "Provider produced inconsistent result").
//!
//! The tightest AWS limit is 64 characters (IAM role names, Lambda function names, EventBridge
//! rule names and target ids). The longest name built for one of those is the IAM role,
//! `<name>-<region>-attach` (IAM is global, so the region keeps two stacks of the same name in
//! two regions apart): 1 + [`REGION_MAX_LEN`] + 7 = 24 characters around the name, so
//! [`NAME_MAX_LEN`] = 32 fits with 8 to spare. The tests check every name below against its
//! limit.

/// The longest `name` accepted. See the module documentation for how it was chosen.
pub const NAME_MAX_LEN: usize = 32;

/// The longest region name budgeted for (today's longest, e.g. `ap-southeast-4`, have 14).
pub const REGION_MAX_LEN: usize = 16;

/// Tag key the provider puts on every object it creates, with the stack's `name` as value.
/// Final snapshots are found by it when a stack of the same name is created again.
pub const STACK_TAG: &str = "autoheal:stack";

/// Tag key the provider sets on every object to a per-object name such as `<name>-vpc`.
pub const NAME_TAG: &str = "Name";

/// Tag key prefixes users may not use: `aws:` is reserved by AWS, `autoheal:` by this
/// provider (its tags find the final snapshots of a stack).
pub const RESERVED_TAG_PREFIXES: &[&str] = &["aws:", "autoheal:"];

/// Tags the provider adds to each object ([`NAME_TAG`], [`STACK_TAG`] and, while its create
/// is unfinished, `autoheal:creating`).
pub const PROVIDER_TAG_COUNT: usize = 3;

/// AWS's limit on tags per resource.
pub const AWS_MAX_TAGS: usize = 50;

/// An AWS name derived from the stack name: `<prefix><name><suffix>`.
#[derive(Clone, Copy, Debug)]
pub struct DerivedName {
    /// What the name is for, as a user would call it.
    pub what: &'static str,
    pub prefix: &'static str,
    pub suffix: &'static str,
    /// AWS's length limit for this kind of name.
    pub max_len: usize,
}

impl DerivedName {
    pub fn for_stack(&self, name: &str) -> String {
        format!("{}{}{}", self.prefix, name, self.suffix)
    }
}

pub const SECURITY_GROUP: DerivedName = DerivedName {
    what: "security group name",
    prefix: "",
    suffix: "-sg",
    max_len: 255,
};
pub const LAUNCH_TEMPLATE: DerivedName = DerivedName {
    what: "launch template name",
    prefix: "",
    suffix: "-lt",
    max_len: 128,
};
pub const AUTOSCALING_GROUP: DerivedName = DerivedName {
    what: "Auto Scaling group name",
    prefix: "",
    suffix: "-asg",
    max_len: 255,
};
pub const LIFECYCLE_HOOK: DerivedName = DerivedName {
    what: "lifecycle hook name",
    prefix: "",
    suffix: "-launch-hook",
    max_len: 255,
};
pub const LAMBDA_FUNCTION: DerivedName = DerivedName {
    what: "Lambda function name",
    prefix: "",
    suffix: "-attach",
    max_len: 64,
};
pub const LOG_GROUP: DerivedName = DerivedName {
    what: "CloudWatch log group name",
    prefix: "/aws/lambda/",
    suffix: "-attach",
    max_len: 512,
};
pub const LAMBDA_POLICY: DerivedName = DerivedName {
    what: "IAM inline policy name",
    prefix: "",
    suffix: "-attach-policy",
    max_len: 128,
};
pub const EVENT_RULE: DerivedName = DerivedName {
    what: "EventBridge rule name",
    prefix: "",
    suffix: "-launch",
    max_len: 64,
};
pub const EVENT_TARGET_ID: DerivedName = DerivedName {
    what: "EventBridge target id",
    prefix: "",
    suffix: "-attach",
    max_len: 64,
};
pub const LAMBDA_PERMISSION_SID: DerivedName = DerivedName {
    what: "Lambda permission statement id",
    prefix: "",
    suffix: "-events",
    max_len: 100,
};
/// The schedule rule of the scheduled snapshots (`snapshot_interval`); its target on the
/// function has the id [`EVENT_TARGET_ID`] too (target ids are per rule).
pub const SNAPSHOT_RULE: DerivedName = DerivedName {
    what: "EventBridge rule name",
    prefix: "",
    suffix: "-snapshot",
    max_len: 64,
};
pub const SNAPSHOT_PERMISSION_SID: DerivedName = DerivedName {
    what: "Lambda permission statement id",
    prefix: "",
    suffix: "-snapshot-events",
    max_len: 100,
};

/// The zone-failover function (`failover_zones`): the same code as the attachment function,
/// its own role and log group, invoked every minute by its check rule.
pub const FAILOVER_FUNCTION: DerivedName = DerivedName {
    what: "Lambda function name",
    prefix: "",
    suffix: "-failover",
    max_len: 64,
};
pub const FAILOVER_LOG_GROUP: DerivedName = DerivedName {
    what: "CloudWatch log group name",
    prefix: "/aws/lambda/",
    suffix: "-failover",
    max_len: 512,
};
pub const FAILOVER_POLICY: DerivedName = DerivedName {
    what: "IAM inline policy name",
    prefix: "",
    suffix: "-failover-policy",
    max_len: 128,
};
pub const FAILOVER_RULE: DerivedName = DerivedName {
    what: "EventBridge rule name",
    prefix: "",
    suffix: "-failover-check",
    max_len: 64,
};
pub const FAILOVER_PERMISSION_SID: DerivedName = DerivedName {
    what: "Lambda permission statement id",
    prefix: "",
    suffix: "-failover-events",
    max_len: 100,
};

pub const HEAL_FAILED_ALARM: DerivedName = DerivedName {
    what: "CloudWatch alarm name",
    prefix: "",
    suffix: "-heal-failed",
    max_len: 255,
};
pub const NO_IN_SERVICE_ALARM: DerivedName = DerivedName {
    what: "CloudWatch alarm name",
    prefix: "",
    suffix: "-no-in-service",
    max_len: 255,
};

/// Name tags (tag values may have 256 characters).
pub const VPC_NAME_TAG: DerivedName = tag("-vpc");
pub const SUBNET_NAME_TAG: DerivedName = tag("-subnet");
pub const INTERNET_GATEWAY_NAME_TAG: DerivedName = tag("-igw");
pub const ROUTE_TABLE_NAME_TAG: DerivedName = tag("-rt");
pub const VOLUME_NAME_TAG: DerivedName = tag("-data");
pub const EIP_NAME_TAG: DerivedName = tag("-eip");
pub const INSTANCE_NAME_TAG: DerivedName = tag("");
pub const FINAL_SNAPSHOT_NAME_TAG: DerivedName = tag("-final");
pub const NETWORK_INTERFACE_NAME_TAG: DerivedName = tag("-eni");

const fn tag(suffix: &'static str) -> DerivedName {
    DerivedName {
        what: "Name tag",
        prefix: "",
        suffix,
        max_len: 256,
    }
}

/// The IAM role of the attachment Lambda: `<name>-<region>-attach`. IAM names are global, so
/// the region is part of it.
pub fn lambda_role_name(name: &str, region: &str) -> String {
    format!("{name}-{region}-attach")
}

/// The IAM role of the failover function: `<name>-<region>-failover` (1 + 16 + 9 characters
/// around the name: within IAM's 64 as the attachment role's).
pub fn failover_role_name(name: &str, region: &str) -> String {
    format!("{name}-{region}-failover")
}

/// Every name derived from `name` alone.
pub const ALL: &[DerivedName] = &[
    SECURITY_GROUP,
    LAUNCH_TEMPLATE,
    AUTOSCALING_GROUP,
    LIFECYCLE_HOOK,
    LAMBDA_FUNCTION,
    LOG_GROUP,
    LAMBDA_POLICY,
    EVENT_RULE,
    EVENT_TARGET_ID,
    LAMBDA_PERMISSION_SID,
    SNAPSHOT_RULE,
    SNAPSHOT_PERMISSION_SID,
    FAILOVER_FUNCTION,
    FAILOVER_LOG_GROUP,
    FAILOVER_POLICY,
    FAILOVER_RULE,
    FAILOVER_PERMISSION_SID,
    HEAL_FAILED_ALARM,
    NO_IN_SERVICE_ALARM,
    VPC_NAME_TAG,
    SUBNET_NAME_TAG,
    INTERNET_GATEWAY_NAME_TAG,
    ROUTE_TABLE_NAME_TAG,
    VOLUME_NAME_TAG,
    EIP_NAME_TAG,
    INSTANCE_NAME_TAG,
    FINAL_SNAPSHOT_NAME_TAG,
    NETWORK_INTERFACE_NAME_TAG,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_name_fits_every_aws_limit() {
        let name = "a".repeat(NAME_MAX_LEN);
        for d in ALL {
            let n = d.for_stack(&name);
            assert!(
                n.len() <= d.max_len,
                "{} {n:?} exceeds {}",
                d.what,
                d.max_len
            );
        }
        let region = "r".repeat(REGION_MAX_LEN);
        assert!(
            lambda_role_name(&name, &region).len() <= 64,
            "IAM role name limit is 64"
        );
        assert!(failover_role_name(&name, &region).len() <= 64);
    }

    #[test]
    fn names_are_prefixed_by_the_stack_name() {
        assert_eq!(LAMBDA_FUNCTION.for_stack("web"), "web-attach");
        assert_eq!(LOG_GROUP.for_stack("web"), "/aws/lambda/web-attach");
        assert_eq!(AUTOSCALING_GROUP.for_stack("web"), "web-asg");
        assert_eq!(
            lambda_role_name("web", "ap-southeast-2"),
            "web-ap-southeast-2-attach"
        );
    }
}

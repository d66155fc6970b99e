//! What an interrupted create left behind, found before a create makes anything.
//!
//! A create that never returned (the provider killed mid-apply, the machine lost) leaves AWS
//! objects that no state names. Every object a create makes carries `autoheal:creating =
//! <name>` until that create has finished ([`super::tagging::CREATING_TAG`]), so the next
//! create of the same name finds them here and uses them instead of making a second set.
//! An object of this stack's name *without* the marker belongs to a finished stack: that is
//! refused with "import it", never taken over. The one exception is the end of a create,
//! which unmarks the named objects first and all EC2 objects last in one call: while EC2
//! objects are still marked, the named ones are adopted marked or not.
//!
//! Finding costs one EC2 DescribeTags (every EC2 object with the marker, whatever its kind)
//! and one finder per named object (group, function, role, rule, log group), all at once.

use crate::aws::ec2_tags::{self, Tagged};
use crate::aws::tags::Tags;
use crate::aws::{autoscaling_group, event_rule, iam_role, lambda_function, log_group, OpContext};

use super::names::{self, DerivedName};
use super::spec::Spec;
use super::steps::{StepError, StepResult};
use super::tagging::{is_creating, CREATING_TAG};

/// The objects of an interrupted create of this stack, by kind. EC2 kinds hold the ids found
/// (normally one; two only if creates were interrupted twice in the same step), named kinds
/// whether the object exists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Leftovers {
    pub vpc_ids: Vec<String>,
    pub subnet_ids: Vec<String>,
    pub internet_gateway_ids: Vec<String>,
    pub route_table_ids: Vec<String>,
    pub security_group_ids: Vec<String>,
    pub volume_ids: Vec<String>,
    pub allocation_ids: Vec<String>,
    pub launch_template_ids: Vec<String>,
    pub network_interface_ids: Vec<String>,
    pub log_group: bool,
    pub role_arn: Option<String>,
    pub rule: bool,
    pub function: bool,
    pub group: bool,
}

impl Leftovers {
    pub fn is_empty(&self) -> bool {
        *self == Leftovers::default()
    }

    /// Sorts EC2 objects into their kinds by id prefix (EC2's ids say their kind; DescribeTags'
    /// resource type names differ between AWS, `elastic-ip`, and emulators); kinds a create
    /// never marks (instances: the group's marker is not propagated) are ignored.
    fn add_ec2(&mut self, found: Vec<Tagged>) {
        for t in found {
            let prefix = t.id.split('-').next().unwrap_or_default();
            let list = match prefix {
                "vpc" => &mut self.vpc_ids,
                "subnet" => &mut self.subnet_ids,
                "igw" => &mut self.internet_gateway_ids,
                "rtb" => &mut self.route_table_ids,
                "sg" => &mut self.security_group_ids,
                "vol" => &mut self.volume_ids,
                "eipalloc" => &mut self.allocation_ids,
                "lt" => &mut self.launch_template_ids,
                "eni" => &mut self.network_interface_ids,
                _ => continue,
            };
            if !list.contains(&t.id) {
                list.push(t.id);
            }
        }
    }

    /// One line for the log: what is adopted.
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        for (kind, ids) in [
            ("VPC", &self.vpc_ids),
            ("subnet", &self.subnet_ids),
            ("internet gateway", &self.internet_gateway_ids),
            ("route table", &self.route_table_ids),
            ("security group", &self.security_group_ids),
            ("volume", &self.volume_ids),
            ("Elastic IP", &self.allocation_ids),
            ("launch template", &self.launch_template_ids),
            ("network interface", &self.network_interface_ids),
        ] {
            parts.extend(ids.iter().map(|id| format!("{kind} {id}")));
        }
        for (kind, there) in [
            ("log group", self.log_group),
            ("IAM role", self.role_arn.is_some()),
            ("EventBridge rule", self.rule),
            ("Lambda function", self.function),
            ("Auto Scaling group", self.group),
        ] {
            if there {
                parts.push(kind.to_string());
            }
        }
        parts.join(", ")
    }
}

fn derived(d: DerivedName, spec: &Spec) -> String {
    d.for_stack(&spec.name)
}

/// Finds the leftovers of an interrupted create of `spec.name`. Errors when a finished stack
/// of that name exists (nothing is created next to it).
pub async fn find(ctx: &OpContext, spec: &Spec) -> Result<Leftovers, StepError> {
    let group = derived(names::AUTOSCALING_GROUP, spec);
    let function = derived(names::LAMBDA_FUNCTION, spec);
    let role = names::lambda_role_name(&spec.name, ctx.region());
    let rule = derived(names::EVENT_RULE, spec);
    let logs = derived(names::LOG_GROUP, spec);
    let object = format!("stack {:?}", spec.name);
    let (ec2, g, f, r, e, l) = tokio::join!(
        ec2_tags::find_tagged(ctx, CREATING_TAG, &spec.name),
        autoscaling_group::find(ctx, &group),
        lambda_function::find(ctx, &function),
        iam_role::find(ctx, &role),
        event_rule::find(ctx, &rule),
        log_group::find(ctx, &logs),
    );
    let mut left = Leftovers::default();
    // Only what still exists: the tags of an object deleted a moment ago (a destroy just
    // before this create, as in a replacement) can outlive it in DescribeTags.
    let mut existing = Vec::new();
    for t in ec2.step("look for", object.clone())? {
        if ec2_tags::still_exists(ctx, &t.id)
            .await
            .step("look for", object.clone())?
        {
            existing.push(t);
        } else {
            tracing::info!(id = t.id, "a marked object no longer exists: not adopted");
        }
    }
    left.add_ec2(existing);
    // The create was not finished while any EC2 object still carries the marker.
    let unfinished = !left.is_empty();
    let creating = |tags: &Tags| unfinished || is_creating(tags, &spec.name);

    // Named objects: with the marker they are adopted, without it they are a finished stack.
    let mut finished = Vec::new();
    if let Some(g) = g.step("check for", object.clone())? {
        match creating(&g.tags) {
            true => left.group = true,
            false => finished.push(format!("Auto Scaling group {group}")),
        }
    }
    if let Some(f) = f.step("check for", object.clone())? {
        match creating(&f.tags) {
            true => left.function = true,
            false => finished.push(format!("Lambda function {function}")),
        }
    }
    if let Some(r) = r.step("check for", object.clone())? {
        match creating(&r.tags) {
            true => left.role_arn = Some(r.arn),
            false => finished.push(format!("IAM role {role}")),
        }
    }
    if let Some(e) = e.step("check for", object.clone())? {
        let tags = event_rule::tags(ctx, &e.arn)
            .await
            .step("read the tags of", format!("EventBridge rule {rule}"))?;
        match creating(&tags) {
            true => left.rule = true,
            false => finished.push(format!("EventBridge rule {rule}")),
        }
    }
    // A log group without the marker is not a stack: Lambda makes one on its own when a
    // function of that name logs. Only a marked one is adopted; an unmarked one makes the
    // create fail on CreateLogGroup with AWS's own message.
    if let Some(arn) = l.step("check for", object.clone())?.and_then(|l| l.arn) {
        let tags = log_group::tags(ctx, &arn)
            .await
            .step("read the tags of", format!("log group {logs}"))?;
        left.log_group = creating(&tags);
    }

    if finished.is_empty() {
        return Ok(left);
    }
    Err(StepError::problem(
        "create",
        object,
        format!(
            "A stack named {:?} already exists in this account and region ({}). Nothing \
             was created. To manage it with this configuration, import it: `terraform \
             import <address> {}`; to start a new stack, choose another `name`.",
            spec.name,
            finished.join(", "),
            spec.name
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tagged(kind: &str, id: &str) -> Tagged {
        Tagged {
            kind: kind.into(),
            id: id.into(),
        }
    }

    #[test]
    fn ec2_objects_are_sorted_by_id_prefix_and_instances_ignored() {
        let mut left = Leftovers::default();
        left.add_ec2(vec![
            tagged("vpc", "vpc-1"),
            tagged("subnet", "subnet-1"),
            tagged("internet-gateway", "igw-1"),
            tagged("route-table", "rtb-1"),
            tagged("security-group", "sg-1"),
            tagged("volume", "vol-1"),
            // moto says `vpc-elastic-ip`, AWS `elastic-ip`: the id decides.
            tagged("vpc-elastic-ip", "eipalloc-1"),
            tagged("launch-template", "lt-1"),
            tagged("instance", "i-1"),
            // DescribeTags lists an object once per matching tag; it is kept once.
            tagged("volume", "vol-1"),
        ]);
        assert_eq!(left.vpc_ids, ["vpc-1"]);
        assert_eq!(left.subnet_ids, ["subnet-1"]);
        assert_eq!(left.internet_gateway_ids, ["igw-1"]);
        assert_eq!(left.route_table_ids, ["rtb-1"]);
        assert_eq!(left.security_group_ids, ["sg-1"]);
        assert_eq!(left.volume_ids, ["vol-1"]);
        assert_eq!(left.allocation_ids, ["eipalloc-1"]);
        assert_eq!(left.launch_template_ids, ["lt-1"]);
        assert!(!left.is_empty());
        assert!(left.summary().contains("volume vol-1"));
        assert!(!left.summary().contains("i-1"));
    }

    #[test]
    fn nothing_found_is_empty() {
        let mut left = Leftovers::default();
        left.add_ec2(vec![tagged("instance", "i-1")]);
        assert!(left.is_empty());
        assert_eq!(left.summary(), "");
    }
}

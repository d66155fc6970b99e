//! The IAM documents of the attachment Lambda's role: who may assume it (the trust policy) and
//! what it may do (its one inline policy), plus the checks our tests run on such documents.
//!
//! The inline policy allows exactly the calls the handler makes (handler/src/aws.rs), each on
//! the narrowest resource IAM can express:
//!
//! | Calls | Resource |
//! |---|---|
//! | `ec2:Describe{Instances,Volumes,Addresses}`, `autoscaling:Describe{AutoScalingInstances,LifecycleHooks}` | `*`: these actions support no resource-level permissions |
//! | `ec2:AttachVolume` | this volume's ARN, and instances tagged `aws:autoscaling:groupName = <group>` |
//! | `ec2:AssociateAddress` | this allocation's elastic-ip ARN, and the same instances (with a persistent network interface: the interface's ARN instead of instances) |
//! | `ec2:DescribeNetworkInterfaces` (only with a persistent network interface) | `*` |
//! | `ec2:AttachNetworkInterface` (only with a persistent network interface) | the interface's ARN, and the group's instances |
//! | `autoscaling:CompleteLifecycleAction`, `autoscaling:RecordLifecycleActionHeartbeat` | this group's ARN |
//! | `logs:CreateLogStream`, `logs:PutLogEvents` | the function's own log group and its streams |
//! | `kms:CreateGrant` (only for AWS resources), `kms:Decrypt`, `kms:DescribeKey`, each only via EC2 in the stack's region and from its account | the volume's KMS key, when there is one |
//!
//! No `ec2:DetachVolume` and no `ec2:DisassociateAddress`: the handler never calls them. It
//! waits for the old instance to terminate, which detaches the volume, and moves the address
//! with `AllowReassociation`. No `logs:CreateLogGroup`: the provider creates the log group.
//!
//! Auto Scaling tags every instance it launches with `aws:autoscaling:groupName`, and nobody
//! can set or change an `aws:` tag by hand, so that tag is a trustworthy proof of membership.
//! IAM evaluates a multi-resource action (AttachVolume names a volume and an instance;
//! AssociateAddress an address and an instance) resource by resource, so the tag condition
//! must sit in a statement whose resources are instances only: in a statement that also
//! listed the volume or the address, the condition would be evaluated against the volume's
//! or address's tags (which lack it) and the attach would be denied.

use serde_json::{json, Value};

/// The only policy language version IAM documents should use (the older one lacks policy
/// variables and has different wildcard rules).
pub const POLICY_VERSION: &str = "2012-10-17";

/// The service principal that runs Lambda functions.
pub const LAMBDA_SERVICE_PRINCIPAL: &str = "lambda.amazonaws.com";

/// The tag Auto Scaling puts on every instance it launches, with the group's name as value.
pub const GROUP_TAG: &str = "aws:autoscaling:groupName";

/// IAM's limit on all inline policies of one role together, in characters without whitespace.
pub const ROLE_INLINE_POLICY_MAX_CHARS: usize = 10_240;

/// The read-only calls of the handler, none of which supports resource-level permissions.
const DESCRIBE_ACTIONS: &[&str] = &[
    "ec2:DescribeInstances",
    "ec2:DescribeVolumes",
    "ec2:DescribeAddresses",
    "autoscaling:DescribeAutoScalingInstances",
    "autoscaling:DescribeLifecycleHooks",
];

/// Everything the inline policy of one stack is scoped to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyScope {
    /// The ARN partition: `aws`, `aws-cn`, `aws-us-gov`, ... (see [`partition_for_region`]).
    pub partition: String,
    pub region: String,
    /// The 12-digit id of the account the stack lives in.
    pub account_id: String,
    /// The data volume (`vol-...`).
    pub volume_id: String,
    /// The Elastic IP's allocation id (`eipalloc-...`).
    pub allocation_id: String,
    /// The Auto Scaling group's name (`<name>-asg`).
    pub autoscaling_group_name: String,
    /// The Lambda function's log group (`/aws/lambda/<name>-attach`).
    pub log_group_name: String,
    /// The stack's persistent network interface (`eni-...`), if it has one.
    pub network_interface_id: Option<String>,
    /// Whether the function also takes the scheduled snapshots (`snapshot_interval`).
    pub scheduled_snapshots: bool,
    /// The zone failover (`failover_zones`): the attachment function may then attach volumes
    /// restored for this group.
    pub restored_volumes: bool,
    /// The ARN of the KMS key that encrypts the data volume, if the policy must allow it.
    /// Must be a key ARN (`arn:...:kms:...:key/...`), never an alias: see
    /// [`kms_key_for_policy`] for how to get one.
    pub kms_key_arn: Option<String>,
}

/// What the failover function's policy is scoped to, beside the stack's [`PolicyScope`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailoverScope {
    /// Every zone the stack may serve from (home and failover zones), sorted.
    pub zones: Vec<String>,
    /// Their subnets, sorted: the only ones the group may be moved to.
    pub subnets: Vec<String>,
    /// The failover function's log group (`/aws/lambda/<name>-failover`).
    pub log_group_name: String,
}

/// The tag a failover puts on the volume it restores (handler/src/failover.rs): the group the
/// volume was restored for.
pub const RESTORED_FOR_TAG: &str = "autoheal:restored-for";
/// The group's tags the failover function writes (handler/src/failover.rs and aws.rs): the only
/// keys its CreateOrUpdateTags may carry.
pub const FAILOVER_GROUP_TAGS: &[&str] = &[
    super::active::ACTIVE_VOLUME_TAG,
    super::active::ACTIVE_ZONE_TAG,
    "autoheal:failover-started",
    "autoheal:failover-completed",
    "autoheal:superseded-volume",
];
/// The tag the failover function puts on the volume it supersedes.
pub const SUPERSEDED_BY_TAG: &str = "autoheal:superseded-by";

impl PolicyScope {
    /// The data volume's ARN.
    pub fn volume_arn(&self) -> String {
        self.ec2_arn(&format!("volume/{}", self.volume_id))
    }

    /// The persistent network interface's ARN, if there is one.
    pub fn network_interface_arn(&self) -> Option<String> {
        self.network_interface_id
            .as_ref()
            .map(|id| self.ec2_arn(&format!("network-interface/{id}")))
    }

    /// Every snapshot of the region (snapshot ARNs name no account); the statements that use
    /// it restrict it by request tag, creating action or parent volume.
    pub fn snapshots_arn(&self) -> String {
        format!("arn:{}:ec2:{}::snapshot/*", self.partition, self.region)
    }

    /// Every volume of the account and region; the statements that use it restrict it by tag
    /// (restored for this group) or by creating action.
    pub fn volumes_arn(&self) -> String {
        self.ec2_arn("volume/*")
    }

    /// Every instance of the account and region; the statements that use it restrict it to
    /// the group's instances with a [`GROUP_TAG`] condition.
    pub fn instances_arn(&self) -> String {
        self.ec2_arn("instance/*")
    }

    /// The Elastic IP's ARN (EC2 names it after the allocation id).
    pub fn elastic_ip_arn(&self) -> String {
        self.ec2_arn(&format!("elastic-ip/{}", self.allocation_id))
    }

    /// The group's ARN. Its middle part is the group's UUID, unknown until the group exists
    /// and different after a re-creation, so it is a wildcard: the name still pins the group.
    pub fn autoscaling_group_arn(&self) -> String {
        format!(
            "arn:{}:autoscaling:{}:{}:autoScalingGroup:*:autoScalingGroupName/{}",
            self.partition, self.region, self.account_id, self.autoscaling_group_name
        )
    }

    /// The log group's ARN in the form CloudWatch Logs authorizes CreateLogStream and
    /// PutLogEvents against: with the trailing `:*`, which also covers every log stream ARN
    /// (`...:log-group:<name>:log-stream:<stream>`). Log group names cannot contain `:`, so
    /// the wildcard cannot reach another group.
    pub fn log_group_arn(&self) -> String {
        format!(
            "arn:{}:logs:{}:{}:log-group:{}:*",
            self.partition, self.region, self.account_id, self.log_group_name
        )
    }

    fn ec2_arn(&self, resource: &str) -> String {
        format!(
            "arn:{}:ec2:{}:{}:{resource}",
            self.partition, self.region, self.account_id
        )
    }

    /// Problems that would make [`attach_policy`] wrong or too wide: empty fields, IAM
    /// wildcards (`*`, `?`) or `$` (policy variables) in a value that is put into an ARN, an
    /// account id that is not 12 digits, a KMS key that is not a key ARN. The values normally
    /// come from AWS and from `names`, so this never fires; it guards against a caller
    /// passing an alias or a half-known value.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let fields = [
            ("partition", &self.partition),
            ("region", &self.region),
            ("account_id", &self.account_id),
            ("volume_id", &self.volume_id),
            ("allocation_id", &self.allocation_id),
            ("autoscaling_group_name", &self.autoscaling_group_name),
            ("log_group_name", &self.log_group_name),
        ];
        let interface = self.network_interface_id.as_ref();
        let fields = fields
            .into_iter()
            .chain(interface.map(|i| ("network_interface_id", i)));
        for (name, value) in fields {
            if value.is_empty() {
                problems.push(format!("{name} is empty"));
            } else if let Some(c) = value.chars().find(|c| matches!(c, '*' | '?' | '$')) {
                problems.push(format!("{name} {value:?} contains {c:?}"));
            }
        }
        if !(self.account_id.len() == 12 && self.account_id.bytes().all(|b| b.is_ascii_digit())) {
            problems.push(format!("account_id {:?} is not 12 digits", self.account_id));
        }
        if let Some(key) = &self.kms_key_arn {
            if !is_kms_key_arn(key) || key.contains(['*', '?', '$']) {
                problems.push(format!("kms_key_arn {key:?} is not a KMS key ARN"));
            }
        }
        problems
    }
}

/// The trust policy of the Lambda's role: the Lambda service may assume it.
///
/// No `aws:SourceAccount`/`aws:SourceArn` condition: those guard against a confused deputy
/// acting for another account, but a role can only be given to a function by someone allowed
/// `iam:PassRole` on it, and roles cannot be passed across accounts, so the condition would
/// protect nothing here. Lambda's documentation does not promise that it sets these keys when
/// it assumes an execution role, and a condition that does not match would make every
/// invocation fail, which the local AWS (it evaluates no IAM) could not show.
pub fn lambda_trust_policy() -> Value {
    json!({
        "Version": POLICY_VERSION,
        "Statement": [{
            "Sid": "LambdaAssumesRole",
            "Effect": "Allow",
            "Principal": { "Service": LAMBDA_SERVICE_PRINCIPAL },
            "Action": "sts:AssumeRole"
        }]
    })
}

/// The inline policy of the Lambda's role for one stack (see the module documentation).
/// Call [`PolicyScope::problems`] first when the scope's values do not come straight from
/// AWS answers.
pub fn attach_policy(scope: &PolicyScope) -> Value {
    let group_condition = json!({
        "StringEquals": { format!("aws:ResourceTag/{GROUP_TAG}"): scope.autoscaling_group_name }
    });
    let interface = scope.network_interface_arn();
    let mut describe: Vec<&str> = DESCRIBE_ACTIONS.to_vec();
    if scope.scheduled_snapshots {
        // The snapshot run reads the group's active-volume pointer (a zone failover).
        describe.push("ec2:DescribeSnapshots");
        describe.push("autoscaling:DescribeAutoScalingGroups");
    }
    // With a persistent interface the address stays on the interface: the handler
    // associates it with the interface, never with an instance.
    let mut to_instances = vec!["ec2:AttachVolume"];
    if interface.is_some() {
        describe.push("ec2:DescribeNetworkInterfaces");
        to_instances.push("ec2:AttachNetworkInterface");
    } else {
        to_instances.push("ec2:AssociateAddress");
    }
    let mut statements = vec![
        json!({
            "Sid": "DescribeCannotBeScoped",
            "Effect": "Allow",
            "Action": describe,
            "Resource": "*"
        }),
        json!({
            "Sid": "AttachThisVolume",
            "Effect": "Allow",
            "Action": "ec2:AttachVolume",
            "Resource": scope.volume_arn()
        }),
        json!({
            "Sid": "AssociateThisAddress",
            "Effect": "Allow",
            "Action": "ec2:AssociateAddress",
            "Resource": scope.elastic_ip_arn()
        }),
    ];
    if let Some(arn) = &interface {
        statements.push(json!({
            "Sid": "AttachAndAddressThisInterface",
            "Effect": "Allow",
            "Action": ["ec2:AttachNetworkInterface", "ec2:AssociateAddress"],
            "Resource": arn
        }));
    }
    statements.extend([
        // The instance half of the calls, restricted to the group's instances. Instance
        // ARNs only (see the module documentation for why).
        json!({
            "Sid": "AttachAndAssociateToGroupInstances",
            "Effect": "Allow",
            "Action": to_instances,
            "Resource": scope.instances_arn(),
            "Condition": group_condition
        }),
        json!({
            "Sid": "LifecycleActionsOfThisGroup",
            "Effect": "Allow",
            "Action": [
                "autoscaling:CompleteLifecycleAction",
                "autoscaling:RecordLifecycleActionHeartbeat"
            ],
            "Resource": scope.autoscaling_group_arn()
        }),
        json!({
            "Sid": "LogToOwnLogGroup",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": scope.log_group_arn()
        }),
    ]);
    if scope.scheduled_snapshots {
        statements.extend(scheduled_snapshot_statements(scope));
    }
    if scope.restored_volumes && scope.scheduled_snapshots {
        // After a failover the scheduled snapshots are of the restored volume (the handler
        // proves its origin first); they are not pruned (see handler/src/snapshot.rs).
        statements.push(json!({
            "Sid": "SnapshotVolumesRestoredForThisGroup",
            "Effect": "Allow",
            "Action": "ec2:CreateSnapshot",
            "Resource": scope.volumes_arn(),
            "Condition": {
                "StringEquals": {
                    format!("aws:ResourceTag/{RESTORED_FOR_TAG}"): scope.autoscaling_group_name
                }
            }
        }));
    }
    if scope.restored_volumes {
        // After a failover the instance's tag names the restored volume. IAM narrows what can
        // be named to volumes restored for this group; the handler proves the rest from EBS's
        // records (SnapshotId -> VolumeId back to this volume: handler/src/provenance.rs),
        // since anyone allowed to tag could put the tag on a volume.
        statements.push(json!({
            "Sid": "AttachVolumesRestoredForThisGroup",
            "Effect": "Allow",
            "Action": "ec2:AttachVolume",
            "Resource": scope.volumes_arn(),
            "Condition": {
                "StringEquals": {
                    format!("aws:ResourceTag/{RESTORED_FOR_TAG}"): scope.autoscaling_group_name
                }
            }
        }));
    }
    if let Some(key) = &scope.kms_key_arn {
        // Attaching an encrypted volume makes EC2 create a KMS grant on the caller's behalf.
        statements.extend(volume_key_statements(
            scope,
            key,
            &["kms:Decrypt", "kms:DescribeKey"],
        ));
    }
    json!({ "Version": POLICY_VERSION, "Statement": statements })
}

/// The volume's KMS key for EC2 acting on the role's behalf: `kms:CreateGrant` and `uses`.
/// GrantIsForAWSResource limits CreateGrant to grants an AWS service asks for, so the role
/// cannot hand the key to a principal of its choosing. Every use of the key must come
/// through EC2 in this stack's region (kms:ViaService) and from this stack's account
/// (kms:CallerAccount): the role's credentials, if they leaked, could not call KMS with the
/// key directly.
fn volume_key_statements(scope: &PolicyScope, key: &str, uses: &[&str]) -> [Value; 2] {
    let via_ec2 = json!({
        "kms:ViaService": format!("ec2.{}.amazonaws.com", scope.region),
        "kms:CallerAccount": scope.account_id,
    });
    [
        json!({
            "Sid": "GrantVolumeKeyToEc2",
            "Effect": "Allow",
            "Action": "kms:CreateGrant",
            "Resource": key,
            "Condition": {
                "Bool": { "kms:GrantIsForAWSResource": "true" },
                "StringEquals": via_ec2.clone()
            }
        }),
        json!({
            "Sid": "UseVolumeKey",
            "Effect": "Allow",
            "Action": uses,
            "Resource": key,
            "Condition": { "StringEquals": via_ec2 }
        }),
    ]
}

/// The failover function's inline policy (docs/zone-failover.md, section 3): reads, then
/// CreateVolume only from scheduled snapshots EBS records as taken of this volume, only into
/// the stack's zones, encrypted, tagged for this group from creation; one tag on this volume
/// (superseded); the group moved only to the stack's subnets and tagged only with the
/// failover's keys. Nothing it can do attaches, deletes or detaches anything.
pub fn failover_policy(scope: &PolicyScope, failover: &FailoverScope) -> Value {
    let group = scope.autoscaling_group_arn();
    let mut statements = vec![
        json!({
            "Sid": "DescribeCannotBeScoped",
            "Effect": "Allow",
            "Action": [
                "autoscaling:DescribeAutoScalingGroups",
                "autoscaling:DescribeScalingActivities",
                "ec2:DescribeVolumes",
                "ec2:DescribeVolumeStatus",
                "ec2:DescribeSnapshots"
            ],
            "Resource": "*"
        }),
        json!({
            "Sid": "RestoreIntoTheStacksZones",
            "Effect": "Allow",
            "Action": "ec2:CreateVolume",
            "Resource": scope.volumes_arn(),
            "Condition": {
                "StringEquals": {
                    format!("aws:RequestTag/{RESTORED_FOR_TAG}"): scope.autoscaling_group_name,
                    "ec2:AvailabilityZone": failover.zones
                },
                "Bool": { "ec2:Encrypted": "true" }
            }
        }),
        json!({
            "Sid": "RestoreFromScheduledSnapshotsOfThisVolume",
            "Effect": "Allow",
            "Action": "ec2:CreateVolume",
            "Resource": scope.snapshots_arn(),
            "Condition": {
                "ArnEquals": { "ec2:ParentVolume": scope.volume_arn() },
                "StringEquals": {
                    format!("aws:ResourceTag/{SNAPSHOT_KIND_TAG}"): SNAPSHOT_KIND_SCHEDULED
                }
            }
        }),
        json!({
            "Sid": "TagRestoredVolumesAtCreation",
            "Effect": "Allow",
            "Action": "ec2:CreateTags",
            "Resource": scope.volumes_arn(),
            "Condition": { "StringEquals": { "ec2:CreateAction": "CreateVolume" } }
        }),
        json!({
            "Sid": "MarkThisVolumeSuperseded",
            "Effect": "Allow",
            "Action": "ec2:CreateTags",
            "Resource": scope.volume_arn(),
            "Condition": { "ForAllValues:StringEquals": { "aws:TagKeys": [SUPERSEDED_BY_TAG] } }
        }),
        json!({
            "Sid": "MoveThisGroupToTheStacksSubnets",
            "Effect": "Allow",
            "Action": "autoscaling:UpdateAutoScalingGroup",
            "Resource": group,
            "Condition": {
                "ForAllValues:StringEquals": { "autoscaling:VPCZoneIdentifiers": failover.subnets }
            }
        }),
        json!({
            // Launch suspended across the move and resumed after it: the group then launches
            // in the new zone at once instead of at its launch back-off's next step
            // (handler/src/failover.rs).
            "Sid": "SuspendAndResumeThisGroupsLaunches",
            "Effect": "Allow",
            "Action": ["autoscaling:SuspendProcesses", "autoscaling:ResumeProcesses"],
            "Resource": group
        }),
        json!({
            "Sid": "TagThisGroupWithTheFailoverKeys",
            "Effect": "Allow",
            "Action": "autoscaling:CreateOrUpdateTags",
            "Resource": scope.autoscaling_group_arn(),
            "Condition": { "ForAllValues:StringEquals": { "aws:TagKeys": FAILOVER_GROUP_TAGS } }
        }),
        json!({
            "Sid": "LogToOwnLogGroup",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": format!(
                "arn:{}:logs:{}:{}:log-group:{}:*",
                scope.partition, scope.region, scope.account_id, failover.log_group_name
            )
        }),
    ];
    if let Some(key) = &scope.kms_key_arn {
        // A volume made from a snapshot under a customer managed key: EBS decrypts the
        // snapshot's data key and makes the volume's under the same key, through grants
        // (EBS User Guide, "How Amazon EBS uses AWS KMS").
        statements.extend(volume_key_statements(
            scope,
            key,
            &[
                "kms:Decrypt",
                "kms:DescribeKey",
                "kms:GenerateDataKeyWithoutPlaintext",
                "kms:ReEncryptFrom",
                "kms:ReEncryptTo",
            ],
        ));
    }
    json!({ "Version": POLICY_VERSION, "Statement": statements })
}

/// The tag that marks a scheduled snapshot (handler/src/snapshot.rs `KIND_TAG`).
pub const SNAPSHOT_KIND_TAG: &str = "autoheal:snapshot";
pub const SNAPSHOT_KIND_SCHEDULED: &str = "scheduled";

/// The scheduled snapshots (docs/zone-failover.md, section 1): CreateSnapshot of this volume
/// only, into snapshots that carry the scheduled kind from their creation; tags only at that
/// creation; DeleteSnapshot only of scheduled snapshots EBS records as taken of this volume
/// (`ec2:ParentVolume` is EBS's own record, not a tag: a tag alone never makes a snapshot
/// deletable, and the final snapshots, which lack the kind, never are).
fn scheduled_snapshot_statements(scope: &PolicyScope) -> Vec<Value> {
    let kind = json!({ format!("aws:RequestTag/{SNAPSHOT_KIND_TAG}"): SNAPSHOT_KIND_SCHEDULED });
    vec![
        json!({
            "Sid": "SnapshotThisVolume",
            "Effect": "Allow",
            "Action": "ec2:CreateSnapshot",
            "Resource": scope.volume_arn()
        }),
        json!({
            "Sid": "CreateScheduledSnapshots",
            "Effect": "Allow",
            "Action": "ec2:CreateSnapshot",
            "Resource": scope.snapshots_arn(),
            "Condition": { "StringEquals": kind }
        }),
        json!({
            "Sid": "TagSnapshotsAtCreation",
            "Effect": "Allow",
            "Action": "ec2:CreateTags",
            "Resource": scope.snapshots_arn(),
            "Condition": { "StringEquals": { "ec2:CreateAction": "CreateSnapshot" } }
        }),
        json!({
            "Sid": "PruneScheduledSnapshotsOfThisVolume",
            "Effect": "Allow",
            "Action": "ec2:DeleteSnapshot",
            "Resource": scope.snapshots_arn(),
            "Condition": {
                "ArnEquals": { "ec2:ParentVolume": scope.volume_arn() },
                "StringEquals": {
                    format!("aws:ResourceTag/{SNAPSHOT_KIND_TAG}"): SNAPSHOT_KIND_SCHEDULED
                }
            }
        }),
    ]
}

/// What the policy can name for a `volume_kms_key_id` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KmsKeyForPolicy {
    /// The key ARN to put in [`PolicyScope::kms_key_arn`].
    Arn(String),
    /// An alias (`alias/<name>` or an alias ARN). IAM matches KMS permissions against the
    /// key's ARN, never the alias's, so the alias must first be resolved to its key: the
    /// simplest way is the data volume's `KmsKeyId` (CreateVolume and DescribeVolumes always
    /// answer the key ARN, whatever form the request used); `kms:DescribeKey` with the alias
    /// answers it too (`KeyMetadata.Arn`).
    ///
    /// Scoping by condition instead (`kms:RequestAlias`, `kms:ResourceAliases`,
    /// `kms:ViaService`) would need `Resource: "*"` or `key/*` on `kms:CreateGrant`, a
    /// mutating action, which our rule forbids; and `kms:RequestAlias` would not even match,
    /// because EC2 calls KMS with the key ARN recorded on the volume, not with the alias.
    /// Resolving once is the least privilege, and it stays right when the alias is later
    /// pointed at another key, since the volume keeps the key it was encrypted with.
    ResolveAlias(String),
}

/// How to name the KMS key `key` in the policy. Accepts what `volume_kms_key_id` accepts: a
/// key id (`1234abcd-...` or a multi-Region `mrk-...`, meaning a key of this account and
/// region), a key ARN, an alias name (`alias/...`) or an alias ARN.
///
/// Whichever the form, passing the data volume's own `KmsKeyId` (a key ARN) is always right,
/// and it also covers volumes encrypted with a customer managed key the user did not name (an
/// `existing_volume_id`, or an account whose default EBS key is a customer managed key).
pub fn kms_key_for_policy(
    key: &str,
    partition: &str,
    region: &str,
    account_id: &str,
) -> KmsKeyForPolicy {
    if key.starts_with("alias/") || (key.starts_with("arn:") && key.contains(":alias/")) {
        KmsKeyForPolicy::ResolveAlias(key.to_string())
    } else if key.starts_with("arn:") {
        KmsKeyForPolicy::Arn(key.to_string())
    } else {
        KmsKeyForPolicy::Arn(format!(
            "arn:{partition}:kms:{region}:{account_id}:key/{key}"
        ))
    }
}

fn is_kms_key_arn(s: &str) -> bool {
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && parts[2] == "kms"
        && parts[5]
            .strip_prefix("key/")
            .is_some_and(|id| !id.is_empty())
}

/// The ARN partition of a region: `aws-cn` for China, `aws-us-gov` for GovCloud, the ISO
/// partitions for theirs, `aws` for everything else. (When the caller's ARN from
/// `sts:GetCallerIdentity` is at hand, its second field is the authoritative answer.)
pub fn partition_for_region(region: &str) -> &'static str {
    const PREFIXES: &[(&str, &str)] = &[
        ("cn-", "aws-cn"),
        ("us-gov-", "aws-us-gov"),
        ("us-isob-", "aws-iso-b"),
        ("us-isof-", "aws-iso-f"),
        ("eu-isoe-", "aws-iso-e"),
        ("us-iso-", "aws-iso"),
    ];
    PREFIXES
        .iter()
        .find(|(prefix, _)| region.starts_with(prefix))
        .map_or("aws", |(_, partition)| partition)
}

// ---------------------------------------------------------------------------------------
// Checks on policy documents, for our tests (and later ones) to run on what we send to IAM.
// ---------------------------------------------------------------------------------------

/// Whether an action only reads: `Describe*`, `List*` and `Get*` calls. Everything else,
/// including wildcards such as `ec2:*`, counts as mutating.
pub fn is_read_only_action(action: &str) -> bool {
    let Some((_, name)) = action.split_once(':') else {
        return false;
    };
    !name.contains(['*', '?'])
        && ["Describe", "List", "Get"]
            .iter()
            .any(|p| name.starts_with(p))
}

/// A statement's `Action`, `Resource`, ... as a list whether IAM got a string or an array.
fn string_list(value: Option<&Value>) -> Vec<&str> {
    match value {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn statements(doc: &Value) -> Vec<&Value> {
    match doc.get("Statement") {
        Some(Value::Array(s)) => s.iter().collect(),
        Some(s @ Value::Object(_)) => vec![s],
        _ => Vec::new(),
    }
}

fn describe_statement(index: usize, statement: &Value) -> String {
    match statement.get("Sid").and_then(Value::as_str) {
        Some(sid) => format!("statement {index} ({sid})"),
        None => format!("statement {index}"),
    }
}

/// Our rule from issue 7: no mutating action on `Resource: "*"`. Answers one line per
/// offending action (empty when the document complies). Allow statements only; a
/// `NotResource` on a mutating action counts too (it means "everything but").
pub fn mutating_actions_with_star(doc: &Value) -> Vec<String> {
    let mut found = Vec::new();
    for (i, s) in statements(doc).into_iter().enumerate() {
        if s.get("Effect").and_then(Value::as_str) != Some("Allow") {
            continue;
        }
        let star = string_list(s.get("Resource")).contains(&"*") || s.get("NotResource").is_some();
        let mut actions = string_list(s.get("Action"));
        if s.get("NotAction").is_some() {
            actions.push("NotAction (everything else)");
        }
        if star {
            for action in actions.into_iter().filter(|a| !is_read_only_action(a)) {
                found.push(format!(
                    "{}: {action} on every resource",
                    describe_statement(i, s)
                ));
            }
        }
    }
    found
}

/// Whether an ARN names EC2 instances (`arn:<partition>:ec2:<region>:<account>:instance/...`).
pub fn is_instance_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    parts.len() == 6 && parts[0] == "arn" && parts[2] == "ec2" && parts[5].starts_with("instance/")
}

/// Whether an ARN names EC2 volumes (`arn:<partition>:ec2:<region>:<account>:volume/...`).
pub fn is_volume_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    parts.len() == 6 && parts[0] == "arn" && parts[2] == "ec2" && parts[5].starts_with("volume/")
}

/// Whether an ARN names EC2 snapshots (`arn:<partition>:ec2:<region>::snapshot/...`).
pub fn is_snapshot_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    parts.len() == 6 && parts[0] == "arn" && parts[2] == "ec2" && parts[5].starts_with("snapshot/")
}

/// Our rule from issue 7: a condition on resource tags (`aws:ResourceTag/...`,
/// `ec2:ResourceTag/...`) only in a statement whose resources are all instance ARNs, since
/// in one with the volume or the address it would deny the call; or one whose only action is
/// `ec2:DeleteSnapshot` on snapshot ARNs, a call that names the snapshot alone. Answers one
/// line per offending statement.
pub fn tag_conditions_outside_instance_statements(doc: &Value) -> Vec<String> {
    let mut found = Vec::new();
    for (i, s) in statements(doc).into_iter().enumerate() {
        let Some(Value::Object(condition)) = s.get("Condition") else {
            continue;
        };
        let tag_keys: Vec<&str> = condition
            .values()
            .filter_map(Value::as_object)
            .flat_map(|keys| keys.keys())
            .map(String::as_str)
            .filter(|k| k.contains(":ResourceTag/"))
            .collect();
        if tag_keys.is_empty() {
            continue;
        }
        let resources = string_list(s.get("Resource"));
        // Statements whose only resource is an object the call names and that exists (so it
        // has tags to match): DeleteSnapshot or CreateVolume's source on snapshots,
        // AttachVolume's volume. A tag condition on an object the call creates (CreateSnapshot's
        // new snapshot) could never match.
        let actions = string_list(s.get("Action"));
        let snapshot_only = (actions == ["ec2:DeleteSnapshot"] || actions == ["ec2:CreateVolume"])
            && resources.iter().all(|r| is_snapshot_arn(r))
            || (actions == ["ec2:AttachVolume"] || actions == ["ec2:CreateSnapshot"])
                && resources.iter().all(|r| is_volume_arn(r));
        let others: Vec<&str> = resources
            .iter()
            .copied()
            .filter(|r| !is_instance_arn(r) && !snapshot_only)
            .collect();
        if resources.is_empty() || !others.is_empty() {
            found.push(format!(
                "{}: condition on {} with non-instance resources {:?}",
                describe_statement(i, s),
                tag_keys.join(", "),
                others
            ));
        }
    }
    found
}

/// Condition operators our documents may use (IAM has more; a typo in one makes IAM reject
/// the policy, so an unknown one is reported).
const CONDITION_OPERATORS: &[&str] = &[
    "StringEquals",
    "StringNotEquals",
    "StringEqualsIgnoreCase",
    "StringLike",
    "StringNotLike",
    "ArnEquals",
    "ArnLike",
    "ArnNotEquals",
    "ArnNotLike",
    "Bool",
    "NumericEquals",
    "NumericLessThan",
    "NumericGreaterThan",
    "DateLessThan",
    "DateGreaterThan",
    "IpAddress",
    "NotIpAddress",
    "Null",
];

/// Problems that make IAM refuse the document (MalformedPolicyDocument) or that IAM's
/// grammar does not allow, checked on the subset of the grammar our documents use: `Version`
/// `2012-10-17`; a non-empty `Statement`; per statement `Effect` Allow/Deny, a `Sid` (when
/// present) of letters and digits only and unique, `Action` entries `service:Name`,
/// `Resource` entries `*` or an ARN with six fields, a `Principal` only in trust policies
/// (`trust = true`, where it is required and `Resource` is not allowed), and `Condition`
/// blocks `operator -> key -> string or list of strings`. Also the size limit of a role's
/// inline policies.
pub fn grammar_problems(doc: &Value, trust: bool) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(obj) = doc.as_object() else {
        return vec!["the document is not a JSON object".into()];
    };
    for key in obj.keys() {
        if !matches!(key.as_str(), "Version" | "Id" | "Statement") {
            problems.push(format!("unknown top-level element {key:?}"));
        }
    }
    if doc.get("Version").and_then(Value::as_str) != Some(POLICY_VERSION) {
        problems.push(format!("Version must be {POLICY_VERSION:?}"));
    }
    let statements = statements(doc);
    if statements.is_empty() {
        problems.push("no Statement".into());
    }
    let mut sids = Vec::new();
    for (i, s) in statements.iter().enumerate() {
        let at = describe_statement(i, s);
        let Some(fields) = s.as_object() else {
            problems.push(format!("{at} is not an object"));
            continue;
        };
        for key in fields.keys() {
            let allowed = [
                "Sid",
                "Effect",
                "Principal",
                "Action",
                "NotAction",
                "Resource",
                "NotResource",
                "Condition",
            ];
            if !allowed.contains(&key.as_str()) {
                problems.push(format!("{at}: unknown element {key:?}"));
            }
        }
        match s.get("Sid") {
            None => {}
            Some(Value::String(sid))
                if !sid.is_empty() && sid.bytes().all(|b| b.is_ascii_alphanumeric()) =>
            {
                if sids.contains(&sid.as_str()) {
                    problems.push(format!("{at}: duplicate Sid"));
                }
                sids.push(sid.as_str());
            }
            Some(_) => problems.push(format!("{at}: Sid must be letters and digits only")),
        }
        if !matches!(
            s.get("Effect").and_then(Value::as_str),
            Some("Allow" | "Deny")
        ) {
            problems.push(format!("{at}: Effect must be Allow or Deny"));
        }
        problems.extend(list_problems(&at, s, "Action", "NotAction", |a| {
            a == "*"
                || a.split_once(':').is_some_and(|(service, name)| {
                    !service.is_empty()
                        && service
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                        && !name.is_empty()
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'*' || b == b'?')
                })
        }));
        if trust {
            match s.get("Principal") {
                Some(Value::Object(p)) if !p.is_empty() => {}
                Some(Value::String(p)) if p == "*" => {}
                _ => problems.push(format!("{at}: a trust policy statement needs a Principal")),
            }
            if s.get("Resource").is_some() || s.get("NotResource").is_some() {
                problems.push(format!("{at}: a trust policy statement has no Resource"));
            }
        } else {
            if s.get("Principal").is_some() {
                problems.push(format!("{at}: an identity policy has no Principal"));
            }
            problems.extend(list_problems(&at, s, "Resource", "NotResource", |r| {
                r == "*" || (r.starts_with("arn:") && r.splitn(6, ':').count() == 6)
            }));
        }
        match s.get("Condition") {
            None => {}
            Some(Value::Object(ops)) if !ops.is_empty() => {
                for (op, keys) in ops {
                    let base = op
                        .strip_prefix("ForAnyValue:")
                        .or_else(|| op.strip_prefix("ForAllValues:"))
                        .unwrap_or(op);
                    let base = base.strip_suffix("IfExists").unwrap_or(base);
                    if !CONDITION_OPERATORS.contains(&base) {
                        problems.push(format!("{at}: unknown condition operator {op:?}"));
                    }
                    let Some(keys) = keys.as_object().filter(|k| !k.is_empty()) else {
                        problems.push(format!("{at}: {op} must map keys to values"));
                        continue;
                    };
                    for (key, value) in keys {
                        let ok = match value {
                            Value::String(_) | Value::Bool(_) => true,
                            Value::Array(v) => {
                                !v.is_empty()
                                    && v.iter()
                                        .all(|x| matches!(x, Value::String(_) | Value::Bool(_)))
                            }
                            _ => false,
                        };
                        if !ok || !key.contains(':') {
                            problems.push(format!("{at}: bad condition {op} {key:?}: {value}"));
                        }
                    }
                }
            }
            Some(_) => problems.push(format!("{at}: Condition must be a non-empty object")),
        }
    }
    let chars = doc
        .to_string()
        .chars()
        .filter(|c| !c.is_whitespace())
        .count();
    if chars > ROLE_INLINE_POLICY_MAX_CHARS {
        problems.push(format!(
            "{chars} characters, over IAM's {ROLE_INLINE_POLICY_MAX_CHARS} for a role's \
             inline policies"
        ));
    }
    problems
}

/// Checks that exactly one of `key`/`not_key` is present and that each entry is valid.
fn list_problems(
    at: &str,
    statement: &Value,
    key: &str,
    not_key: &str,
    valid: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut problems = Vec::new();
    let (value, name) = match (statement.get(key), statement.get(not_key)) {
        (Some(v), None) => (v, key),
        (None, Some(v)) => (v, not_key),
        (Some(_), Some(_)) => return vec![format!("{at}: both {key} and {not_key}")],
        (None, None) => return vec![format!("{at}: no {key}")],
    };
    let entries: Vec<&Value> = match value {
        Value::Array(items) if !items.is_empty() => items.iter().collect(),
        Value::String(_) => vec![value],
        _ => return vec![format!("{at}: {name} must be a string or a non-empty list")],
    };
    for entry in entries {
        match entry.as_str() {
            Some(s) if valid(s) => {}
            _ => problems.push(format!("{at}: bad {name} entry {entry}")),
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY_ARN: &str =
        "arn:aws:kms:ap-southeast-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

    fn scope(kms: Option<&str>) -> PolicyScope {
        PolicyScope {
            partition: "aws".into(),
            region: "ap-southeast-2".into(),
            account_id: "111122223333".into(),
            volume_id: "vol-0123456789abcdef0".into(),
            allocation_id: "eipalloc-0123456789abcdef0".into(),
            autoscaling_group_name: "web-asg".into(),
            log_group_name: "/aws/lambda/web-attach".into(),
            network_interface_id: None,
            scheduled_snapshots: false,
            restored_volumes: false,
            kms_key_arn: kms.map(str::to_string),
        }
    }

    #[test]
    fn trust_policy_lets_lambda_assume_the_role() {
        let doc = lambda_trust_policy();
        assert_eq!(
            doc,
            json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Sid": "LambdaAssumesRole",
                    "Effect": "Allow",
                    "Principal": { "Service": "lambda.amazonaws.com" },
                    "Action": "sts:AssumeRole"
                }]
            })
        );
        assert_eq!(grammar_problems(&doc, true), Vec::<String>::new());
        // As a trust policy it must not pass the identity-policy check, and vice versa.
        assert!(!grammar_problems(&doc, false).is_empty());
    }

    #[test]
    fn scheduled_snapshots_add_only_scoped_snapshot_statements() {
        let without = attach_policy(&scope(None)).to_string();
        assert!(!without.contains("Snapshot"), "{without}");
        let doc = attach_policy(&PolicyScope {
            scheduled_snapshots: true,
            restored_volumes: false,
            ..scope(None)
        });
        let by_sid = |sid: &str| {
            statements(&doc)
                .into_iter()
                .find(|s| s["Sid"] == sid)
                .unwrap_or_else(|| panic!("no statement {sid}"))
                .clone()
        };
        let volume = "arn:aws:ec2:ap-southeast-2:111122223333:volume/vol-0123456789abcdef0";
        let snapshots = "arn:aws:ec2:ap-southeast-2::snapshot/*";
        assert_eq!(by_sid("SnapshotThisVolume")["Resource"], volume);
        let create = by_sid("CreateScheduledSnapshots");
        assert_eq!(create["Resource"], snapshots);
        assert_eq!(
            create["Condition"],
            json!({"StringEquals": {"aws:RequestTag/autoheal:snapshot": "scheduled"}})
        );
        assert_eq!(
            by_sid("TagSnapshotsAtCreation")["Condition"],
            json!({"StringEquals": {"ec2:CreateAction": "CreateSnapshot"}})
        );
        let prune = by_sid("PruneScheduledSnapshotsOfThisVolume");
        assert_eq!(prune["Action"], "ec2:DeleteSnapshot");
        assert_eq!(prune["Condition"]["ArnEquals"]["ec2:ParentVolume"], volume);
        assert_eq!(
            prune["Condition"]["StringEquals"]["aws:ResourceTag/autoheal:snapshot"],
            "scheduled"
        );
        assert!(list_contains(
            &by_sid("DescribeCannotBeScoped")["Action"],
            "ec2:DescribeSnapshots"
        ));
        assert_eq!(grammar_problems(&doc, false), Vec::<String>::new());
        assert_eq!(mutating_actions_with_star(&doc), Vec::<String>::new());
        assert_eq!(
            tag_conditions_outside_instance_statements(&doc),
            Vec::<String>::new()
        );
        // The exception is for DeleteSnapshot alone: a tag condition on CreateSnapshot's
        // snapshot resource would still be flagged.
        let mut wrong = doc.clone();
        for st in wrong["Statement"].as_array_mut().unwrap() {
            if st["Sid"] == "PruneScheduledSnapshotsOfThisVolume" {
                st["Action"] = json!(["ec2:DeleteSnapshot", "ec2:CreateSnapshot"]);
            }
        }
        assert_eq!(tag_conditions_outside_instance_statements(&wrong).len(), 1);
    }

    fn list_contains(v: &Value, item: &str) -> bool {
        v.as_array().is_some_and(|a| a.iter().any(|x| x == item))
    }

    #[test]
    fn attach_policy_has_exactly_these_statements() {
        let doc = attach_policy(&scope(None));
        let expected = json!({
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "DescribeCannotBeScoped",
                    "Effect": "Allow",
                    "Action": [
                        "ec2:DescribeInstances",
                        "ec2:DescribeVolumes",
                        "ec2:DescribeAddresses",
                        "autoscaling:DescribeAutoScalingInstances",
                        "autoscaling:DescribeLifecycleHooks"
                    ],
                    "Resource": "*"
                },
                {
                    "Sid": "AttachThisVolume",
                    "Effect": "Allow",
                    "Action": "ec2:AttachVolume",
                    "Resource": "arn:aws:ec2:ap-southeast-2:111122223333:volume/vol-0123456789abcdef0"
                },
                {
                    "Sid": "AssociateThisAddress",
                    "Effect": "Allow",
                    "Action": "ec2:AssociateAddress",
                    "Resource": "arn:aws:ec2:ap-southeast-2:111122223333:elastic-ip/eipalloc-0123456789abcdef0"
                },
                {
                    "Sid": "AttachAndAssociateToGroupInstances",
                    "Effect": "Allow",
                    "Action": ["ec2:AttachVolume", "ec2:AssociateAddress"],
                    "Resource": "arn:aws:ec2:ap-southeast-2:111122223333:instance/*",
                    "Condition": {
                        "StringEquals": { "aws:ResourceTag/aws:autoscaling:groupName": "web-asg" }
                    }
                },
                {
                    "Sid": "LifecycleActionsOfThisGroup",
                    "Effect": "Allow",
                    "Action": [
                        "autoscaling:CompleteLifecycleAction",
                        "autoscaling:RecordLifecycleActionHeartbeat"
                    ],
                    "Resource": "arn:aws:autoscaling:ap-southeast-2:111122223333:autoScalingGroup:*:autoScalingGroupName/web-asg"
                },
                {
                    "Sid": "LogToOwnLogGroup",
                    "Effect": "Allow",
                    "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                    "Resource": "arn:aws:logs:ap-southeast-2:111122223333:log-group:/aws/lambda/web-attach:*"
                }
            ]
        });
        assert_eq!(doc, expected);
    }

    #[test]
    fn a_persistent_interface_moves_the_address_to_it_and_lets_the_handler_attach_it() {
        let mut s = scope(None);
        s.network_interface_id = Some("eni-0123456789abcdef0".into());
        let doc = attach_policy(&s);
        let eni = "arn:aws:ec2:ap-southeast-2:111122223333:network-interface/eni-0123456789abcdef0";
        let by_sid = |sid: &str| {
            statements(&doc)
                .into_iter()
                .find(|st| st["Sid"] == sid)
                .unwrap_or_else(|| panic!("no {sid} in {doc}"))
        };
        assert!(string_list(by_sid("DescribeCannotBeScoped").get("Action"))
            .contains(&"ec2:DescribeNetworkInterfaces"));
        let interface = by_sid("AttachAndAddressThisInterface");
        assert_eq!(
            string_list(interface.get("Action")),
            ["ec2:AttachNetworkInterface", "ec2:AssociateAddress"]
        );
        assert_eq!(string_list(interface.get("Resource")), [eni]);
        // The address never goes to an instance: only the volume and the interface attach.
        let instances = by_sid("AttachAndAssociateToGroupInstances");
        assert_eq!(
            string_list(instances.get("Action")),
            ["ec2:AttachVolume", "ec2:AttachNetworkInterface"]
        );
        assert_eq!(s.problems(), Vec::<String>::new());
        assert_eq!(
            tag_conditions_outside_instance_statements(&doc),
            Vec::<String>::new()
        );
        assert_eq!(mutating_actions_with_star(&doc), Vec::<String>::new());
        // Without one, nothing about interfaces at all.
        assert!(!attach_policy(&scope(None))
            .to_string()
            .contains("NetworkInterface"));
        // A wildcard smuggled in as the id is a scope problem.
        s.network_interface_id = Some("eni-*".into());
        assert_eq!(s.problems().len(), 1, "{:?}", s.problems());
    }

    #[test]
    fn a_kms_key_adds_two_statements_on_that_key_only() {
        let without = attach_policy(&scope(None));
        let with = attach_policy(&scope(Some(KEY_ARN)));
        let (s0, s1) = (statements(&without), statements(&with));
        assert_eq!(s1.len(), s0.len() + 2);
        assert_eq!(&s1[..s0.len()], &s0[..]);
        assert_eq!(
            s1[s0.len()],
            &json!({
                "Sid": "GrantVolumeKeyToEc2",
                "Effect": "Allow",
                "Action": "kms:CreateGrant",
                "Resource": KEY_ARN,
                "Condition": {
                    "Bool": { "kms:GrantIsForAWSResource": "true" },
                    "StringEquals": {
                        "kms:ViaService": "ec2.ap-southeast-2.amazonaws.com",
                        "kms:CallerAccount": "111122223333"
                    }
                }
            })
        );
        assert_eq!(
            s1[s0.len() + 1],
            &json!({
                "Sid": "UseVolumeKey",
                "Effect": "Allow",
                "Action": ["kms:Decrypt", "kms:DescribeKey"],
                "Resource": KEY_ARN,
                "Condition": {
                    "StringEquals": {
                        "kms:ViaService": "ec2.ap-southeast-2.amazonaws.com",
                        "kms:CallerAccount": "111122223333"
                    }
                }
            })
        );
        // No KMS action anywhere else.
        for s in &s1[..s0.len()] {
            assert!(string_list(s.get("Action"))
                .iter()
                .all(|a| !a.starts_with("kms:")));
        }
    }

    /// Every call the handler makes (handler/src/aws.rs) is allowed, and nothing else.
    #[test]
    fn actions_are_exactly_the_handlers_calls() {
        let doc = attach_policy(&scope(None));
        let mut actions: Vec<&str> = statements(&doc)
            .iter()
            .flat_map(|s| string_list(s.get("Action")))
            .collect();
        actions.sort_unstable();
        actions.dedup();
        assert_eq!(
            actions,
            [
                "autoscaling:CompleteLifecycleAction",
                "autoscaling:DescribeAutoScalingInstances",
                "autoscaling:DescribeLifecycleHooks",
                "autoscaling:RecordLifecycleActionHeartbeat",
                "ec2:AssociateAddress",
                "ec2:AttachVolume",
                "ec2:DescribeAddresses",
                "ec2:DescribeInstances",
                "ec2:DescribeVolumes",
                "logs:CreateLogStream",
                "logs:PutLogEvents",
            ]
        );
    }

    #[test]
    fn our_documents_pass_our_rules() {
        for kms in [None, Some(KEY_ARN)] {
            let doc = attach_policy(&scope(kms));
            assert_eq!(grammar_problems(&doc, false), Vec::<String>::new());
            assert_eq!(mutating_actions_with_star(&doc), Vec::<String>::new());
            assert_eq!(
                tag_conditions_outside_instance_statements(&doc),
                Vec::<String>::new()
            );
            // Conditions appear only on the instance-only statement and on the KMS
            // statements (which may be used only through EC2, from the stack's account).
            for s in statements(&doc) {
                if s.get("Condition").is_some() {
                    let resources = string_list(s.get("Resource"));
                    let instance_only = resources.iter().all(|r| is_instance_arn(r));
                    let kms = string_list(s.get("Action"))
                        .iter()
                        .all(|a| a.starts_with("kms:"));
                    assert!(instance_only || kms, "{s}");
                }
            }
        }
    }

    #[test]
    fn the_rules_catch_what_they_are_for() {
        let bad = json!({
            "Version": "2012-10-17",
            "Statement": [
                { "Effect": "Allow", "Action": ["ec2:DescribeVolumes", "ec2:AttachVolume"], "Resource": "*" },
                { "Sid": "Logs", "Effect": "Allow", "Action": "logs:*", "Resource": ["arn:aws:logs:r:1:log-group:x", "*"] },
                { "Effect": "Allow", "Action": "ec2:AssociateAddress", "NotResource": "arn:aws:ec2:r:1:volume/vol-1" },
                { "Effect": "Deny", "Action": "ec2:TerminateInstances", "Resource": "*" },
                {
                    "Sid": "Mixed", "Effect": "Allow", "Action": "ec2:AttachVolume",
                    "Resource": ["arn:aws:ec2:r:1:volume/vol-1", "arn:aws:ec2:r:1:instance/*"],
                    "Condition": { "StringEquals": { "aws:ResourceTag/aws:autoscaling:groupName": "g" } }
                }
            ]
        });
        assert_eq!(
            mutating_actions_with_star(&bad),
            [
                "statement 0: ec2:AttachVolume on every resource",
                "statement 1 (Logs): logs:* on every resource",
                "statement 2: ec2:AssociateAddress on every resource",
            ]
        );
        let tagged = tag_conditions_outside_instance_statements(&bad);
        assert_eq!(tagged.len(), 1, "{tagged:?}");
        assert!(tagged[0].starts_with("statement 4 (Mixed)"), "{tagged:?}");
        assert!(tagged[0].contains("volume/vol-1"), "{tagged:?}");
    }

    #[test]
    fn grammar_problems_are_found() {
        let cases = [
            (
                json!({"Statement": [{"Effect": "Allow", "Action": "ec2:X", "Resource": "*"}]}),
                "Version",
            ),
            (
                json!({"Version": "2008-10-17", "Statement": [{"Effect": "Allow", "Action": "ec2:X", "Resource": "*"}]}),
                "Version",
            ),
            (
                json!({"Version": "2012-10-17", "Statement": []}),
                "no Statement",
            ),
            (
                json!({"Version": "2012-10-17", "Statement": [{"Sid": "a-b", "Effect": "Allow", "Action": "ec2:X", "Resource": "*"}]}),
                "Sid",
            ),
            (
                json!({"Version": "2012-10-17", "Statement": [
                {"Sid": "A", "Effect": "Allow", "Action": "ec2:X", "Resource": "*"},
                {"Sid": "A", "Effect": "Allow", "Action": "ec2:Y", "Resource": "*"}]}),
                "duplicate Sid",
            ),
            (
                json!({"Version": "2012-10-17", "Statement": [{"Effect": "allow", "Action": "ec2:X", "Resource": "*"}]}),
                "Effect",
            ),
            (
                json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "AttachVolume", "Resource": "*"}]}),
                "Action",
            ),
            (
                json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ec2:X"}]}),
                "no Resource",
            ),
            (
                json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ec2:X", "Resource": "vol-1"}]}),
                "Resource",
            ),
            (
                json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ec2:X", "Resource": "*", "Condition": {"StringEqual": {"aws:x": "y"}}}]}),
                "operator",
            ),
            (
                json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ec2:X", "Resource": "*", "Condition": {"StringEquals": {"aws:x": 3}}}]}),
                "bad condition",
            ),
            (
                json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ec2:X", "Resource": "*", "Actions": "x"}]}),
                "unknown element",
            ),
        ];
        for (doc, expected) in cases {
            let problems = grammar_problems(&doc, false);
            assert!(
                problems.iter().any(|p| p.contains(expected)),
                "{doc}: expected a problem about {expected:?}, got {problems:?}"
            );
        }
        let huge = json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "ec2:X", "Resource": (0..400).map(|i| format!("arn:aws:ec2:r:1:volume/vol-{i:020}")).collect::<Vec<_>>()
        }]});
        assert!(grammar_problems(&huge, false)
            .iter()
            .any(|p| p.contains("10240")));
    }

    #[test]
    fn kms_key_forms() {
        let arn = |k: &str| kms_key_for_policy(k, "aws", "ap-southeast-2", "111122223333");
        assert_eq!(
            arn("1234abcd-12ab-34cd-56ef-1234567890ab"),
            KmsKeyForPolicy::Arn(KEY_ARN.into())
        );
        assert_eq!(
            arn("mrk-1234abcd12ab34cd56ef1234567890ab"),
            KmsKeyForPolicy::Arn(
                "arn:aws:kms:ap-southeast-2:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab"
                    .into()
            )
        );
        // A key ARN is used as it is, even of another account (a shared key).
        let other =
            "arn:aws:kms:ap-southeast-2:444455556666:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        assert_eq!(arn(other), KmsKeyForPolicy::Arn(other.into()));
        for alias in [
            "alias/data",
            "arn:aws:kms:ap-southeast-2:111122223333:alias/data",
        ] {
            assert_eq!(arn(alias), KmsKeyForPolicy::ResolveAlias(alias.into()));
        }
        // Keys built here pass the scope check; aliases are refused there.
        let mut s = scope(Some(KEY_ARN));
        assert_eq!(s.problems(), Vec::<String>::new());
        s.kms_key_arn = Some("arn:aws:kms:ap-southeast-2:111122223333:alias/data".into());
        assert_eq!(s.problems().len(), 1, "{:?}", s.problems());
    }

    #[test]
    fn scope_problems() {
        let mut s = scope(None);
        s.autoscaling_group_name = "web-*".into();
        s.account_id = "1111".into();
        s.volume_id = String::new();
        let problems = s.problems();
        assert_eq!(problems.len(), 3, "{problems:?}");
    }

    #[test]
    fn partitions() {
        assert_eq!(partition_for_region("ap-southeast-2"), "aws");
        assert_eq!(partition_for_region("cn-north-1"), "aws-cn");
        assert_eq!(partition_for_region("us-gov-west-1"), "aws-us-gov");
        assert_eq!(partition_for_region("us-iso-east-1"), "aws-iso");
        assert_eq!(partition_for_region("us-isob-east-1"), "aws-iso-b");
        let s = PolicyScope {
            partition: partition_for_region("cn-north-1").into(),
            region: "cn-north-1".into(),
            ..scope(None)
        };
        assert!(s.volume_arn().starts_with("arn:aws-cn:ec2:cn-north-1:"));
    }

    fn arb_scope() -> impl Strategy<Value = PolicyScope> {
        let hex17 = "[0-9a-f]{17}";
        (
            prop::sample::select(vec!["aws", "aws-cn", "aws-us-gov"]),
            "[a-z]{2}-[a-z]{4,9}-[1-9]",
            "[0-9]{12}",
            hex17,
            hex17,
            // Stack names as validation accepts them (no `--`, no trailing `-`).
            "[a-z]([a-z0-9]{0,5}-?){0,5}[a-z0-9]",
            prop::option::of("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"),
            prop::option::of(hex17),
            any::<bool>(),
        )
            .prop_map(
                |(partition, region, account, vol, eip, name, key, eni, snapshots)| {
                    let kms_key_arn =
                        key.map(
                            |k| match kms_key_for_policy(&k, partition, &region, &account) {
                                KmsKeyForPolicy::Arn(a) => a,
                                KmsKeyForPolicy::ResolveAlias(a) => panic!("{a} is no alias"),
                            },
                        );
                    PolicyScope {
                        partition: partition.into(),
                        region,
                        account_id: account,
                        volume_id: format!("vol-{vol}"),
                        allocation_id: format!("eipalloc-{eip}"),
                        autoscaling_group_name: crate::autoheal_instance::names::AUTOSCALING_GROUP
                            .for_stack(&name),
                        log_group_name: crate::autoheal_instance::names::LOG_GROUP.for_stack(&name),
                        network_interface_id: eni.map(|e| format!("eni-{e}")),
                        scheduled_snapshots: snapshots,
                        restored_volumes: false,
                        kms_key_arn,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn every_valid_scope_gives_a_valid_least_privilege_policy(s in arb_scope()) {
            prop_assert_eq!(s.problems(), Vec::<String>::new());
            let doc = attach_policy(&s);
            prop_assert_eq!(grammar_problems(&doc, false), Vec::<String>::new());
            prop_assert_eq!(mutating_actions_with_star(&doc), Vec::<String>::new());
            prop_assert_eq!(tag_conditions_outside_instance_statements(&doc), Vec::<String>::new());
            // It survives a JSON round trip (what IAM receives is what we built).
            let text = doc.to_string();
            prop_assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), doc.clone());
            // Every non-"*" resource is in this stack's partition, region and account, and
            // names this stack's volume, address, group, log group or key.
            for st in statements(&doc) {
                for r in string_list(st.get("Resource")) {
                    if r == "*" {
                        prop_assert!(string_list(st.get("Action")).iter().all(|a| is_read_only_action(a)));
                        continue;
                    }
                    let prefix = format!("arn:{}:", s.partition);
                    prop_assert!(r.starts_with(&prefix), "{}", r);
                    if is_snapshot_arn(r) {
                        // Snapshot ARNs name no account: every statement on them is
                        // conditioned (request tag, creating action, parent volume).
                        prop_assert!(s.scheduled_snapshots, "{}", r);
                        prop_assert!(st.get("Condition").is_some(), "{}", r);
                        let in_region = format!(":{}::snapshot/", s.region);
                        prop_assert!(r.contains(&in_region), "{}", r);
                        continue;
                    }
                    let in_account = format!(":{}:{}:", s.region, s.account_id);
                    prop_assert!(r.contains(&in_account), "{}", r);
                    let names_ours = r.ends_with(&s.volume_id)
                        || r.ends_with(&s.allocation_id)
                        || r.ends_with(&format!("/{}", s.autoscaling_group_name))
                        || r.ends_with(&format!("{}:*", s.log_group_name))
                        || Some(r) == s.kms_key_arn.as_deref()
                        || s.network_interface_id.as_ref().is_some_and(|e| r.ends_with(&format!("network-interface/{e}")))
                        || is_instance_arn(r);
                    prop_assert!(names_ours, "{}", r);
                }
            }
            // The group condition names this group.
            let condition = format!(
                "\"aws:ResourceTag/aws:autoscaling:groupName\":\"{}\"",
                s.autoscaling_group_name
            );
            prop_assert!(text.contains(&condition), "{}", text);
        }
    }
}

//! The schema of `autoheal_instance`. The descriptions are the registry documentation, so they
//! say what each attribute is, its default, its constraints and whether changing it replaces
//! the stack. The constraints themselves are enforced in [`super::validate`]; the constants
//! they share with the descriptions live here.

use std::time::Duration;

use crate::plugin::schema::{Attribute, Block, NestedBlock, Schema};
use crate::plugin::value::{Type, Value};

use super::duration::parse_go_duration;
use super::names::{AWS_MAX_TAGS, NAME_MAX_LEN, NAME_TAG, PROVIDER_TAG_COUNT, STACK_TAG};

/// Bumped whenever the state layout or the meaning of a stored value changes, with an
/// upgrade from the previous version in [`super::state_upgrade`]. 1: the first versioned
/// schema; version 0 is every state written before (`device_name` defaulting to `/dev/xvdb`,
/// no `ingress`, `unmanaged_security_group_rules`, ...).
pub const SCHEMA_VERSION: i64 = 1;

pub const DEFAULT_VPC_CIDR: &str = "10.0.0.0/16";
pub const DEFAULT_SUBNET_CIDR: &str = "10.0.1.0/24";
pub const DEFAULT_INSTANCE_TYPE: &str = "t3.micro";
pub const DEFAULT_VOLUME_SIZE: i64 = 10;
pub const DEFAULT_VOLUME_TYPE: &str = "gp3";
/// `device_name` of a new stack. Not a schema default: an existing stack keeps the name in
/// its state (see `plan`), so that stacks made with the earlier default,
/// [`EARLIER_DEFAULT_DEVICE_NAME`], are not rolled by an upgrade.
pub const DEFAULT_DEVICE_NAME: &str = "/dev/sdf";
/// The default `device_name` before `/dev/xvdb`..`/dev/xvde` were refused (on Xen instance
/// types they can be instance store).
pub const EARLIER_DEFAULT_DEVICE_NAME: &str = "/dev/xvdb";
pub const DEFAULT_MOUNT_POINT: &str = "/data";
pub const DEFAULT_FILESYSTEM: &str = "ext4";
pub const DEFAULT_VOLUME_ON_DESTROY: &str = "snapshot";
pub const DEFAULT_HEALTH_CHECK_GRACE_PERIOD: i64 = 300;
pub const DEFAULT_LIFECYCLE_HOOK_TIMEOUT: i64 = 300;
pub const DEFAULT_LAMBDA_MEMORY_SIZE: i64 = 128;
pub const DEFAULT_LAMBDA_TIMEOUT: i64 = 120;
pub const DEFAULT_LAMBDA_ARCHITECTURE: &str = "x86_64";
pub const DEFAULT_LOG_RETENTION_DAYS: i64 = 30;
/// `alarm_no_in_service_minutes` when unset. Not a schema default: a stack from before the
/// attribute existed must plan no change (see `state_upgrade`).
pub const DEFAULT_ALARM_NO_IN_SERVICE_MINUTES: i64 = 10;
/// CloudWatch refuses an alarm whose evaluation periods times its period exceed one day.
pub const MAX_ALARM_NO_IN_SERVICE_MINUTES: i64 = 24 * 60;
/// `snapshot_retention` when unset.
pub const DEFAULT_SNAPSHOT_RETENTION: i64 = 24;
/// The retention counts the function accepts (handler/src/settings.rs has the same range).
pub const MAX_SNAPSHOT_RETENTION: i64 = 1000;
/// The shortest `snapshot_interval`: EBS refuses frequent CreateSnapshot calls on one volume
/// (`SnapshotCreationPerVolumeRateExceeded`), and a snapshot of a busy volume takes minutes.
pub const MIN_SNAPSHOT_INTERVAL: Duration = Duration::from_secs(15 * 60);
/// The longest `snapshot_interval`: one day (a longer recovery point is a choice nobody
/// running a stateful service on one instance should make by accident).
pub const MAX_SNAPSHOT_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);
/// `failover_detection_window` when unset: long enough that Auto Scaling has retried a failed
/// launch several times (a single failure is never a zone loss).
pub const DEFAULT_FAILOVER_DETECTION_WINDOW: Duration = Duration::from_secs(10 * 60);
/// The shortest window: below it a brief capacity shortage looks like a lost zone.
pub const MIN_FAILOVER_DETECTION_WINDOW: Duration = Duration::from_secs(5 * 60);
/// The longest window (the failover function accepts up to a day).
pub const MAX_FAILOVER_DETECTION_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);
/// The most actions CloudWatch accepts per alarm state.
pub const MAX_ALARM_ACTIONS: usize = 5;

pub const VOLUME_TYPES: &[&str] = &["gp2", "gp3", "io1", "io2", "st1", "sc1", "standard"];
pub const FILESYSTEMS: &[&str] = &["ext4", "xfs"];
pub const VOLUME_ON_DESTROY: &[&str] = &["snapshot", "retain", "delete"];
pub const LAMBDA_ARCHITECTURES: &[&str] = &["x86_64", "arm64"];
/// The retention periods CloudWatch Logs accepts.
pub const LOG_RETENTION_DAYS: &[i64] = &[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// EC2 limits user data to 16 KiB before base64; the provider's own mount script, which runs
/// first, is budgeted 4 KiB of it.
pub const USER_DATA_MAX_BYTES: usize = 12 * 1024;

/// Timeout of each operation when the `timeouts` block does not set it.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// The operations a `timeouts` block configures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
}

impl Operation {
    pub fn attribute(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Delete => "delete",
        }
    }
}

/// The timeout of `op` from a configuration or planned state: `timeouts.<op>` when set and
/// valid, else [`DEFAULT_TIMEOUT`]. (Invalid values never get this far: validation refuses
/// them.)
pub fn operation_timeout(value: &Value, op: Operation) -> Duration {
    value
        .attr("timeouts")
        .attr(op.attribute())
        .as_str()
        .and_then(|s| parse_go_duration(s).ok())
        .filter(|d| !d.is_zero())
        .unwrap_or(DEFAULT_TIMEOUT)
}

fn s(v: &str) -> Value {
    Value::from(v)
}

fn n(v: i64) -> Value {
    Value::from(v)
}

fn list(values: &[&str]) -> String {
    values
        .iter()
        .map(|v| format!("`{v}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

const REPLACES: &str = "Changing it replaces the whole stack.";
const IN_PLACE: &str = "Can be changed in place.";

/// The schema of `autoheal_instance`.
pub fn schema() -> Schema {
    let block = Block::new(
        "One EC2 instance that heals itself and keeps its data and its address. The stack is \
         an Auto Scaling group of one instance built from a launch template, an encrypted EBS \
         data volume, an Elastic IP, a security group and, unless `subnet_id` is given, a VPC \
         with a public subnet. When the group launches an instance (at create, after a \
         failure, or when an update rolls the instance), a launch lifecycle hook holds it \
         while an EventBridge rule invokes a small Lambda function that moves the data volume \
         and the Elastic IP to the new instance; the instance then mounts the volume and runs \
         `user_data`. Every AWS object's name and `Name` tag starts with `name`, and every \
         object carries the tag `autoheal:stack = <name>`.",
    );
    let block = inputs(block);
    let block = volume_inputs(block);
    let block = lambda_inputs(block);
    let block = operator_inputs(block);
    let block = computed(block);
    let block = block.block(ingress_block()).block(timeouts_block());
    Schema {
        version: SCHEMA_VERSION,
        block,
    }
}

fn inputs(b: Block) -> Block {
    b.attribute(
        Attribute::required(
            "name",
            Type::String,
            &format!(
                "Name of the stack. Every AWS object created is named after it (for example \
                 `<name>-asg` and `<name>-attach`) and tagged with it; it also finds the final \
                 snapshots of a previous stack of the same name. 1 to {NAME_MAX_LEN} \
                 characters: letters, digits and hyphens, starting with a letter, not ending \
                 with a hyphen and without two hyphens in a row (the limit keeps every derived \
                 name within AWS's 64-character limits). Must be unique in the account and \
                 region. {REPLACES}"
            ),
        )
        .requires_replace(),
    )
    .attribute(
        Attribute::required(
            "availability_zone",
            Type::String,
            &format!(
                "Availability Zone of the instance and its data volume, e.g. \
                 `ap-southeast-2a` (a zone name, not a zone id such as `apse2-az1`). It must \
                 be in the provider's region, and must be the zone of `subnet_id` when that is \
                 given. An EBS volume lives in one zone, so the instance can never move to \
                 another one. {REPLACES}"
            ),
        )
        .requires_replace(),
    )
    .attribute(
        Attribute::optional_computed(
            "subnet_id",
            Type::String,
            &format!(
                "An existing subnet to launch the instance in (`subnet-` followed by 8 or 17 \
                 hexadecimal digits), in `availability_zone`. It must give the instance a \
                 route to the internet (or VPC endpoints) for the instance to be reachable at \
                 its Elastic IP. When omitted, the provider creates a VPC (`vpc_cidr`) with an \
                 internet gateway and one public subnet (`subnet_cidr`), and this attribute \
                 reports the subnet it created. {REPLACES}"
            ),
        )
        .requires_replace()
        .use_state_for_unknown(),
    )
    .attribute(
        Attribute::with_default(
            "vpc_cidr",
            Type::String,
            s(DEFAULT_VPC_CIDR),
            &format!(
                "IPv4 CIDR block of the VPC the provider creates, with a prefix length from \
                 /16 to /28 (AWS's limits) and no host bits set. Default `{DEFAULT_VPC_CIDR}`. \
                 Only used without `subnet_id`: setting both is an error, and with \
                 `subnet_id` it is null. {REPLACES}"
            ),
        )
        .requires_replace(),
    )
    .attribute(
        Attribute::with_default(
            "subnet_cidr",
            Type::String,
            s(DEFAULT_SUBNET_CIDR),
            &format!(
                "IPv4 CIDR block of the public subnet the provider creates: inside \
                 `vpc_cidr`, prefix length /16 to /28, no host bits set. Default \
                 `{DEFAULT_SUBNET_CIDR}`. Only used without `subnet_id`: setting both is an \
                 error, and with `subnet_id` it is null. {REPLACES}"
            ),
        )
        .requires_replace(),
    )
    .attribute(Attribute::optional(
        "failover_zones",
        Type::set(Type::String),
        &format!(
            "Availability Zones (names, in the provider's region, other than \
             `availability_zone`) the stack fails over to when its zone is lost \
             (docs/zone-failover.md). Needs `snapshot_interval`: a failover restores the \
             newest completed scheduled snapshot. Without `subnet_id` the provider \
             creates a public subnet in each, in the stack's VPC, with the stack's route \
             table: each takes the first block of `subnet_cidr`'s size that is free in \
             `vpc_cidr`. With `subnet_id`, name your own subnets in `failover_subnet_ids`. \
             Nothing launches there while the home zone serves: the group keeps the home \
             subnet only. A second function, `<name>-failover` (the same code, its own role \
             and log group), runs every minute on the rule `<name>-failover-check` and \
             declares the serving zone lost only when, over `failover_detection_window`, the \
             group's launches there all failed with zone-level capacity errors, the serving \
             volume is `impaired` and no instance is InService; it then restores the newest \
             completed scheduled snapshot into the first failover zone whose launches have \
             not failed, and moves the group there; the attachment function attaches the \
             restored volume and the Elastic IP as for any heal. The old volume is never \
             deleted: it holds the writes made after the snapshot. `active_availability_zone` \
             and `active_volume_id` report where the stack serves. Not with \
             `persistent_network_interface` (an interface lives in one \
             subnet). Default: none. {IN_PLACE}"
        ),
    ))
    .attribute(Attribute::optional_computed(
        "failover_subnet_ids",
        Type::map(Type::String),
        &format!(
            "The subnet of each failover zone: zone name -> subnet id. With `subnet_id`, \
             required with `failover_zones`: one of your subnets per zone (in that zone and \
             in `subnet_id`'s VPC, with a route to the internet like `subnet_id`'s). \
             Without `subnet_id`, do not set it: it reports the subnets the provider \
             created. {IN_PLACE}"
        ),
    ).use_state_for_unknown())
    .attribute(Attribute::optional(
        "failover_detection_window",
        Type::String,
        &format!(
            "How long the serving zone's launches must have failed (with zone-level capacity \
             errors, the volume `impaired`, no instance InService) before the zone is \
             declared lost and the stack fails over: a duration in whole minutes from 5m to \
             24h. Default: 10m. Longer waits out more of a short outage; shorter recovers \
             sooner. Only used with `failover_zones`. {IN_PLACE}"
        ),
    ))
    .attribute(
        Attribute::optional(
            "existing_allocation_id",
            Type::String,
            &format!(
                "Allocation id (`eipalloc-...`) of an Elastic IP you own, to use instead of \
                 allocating a new one. The provider associates it with the instance and never \
                 releases it, not even on destroy. {REPLACES}"
            ),
        )
        .requires_replace(),
    )
    .attribute(
        Attribute::optional(
            "existing_volume_id",
            Type::String,
            &format!(
                "Id (`vol-...`) of an EBS volume you own, in `availability_zone`, to use as \
                 the data volume instead of creating one. The provider attaches it and never \
                 deletes or snapshots it: on destroy it is detached and left as it is (and \
                 so is a volume a zone failover or a failback restored from it, which then \
                 serves as `volume_id`). It \
                 cannot be combined with `volume_snapshot_id`, `volume_size`, `volume_type`, \
                 `volume_iops`, `volume_throughput`, `volume_kms_key_id` or \
                 `volume_on_destroy`, which describe a volume the provider creates; \
                 `volume_size` and `volume_type` then report the existing volume's. {REPLACES}"
            ),
        )
        .requires_replace(),
    )
    .attribute(Attribute::required(
        "ami",
        Type::String,
        &format!(
            "Id of the AMI the instance boots from (`ami-` followed by 8 or 17 hexadecimal \
             digits), in the provider's region. It must be a Linux AMI with cloud-init and the \
             `mkfs` tool of `filesystem`, such as any current Amazon Linux, Ubuntu or Debian \
             AMI. \
             Changing it updates the launch template and rolls the instance: a new instance \
             is launched and receives the data volume and the address. {IN_PLACE}"
        ),
    ))
    .attribute(Attribute::with_default(
        "instance_type",
        Type::String,
        s(DEFAULT_INSTANCE_TYPE),
        &format!(
            "EC2 instance type, written `family.size` as AWS does (e.g. `t3.micro`, \
             `m7g.large`). Default `{DEFAULT_INSTANCE_TYPE}`. It must match the AMI's \
             architecture and be offered in `availability_zone`. Changing it rolls the \
             instance (see `ami`). {IN_PLACE}"
        ),
    ))
    .attribute(Attribute::optional(
        "key_name",
        Type::String,
        &format!(
            "Name of an EC2 key pair for SSH access. Default: none. SSH also needs \
             `ssh_ingress_cidrs`. Changing it rolls the instance (see `ami`). {IN_PLACE}"
        ),
    ))
    .attribute(Attribute::with_default(
        "ssh_ingress_cidrs",
        Type::list(Type::String),
        Value::List(Vec::new()),
        &format!(
            "IPv4 CIDR blocks (no host bits set, no duplicates) allowed to reach the instance \
             on TCP port 22. Default: empty, and then the security group has no SSH rule at \
             all. The security group rules are updated without touching the instance. \
             {IN_PLACE}"
        ),
    ))
    .attribute(Attribute::optional(
        "security_group_ids",
        Type::list(Type::String),
        &format!(
            "Ids of security groups you manage (`sg-...`, in the stack's VPC) that the \
             instance gets besides the stack's own group. Default: none. The provider never \
             changes their rules. Changing it rolls the instance (see `ami`). {IN_PLACE}"
        ),
    ))
    .attribute(Attribute::optional(
        "iam_instance_profile",
        Type::String,
        &format!(
            "Name or ARN of an IAM instance profile for the instance (for the SSM agent, the \
             CloudWatch agent, reading from S3, ...). Default: none, and then the instance \
             has no AWS credentials at all. The caller of `terraform apply` needs \
             `iam:PassRole` on the profile's role. Changing it rolls the instance (see \
             `ami`). {IN_PLACE}"
        ),
    ))
    .attribute(Attribute::optional(
        "user_data",
        Type::String,
        &format!(
            "A script for the instance's first boot, run after the provider's built-in \
             script has attached, formatted (only if empty) and mounted the data volume at \
             `mount_point`, so it can rely on the data being there. Any cloud-init user data \
             works (`#!` scripts, `#cloud-config`, MIME, ...): script parts and `runcmd` run \
             only when the volume is mounted; when the built-in script fails without it, they \
             do not run (the instance's cloud-init log says so). Nothing can be written at \
             `mount_point` while the volume is not mounted there: the empty directory on the \
             root disk is made immutable (`chattr +i`). Cloud-config modules that cloud-init runs before user scripts \
             (`bootcmd`, `write_files`, `packages`, `users`, ...) and `#cloud-boothook` parts \
             run before the volume is mounted, whether or not it will be. At most {} bytes \
             (EC2's 16 KiB limit, less room for the built-in script). Changing it rolls the \
             instance (see `ami`). {IN_PLACE}",
            USER_DATA_MAX_BYTES
        ),
    ))
}

/// The opt-in parts operators of licensed applications ask for: a network interface that
/// moves with the stack, and alarms.
fn operator_inputs(b: Block) -> Block {
    b.attribute(Attribute::optional(
        "persistent_network_interface",
        Type::Bool,
        &format!(
            "Whether the stack keeps one network interface for life, for applications \
             licensed to a MAC address or a private IP. When `true`, the provider creates an \
             elastic network interface in the stack's subnet, with the stack's security \
             groups, puts the Elastic IP on it, and the Lambda function attaches it to every \
             instance as its second interface (device index 1, e.g. `eth1` or `ens6`) before \
             the instance goes in service; `network_interface_id`, \
             `network_interface_private_ip` and `network_interface_mac_address` report it. \
             Bind the application's licence to that interface: the instance's first \
             interface still changes with every instance. Default: `false` (the Elastic IP is \
             on each instance's own interface). Turning it on creates the interface, moves \
             the address onto it and attaches it to the serving instance; turning it off \
             moves the address back to the instance and deletes the interface. {IN_PLACE}"
        ),
    ))
    .attribute(Attribute::optional(
        "alarm_actions",
        Type::set(Type::String),
        &format!(
            "ARNs of Amazon SNS topics (at most {MAX_ALARM_ACTIONS}) to notify when a heal \
             fails or the stack serves nothing. When set, the provider creates two CloudWatch \
             alarms (`heal_failure_alarm_arn`, `no_in_service_alarm_arn`): `<name>-heal-failed` \
             goes off when the Lambda function reports a heal it could not finish (its \
             `PermanentFailure` metric, namespace `Autoheal`, summed over a minute, above 0), \
             and `<name>-no-in-service` when the Auto Scaling group's \
             `GroupInServiceInstances` stays below 1 for `alarm_no_in_service_minutes`. Both \
             notify the topics again when they return to OK. Each topic's access policy must \
             let CloudWatch (`cloudwatch.amazonaws.com`) publish to it. Default: none, and no \
             alarm. {IN_PLACE}"
        ),
    ))
    .attribute(Attribute::optional(
        "alarm_no_in_service_minutes",
        Type::Number,
        &format!(
            "How many consecutive minutes the group may have no InService instance before \
             the `<name>-no-in-service` alarm goes off: 1 to \
             {MAX_ALARM_NO_IN_SERVICE_MINUTES}. Default: \
             {DEFAULT_ALARM_NO_IN_SERVICE_MINUTES}. Set it above the time a heal takes \
             (instance boot, the previous instance's shutdown, the volume's move), or every \
             heal raises the alarm. Only used with `alarm_actions`. {IN_PLACE}"
        ),
    ))
    .attribute(Attribute::optional(
        "snapshot_interval",
        Type::String,
        &format!(
            "How often to snapshot the data volume, as a duration in whole minutes (`\"1h\"`, \
             `\"30m\"`), from 15 minutes to 24 hours: the recovery point objective. When set, an \
             EventBridge schedule rule (`<name>-snapshot`, at a rate two minutes shorter, as \
             EventBridge may deliver up to a minute late) invokes the stack's Lambda function, \
             which takes an encrypted snapshot of the volume tagged with the stack's tags and \
             `autoheal:snapshot = scheduled`, and deletes the oldest completed scheduled \
             snapshots beyond `snapshot_retention`. `last_snapshot_time` and the function's \
             `SnapshotAgeSeconds` metric report the newest one. Default: none (no scheduled \
             snapshots). Turning it off deletes the rule, not the snapshots; destroying the \
             stack keeps them too. {IN_PLACE}"
        ),
    ))
    .attribute(Attribute::optional(
        "snapshot_retention",
        Type::Number,
        &format!(
            "How many completed scheduled snapshots to keep: 1 to {MAX_SNAPSHOT_RETENTION}. \
             Default: {DEFAULT_SNAPSHOT_RETENTION}. Pending or failed snapshots never count, \
             and are never deleted by it. Only used with `snapshot_interval`. {IN_PLACE}"
        ),
    ))
}

fn volume_inputs(b: Block) -> Block {
    b.attribute(Attribute::optional(
        "volume_snapshot_id",
        Type::String,
        "Id (`snap-...`) of an EBS snapshot to create the data volume from. Only read when \
         a data volume is created (first create, or a replacement of the stack): changing it \
         is an in-place change that touches no volume and only decides the next one. Which \
         data a new volume starts from: a stack replaced, or created again under the same \
         `name`, continues its own lineage, the newest final snapshot of that name (see \
         `volume_on_destroy`), so it never starts empty nor goes back to older data; a \
         `volume_snapshot_id` newly set or changed since that lineage's volume was created \
         wins over it. `volume_source_snapshot_id` reports the snapshot the volume came from. \
         Cannot be combined with `existing_volume_id`. Can be changed in place.",
    ))
    .attribute(Attribute::with_default(
        "volume_size",
        Type::Number,
        n(DEFAULT_VOLUME_SIZE),
        &format!(
            "Size of the data volume in GiB. Default {DEFAULT_VOLUME_SIZE}. Allowed sizes \
             depend on `volume_type`: `gp2` and `gp3` 1 to 16384, `io1` 4 to 16384, `io2` 4 \
             to 65536 (io2 Block Express), `st1` and `sc1` 125 to 16384, `standard` 1 to 1024. \
             It can grow in place (ModifyVolume; the boot script grows the file system when \
             the next instance mounts it, or run `resize2fs`/`xfs_growfs` on the serving one) \
             but never shrink: EBS volumes cannot shrink, so a smaller value is an error. When created from a \
             snapshot it must be at least the snapshot's size. Not allowed with \
             `existing_volume_id`. {IN_PLACE}"
        ),
    ))
    .attribute(Attribute::with_default(
        "volume_type",
        Type::String,
        s(DEFAULT_VOLUME_TYPE),
        &format!(
            "EBS volume type of the data volume: one of {}. Default `{DEFAULT_VOLUME_TYPE}`. \
             Changed in place with an EBS volume modification (the volume stays attached); \
             AWS allows one modification per volume every 6 hours. Not allowed with \
             `existing_volume_id`. {IN_PLACE}",
            list(VOLUME_TYPES)
        ),
    ))
    .attribute(
        Attribute::optional_computed(
            "volume_iops",
            Type::Number,
            &format!(
                "Provisioned IOPS of the data volume. Only for `gp3` (3000 to 16000, at most \
                 500 per GiB), `io1` (100 to 64000, at most 50 per GiB) and `io2` (100 to \
                 256000, at most 1000 per GiB); required for `io1` and `io2`, refused for the \
                 other types. When omitted, AWS's baseline applies (3000 for `gp3`, 3 per GiB \
                 for `gp2`) and this attribute reports it. {IN_PLACE}"
            ),
        )
        .use_state_for_unknown(),
    )
    .attribute(
        Attribute::optional_computed(
            "volume_throughput",
            Type::Number,
            &format!(
                "Provisioned throughput of the data volume in MiB/s, `gp3` only: 125 to 1000, \
                 and at most a quarter of `volume_iops`. When omitted, AWS's baseline applies \
                 (125 MiB/s) and this attribute reports it. {IN_PLACE}"
            ),
        )
        .use_state_for_unknown(),
    )
    .attribute(
        Attribute::optional(
            "volume_kms_key_id",
            Type::String,
            &format!(
                "KMS key that encrypts the data volume: a key id, key ARN, alias name \
                 (`alias/...`) or alias ARN. Default: the account's default EBS key \
                 (`aws/ebs`). The volume is always encrypted. Not allowed with \
                 `existing_volume_id`. {REPLACES}"
            ),
        )
        .requires_replace(),
    )
    .attribute(
        Attribute::optional_computed(
            "device_name",
            Type::String,
            &format!(
                "Device name the data volume is attached as. Default `{DEFAULT_DEVICE_NAME}` \
                 for new stacks; when omitted, an existing stack keeps the name it has \
                 (stacks created before this default keep `{EARLIER_DEFAULT_DEVICE_NAME}`, so \
                 an upgrade of the provider rolls no instance). One of AWS's recommended \
                 names for EBS data volumes on Linux: `/dev/sdf` to `/dev/sdz` or `/dev/xvdf` \
                 to `/dev/xvdz` (`/dev/sda1` and `/dev/xvda` are the root device; `/dev/sdb` \
                 to `/dev/sde` and, on Xen instance types, `/dev/xvdb` to `/dev/xvde` can be \
                 instance store, so they are refused). On Nitro instances the volume shows up \
                 as an NVMe device whatever its name; the built-in script finds it by volume \
                 id. Changing it rolls the instance (see `ami`). {IN_PLACE}"
            ),
        )
        .use_state_for_unknown(),
    )
    .attribute(Attribute::with_default(
        "mount_point",
        Type::String,
        s(DEFAULT_MOUNT_POINT),
        &format!(
            "Absolute path where the data volume is mounted. Default `{DEFAULT_MOUNT_POINT}`. \
             Letters, digits, `.`, `_`, `-` and `/` only (it is written into the boot \
             script); not `/` nor a system directory such as `/etc` or `/usr`. Changing it \
             rolls the instance (see `ami`). {IN_PLACE}"
        ),
    ))
    .attribute(Attribute::with_default(
        "filesystem",
        Type::String,
        s(DEFAULT_FILESYSTEM),
        &format!(
            "File system created on the data volume when it is empty: one of {}. Default \
             `{DEFAULT_FILESYSTEM}`. A volume that already has a file system is mounted as it \
             is, so changing this later only affects new, empty volumes. Changing it rolls \
             the instance (see `ami`). {IN_PLACE}",
            list(FILESYSTEMS)
        ),
    ))
    .attribute(Attribute::with_default(
        "volume_on_destroy",
        Type::String,
        s(DEFAULT_VOLUME_ON_DESTROY),
        &format!(
            "What happens to the data volume the provider created when the stack is destroyed \
             or replaced: `snapshot` (default) takes a final snapshot, tagged with the stack's \
             name, and then deletes the volume; `retain` detaches the volume and leaves it (it \
             keeps costing money); `delete` deletes it with no snapshot. A new stack of the \
             same `name` restores its data volume from the newest final snapshot of that name \
             (unless `volume_snapshot_id` was newly set or changed: see there), so replacing \
             the stack keeps the data. `delete` and `retain` end that lineage: the stack's \
             final snapshots are tagged `autoheal:final-snapshot = ended` and a later stack of \
             the name starts from `volume_snapshot_id`, or empty, never from older data \
             silently. The final snapshot is skipped only when the provider's own marker on \
             the volume proves that no instance ever used it (a create that failed before its \
             group scaled up). Final snapshots are never deleted by the provider. Not allowed \
             with `existing_volume_id` (that volume is always left as it is). {IN_PLACE}"
        ),
    ))
    .attribute(Attribute::with_default(
        "allow_unencrypted_volume",
        Type::Bool,
        Value::Bool(false),
        &format!(
            "Use an `existing_volume_id` that is not encrypted. Default `false`: the create \
             refuses such a volume before making anything, since every other disk of the \
             stack is encrypted and EBS cannot encrypt a volume in place (copy a snapshot of \
             it with encryption and give that as `volume_snapshot_id` instead). Has no effect \
             without `existing_volume_id`. {IN_PLACE}"
        ),
    ))
    .attribute(Attribute::with_default(
        "force_detach",
        Type::Bool,
        Value::Bool(false),
        &format!(
            "Force-detach the data volume when a normal detach does not finish (on destroy, \
             or when moving it off an instance that does not respond). Default `false`. A \
             last resort: a forced detach skips the operating system's flush, so data not yet \
             written may be lost and the file system may need a repair. {IN_PLACE}"
        ),
    ))
}

fn lambda_inputs(b: Block) -> Block {
    b.attribute(Attribute::optional(
        "lambda_role_permissions_boundary",
        Type::String,
        &format!(
            "ARN of a managed policy set as the permissions boundary of the attachment \
             Lambda's IAM role (created under the path `/autoheal/`): the most that role may \
             ever do, whatever its inline policy says. README's deployer policy requires it, \
             so a deployer cannot make a role more powerful than the boundary; README gives \
             the boundary document. Default: none. {IN_PLACE}"
        ),
    ))
    .attribute(Attribute::with_default(
        "health_check_grace_period",
        Type::Number,
        n(DEFAULT_HEALTH_CHECK_GRACE_PERIOD),
        &format!(
            "Seconds the Auto Scaling group waits after an instance enters service before it \
             acts on failed health checks: 0 to 7200, default \
             {DEFAULT_HEALTH_CHECK_GRACE_PERIOD}. Leave enough time for the boot and \
             `user_data`. {IN_PLACE}"
        ),
    ))
    .attribute(Attribute::with_default(
        "lifecycle_hook_timeout",
        Type::Number,
        n(DEFAULT_LIFECYCLE_HOOK_TIMEOUT),
        &format!(
            "Seconds a new instance is held by the launch lifecycle hook while the Lambda \
             function attaches the data volume and the Elastic IP: 30 to 7200 (AWS's range), \
             default {DEFAULT_LIFECYCLE_HOOK_TIMEOUT}. If the hook times out, the instance is \
             abandoned and the group launches another. While the previous instance still \
             shuts down holding the volume, the function keeps the hook alive and waits across \
             Lambda's retries (one and two minutes apart): a hook of at least 90 seconds \
             allows one retry, 150 both. {IN_PLACE}"
        ),
    ))
    .attribute(Attribute::with_default(
        "lambda_memory_size",
        Type::Number,
        n(DEFAULT_LAMBDA_MEMORY_SIZE),
        &format!(
            "Memory of the attachment Lambda function in MiB: 128 to 10240, default \
             {DEFAULT_LAMBDA_MEMORY_SIZE}. {IN_PLACE}"
        ),
    ))
    .attribute(Attribute::with_default(
        "lambda_timeout",
        Type::Number,
        n(DEFAULT_LAMBDA_TIMEOUT),
        &format!(
            "Timeout of the attachment Lambda function in seconds: 1 to 900, default \
             {DEFAULT_LAMBDA_TIMEOUT}. It should not exceed `lifecycle_hook_timeout`. \
             With it, the provider sizes the function's event-invoke configuration (the \
             maximum event age covers every retry the hook allows). {IN_PLACE}"
        ),
    ))
    .attribute(Attribute::with_default(
        "lambda_architecture",
        Type::String,
        s(DEFAULT_LAMBDA_ARCHITECTURE),
        &format!(
            "Instruction set of the attachment Lambda function: one of {}. Default \
             `{DEFAULT_LAMBDA_ARCHITECTURE}`. With `handler_zip` it must match the zip's \
             `bootstrap` binary. {IN_PLACE}",
            list(LAMBDA_ARCHITECTURES)
        ),
    ))
    .attribute(Attribute::optional(
        "lambda_reserved_concurrency",
        Type::Number,
        &format!(
            "Reserved concurrency of the attachment Lambda function; 0 or more. Default: none \
             (the function uses the account's unreserved pool). AWS refuses it on accounts \
             whose concurrency quota is low (new accounts often have 10), because the \
             account must keep 100 unreserved. 0 stops the function from running at all, \
             and new instances would then never get the data volume. {IN_PLACE}"
        ),
    ))
    .attribute(Attribute::with_default(
        "log_retention_days",
        Type::Number,
        n(DEFAULT_LOG_RETENTION_DAYS),
        &format!(
            "Days the Lambda function's CloudWatch logs are kept: one of {}. Default \
             {DEFAULT_LOG_RETENTION_DAYS}. {IN_PLACE}",
            LOG_RETENTION_DAYS
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ))
    .attribute(Attribute::optional(
        "handler_zip",
        Type::String,
        &format!(
            "Path to your own build of the attachment Lambda function: a `.zip` file holding \
             an executable `bootstrap` for the `provided.al2023` runtime, built for \
             `lambda_architecture`. Relative paths are resolved against the directory \
             Terraform runs in; the file must exist at plan time. Default: the handler that \
             ships with the provider. A new path updates the function code (a changed file at \
             the same path is not detected). {IN_PLACE}"
        ),
    ))
    .attribute(Attribute::optional(
        "tags",
        Type::map(Type::String),
        &format!(
            "Tags for every AWS object the stack creates (the instance gets them through the \
             Auto Scaling group). Keys 1 to 128 characters, values at most 256; keys starting \
             with `aws:` (reserved by AWS) or `autoheal:` (used by the provider) are refused, \
             and at most {} tags (AWS allows {AWS_MAX_TAGS} per object, the provider adds \
             `{NAME_TAG}` and `{STACK_TAG}`). Each object's `{NAME_TAG}` tag is set by the \
             provider. {IN_PLACE}",
            AWS_MAX_TAGS - PROVIDER_TAG_COUNT
        ),
    ))
}

fn computed(b: Block) -> Block {
    let stable = |name: &str, ty: Type, description: &str| {
        Attribute::computed(name, ty, description).use_state_for_unknown()
    };
    b.attribute(stable("id", Type::String, "Id of the stack: its `name`."))
        .attribute(stable(
            "vpc_id",
            Type::String,
            "Id of the VPC: the one the provider created, or the VPC of `subnet_id`.",
        ))
        .attribute(stable(
            "security_group_id",
            Type::String,
            "Id of the security group of the instance.",
        ))
        .attribute(Attribute::computed(
            "unmanaged_security_group_rules",
            Type::list(Type::String),
            "Rules found in the stack's security group that the configuration does not hold \
             (`ssh_ingress_cidrs`, `ingress` and the default egress to 0.0.0.0/0), such as \
             rules added by hand, e.g. `ingress tcp 3306-3306 from 0.0.0.0/0`. A refresh \
             reports them here and the next apply revokes them, so the plan shows them \
             going. Empty after every apply.",
        ))
        .attribute(stable(
            "volume_id",
            Type::String,
            "Id of the data volume: the one the provider created, or `existing_volume_id`.",
        ))
        .attribute(stable(
            "volume_source_snapshot_id",
            Type::String,
            "Id of the snapshot the data volume was created from (the lineage's final \
         snapshot, `volume_snapshot_id`, or the source of an `existing_volume_id`), as EBS \
         reports it; null for a volume that started empty.",
        ))
        .attribute(stable(
            "allocation_id",
            Type::String,
            "Allocation id of the Elastic IP: the one the provider allocated, or \
         `existing_allocation_id`.",
        ))
        .attribute(stable(
            "public_ip",
            Type::String,
            "The Elastic IP address. It stays the same for the life of the stack, across \
         instance replacements and updates.",
        ))
        .attribute(stable(
            "launch_template_id",
            Type::String,
            "Id of the launch template.",
        ))
        .attribute(stable(
            "launch_template_version",
            Type::Number,
            "Version of the launch template the group launches. A new version is created when \
         `ami`, `instance_type`, `key_name`, `user_data`, `device_name`, `mount_point` or \
         `filesystem` change.",
        ))
        .attribute(stable(
            "autoscaling_group_name",
            Type::String,
            "Name of the Auto Scaling group (`<name>-asg`).",
        ))
        .attribute(stable(
            "lifecycle_hook_name",
            Type::String,
            "Name of the launch lifecycle hook (`<name>-launch-hook`).",
        ))
        .attribute(stable(
            "event_rule_arn",
            Type::String,
            "ARN of the EventBridge rule that invokes the Lambda function on launches.",
        ))
        .attribute(stable(
            "lambda_function_arn",
            Type::String,
            "ARN of the attachment Lambda function (`<name>-attach`).",
        ))
        .attribute(stable(
            "lambda_role_arn",
            Type::String,
            "ARN of the IAM role of the Lambda function (`<name>-<region>-attach`).",
        ))
        .attribute(stable(
            "log_group_name",
            Type::String,
            "Name of the CloudWatch log group of the Lambda function \
         (`/aws/lambda/<name>-attach`).",
        ))
        .attribute(stable(
            "handler_sha256",
            Type::String,
            "Hex-encoded SHA-256 of the deployed Lambda code (the shipped handler or \
         `handler_zip`). Known at plan time, so a new handler shows as a change and an \
         unchanged one never does; a refresh compares it with the CodeSha256 Lambda reports.",
        ))
        .attribute(stable(
            "instance_id",
            Type::String,
            "Id of the instance serving now. It changes when the group replaces the instance \
         (after a failure, or when an update rolls it); a refresh picks up the new one.",
        ))
        .attribute(stable(
            "network_interface_id",
            Type::String,
            "Id of the persistent network interface (`persistent_network_interface`); null \
         without one.",
        ))
        .attribute(stable(
            "network_interface_private_ip",
            Type::String,
            "The private IPv4 address of the persistent network interface: the same on every \
         instance of the stack. Null without one.",
        ))
        .attribute(stable(
            "network_interface_mac_address",
            Type::String,
            "The MAC address of the persistent network interface: the same on every instance \
         of the stack. Null without one.",
        ))
        .attribute(stable(
            "snapshot_rule_arn",
            Type::String,
            "ARN of the EventBridge schedule rule of the scheduled snapshots \
         (`<name>-snapshot`); null without `snapshot_interval`.",
        ))
        .attribute(stable(
            "last_snapshot_id",
            Type::String,
            "Id of the newest completed scheduled snapshot of the data volume, as of the last \
         refresh; null when there is none.",
        ))
        .attribute(stable(
            "last_snapshot_time",
            Type::String,
            "When the newest completed scheduled snapshot was started (RFC 3339, UTC), as of \
         the last refresh: the data it holds is from then. Null when there is none.",
        ))
        .attribute(stable(
            "failover_function_arn",
            Type::String,
            "ARN of the zone-failover Lambda function (`<name>-failover`); null without \
         `failover_zones`.",
        ))
        .attribute(stable(
            "failover_role_arn",
            Type::String,
            "ARN of the failover function's IAM role (`<name>-<region>-failover`); null \
         without `failover_zones`.",
        ))
        .attribute(stable(
            "failover_rule_arn",
            Type::String,
            "ARN of the EventBridge schedule rule that runs the failover check every minute \
         (`<name>-failover-check`); null without `failover_zones`.",
        ))
        .attribute(
            Attribute::optional_computed(
                "active_availability_zone",
                Type::String,
                &format!(
                    "The zone the stack serves from, as of the last refresh: `availability_zone`, \
             or after a zone failover the failover zone it moved to. Null without \
             `failover_zones`, unless the stack serves away from home (the failover was \
             turned off after it moved). Leave it out of the configuration and the plan stays \
             calm after a failover. **Failing back** is setting it to `availability_zone` \
             once that zone is healthy: an in-place update scales the group to 0, waits \
             until the serving volume is detached (no write can follow), snapshots it, \
             restores the snapshot into the home zone as the new `volume_id`, moves the group \
             home and heals the new instance there, with the same Elastic IP and no data \
             lost (docs/zone-failover.md). The volumes it leaves stay, tagged \
             `autoheal:superseded-by`. Only `availability_zone` may be set here: moving to a \
             failover zone is the failover function's. Needs `failover_zones`. With \
             `existing_volume_id` the new volume is kept at destroy, like yours. {IN_PLACE}"
                ),
            )
            .use_state_for_unknown(),
        )
        .attribute(stable(
            "active_volume_id",
            Type::String,
            "The data volume the stack serves from, as of the last refresh: `volume_id`, or \
         after a zone failover the volume restored from the newest scheduled snapshot (the \
         home volume stays, tagged `autoheal:superseded-by`, with any writes made after that \
         snapshot). Null when `active_availability_zone` is.",
        ))
        .attribute(stable(
            "heal_failure_alarm_arn",
            Type::String,
            "ARN of the CloudWatch alarm on failed heals (`<name>-heal-failed`); null without \
         `alarm_actions`.",
        ))
        .attribute(stable(
            "no_in_service_alarm_arn",
            Type::String,
            "ARN of the CloudWatch alarm on a group with no InService instance \
         (`<name>-no-in-service`); null without `alarm_actions`.",
        ))
        .attribute(Attribute::computed(
            "tags_all",
            Type::map(Type::String),
            "All tags applied to the objects from `tags`: `tags` merged with the provider's \
         `default_tags` (tags win).",
        ))
}

fn ingress_block() -> NestedBlock {
    let ports = |which: &str| {
        Attribute::required(
            which,
            Type::Number,
            &format!(
                "The {which} of the port range (0 to 65535; for `icmp`, the ICMP type, or -1 \
                 for all). Ignored (write -1) when `protocol` is `-1`."
            ),
        )
    };
    NestedBlock {
        type_name: "ingress".into(),
        nesting: crate::plugin::schema::Nesting::Set,
        block: Block::new(&format!(
            "An inbound rule of the stack's security group, for the application (SSH has \
             `ssh_ingress_cidrs`). Repeat the block for each rule. The group holds exactly \
             these rules, the SSH rules and the default egress: any other rule found there \
             is reported in `unmanaged_security_group_rules` and revoked by the next apply. \
             Changes are made to the group in place, without touching the instance. \
             {IN_PLACE}"
        ))
        .attribute(Attribute::required(
            "protocol",
            Type::String,
            "`tcp`, `udp`, `icmp`, `icmpv6`, or `-1` for all traffic.",
        ))
        .attribute(ports("from_port"))
        .attribute(ports("to_port"))
        .attribute(Attribute::optional(
            "cidr_blocks",
            Type::list(Type::String),
            "IPv4 CIDR blocks allowed (no host bits set).",
        ))
        .attribute(Attribute::optional(
            "ipv6_cidr_blocks",
            Type::list(Type::String),
            "IPv6 CIDR blocks allowed (no host bits set). The provider's own VPC has no IPv6; \
             these matter with `subnet_id` in a dual-stack subnet.",
        ))
        .attribute(Attribute::optional(
            "description",
            Type::String,
            "Description of the rule, shown in the EC2 console (up to 255 characters). Not \
             compared: a changed description alone changes nothing in AWS.",
        )),
        min_items: 0,
        max_items: 0,
        requires_replace: false,
    }
}

fn timeouts_block() -> NestedBlock {
    let timeout = |op: &str, what: &str| {
        Attribute::optional(
            op,
            Type::String,
            &format!(
                "How long {what} may take, as a Go duration string such as `\"30m\"`, \
                 `\"1h30m\"` or `\"90s\"` (units `h`, `m`, `s`, `ms`, `us`, `ns`; fractions \
                 such as `\"1.5h\"` allowed); must be positive. Default `30m`."
            ),
        )
    };
    NestedBlock::single(
        "timeouts",
        Block::new(
            "Time limits of the operations. Each may be omitted, as may the whole block; the \
             default is 30 minutes each. When a limit is reached the operation stops with an \
             error and the state keeps everything created so far.",
        )
        .attribute(timeout("create", "creating the stack"))
        .attribute(timeout(
            "update",
            "an update (including a rolling replacement of the instance)",
        ))
        .attribute(timeout(
            "delete",
            "destroying the stack (including the final snapshot)",
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::schema::Mode;

    const REPLACING: &[&str] = &[
        "name",
        "availability_zone",
        "subnet_id",
        "vpc_cidr",
        "subnet_cidr",
        "volume_kms_key_id",
        "existing_allocation_id",
        "existing_volume_id",
    ];

    #[test]
    fn exactly_the_documented_attributes_force_replacement() {
        let schema = schema();
        let mut replacing: Vec<_> = schema
            .block
            .attributes
            .iter()
            .filter(|a| a.requires_replace)
            .map(|a| a.name.as_str())
            .collect();
        replacing.sort_unstable();
        let mut expected = REPLACING.to_vec();
        expected.sort_unstable();
        assert_eq!(replacing, expected);
        assert!(schema.block.blocks.iter().all(|b| !b.requires_replace));
    }

    #[test]
    fn descriptions_say_whether_a_change_replaces() {
        for a in &schema().block.attributes {
            assert!(!a.description.is_empty(), "{} has no description", a.name);
            if a.mode == Mode::Computed {
                continue;
            }
            let replaces = a.description.contains(REPLACES);
            let in_place = a.description.contains(IN_PLACE);
            assert_eq!(
                (replaces, in_place),
                (a.requires_replace, !a.requires_replace),
                "{}: {}",
                a.name,
                a.description
            );
        }
    }

    #[test]
    fn modes_and_defaults() {
        let schema = schema();
        let attr = |n: &str| {
            schema
                .block
                .get_attribute(n)
                .unwrap_or_else(|| panic!("{n}"))
        };
        for n in ["name", "availability_zone", "ami"] {
            assert_eq!(attr(n).mode, Mode::Required, "{n}");
        }
        assert_eq!(attr("subnet_id").mode, Mode::OptionalComputed);
        assert!(attr("subnet_id").default.is_none());
        assert_eq!(attr("volume_iops").mode, Mode::OptionalComputed);
        assert_eq!(attr("instance_type").default, Some(s("t3.micro")));
        assert_eq!(attr("ssh_ingress_cidrs").default, Some(Value::List(vec![])));
        assert_eq!(attr("volume_size").default, Some(n(10)));
        assert_eq!(attr("force_detach").default, Some(Value::Bool(false)));
        assert_eq!(attr("tags_all").mode, Mode::Computed);
        assert!(!attr("tags_all").use_state_for_unknown);
        for n in ["id", "vpc_id", "public_ip", "instance_id", "volume_id"] {
            assert!(attr(n).use_state_for_unknown, "{n}");
        }
        let timeouts = schema.block.get_block("timeouts").expect("timeouts block");
        for op in ["create", "update", "delete"] {
            let a = timeouts.block.get_attribute(op).expect(op);
            assert_eq!(a.mode, Mode::Optional);
            assert!(a.default.is_none());
        }
    }

    #[test]
    fn operation_timeouts_default_to_thirty_minutes() {
        let schema = schema();
        let mut v = Value::null_object(&schema.value_type());
        assert_eq!(operation_timeout(&v, Operation::Create), DEFAULT_TIMEOUT);
        let crate::plugin::value::Type::Object(attrs) = schema.value_type() else {
            panic!("object type expected")
        };
        let mut t = Value::null_object(&attrs["timeouts"]);
        t.set_attr("delete", s("1h30m"));
        v.set_attr("timeouts", t);
        assert_eq!(
            operation_timeout(&v, Operation::Delete),
            Duration::from_secs(5400)
        );
        assert_eq!(operation_timeout(&v, Operation::Update), DEFAULT_TIMEOUT);
    }
}

//! Create: stands up the whole stack.
//!
//! Order (independent parts run concurrently; every object is recorded in the [`Stack`] as
//! soon as AWS returns its id, so a failure leaves a state that destroy can clean up):
//!
//! 1. at once: network (VPC, subnet, gateway, routes; or the user's subnet) then the security
//!    group beside the failover zones' subnets (`failover_zones`), then the persistent
//!    network interface (`persistent_network_interface`); the data volume (restored from the
//!    newest final snapshot of a stack of the same name, else `volume_snapshot_id`); the
//!    Elastic IP; the log group; the IAM role; the EventBridge rule (its pattern needs only
//!    the group's name); the alarms (`alarm_actions`: they need only the names);
//! 2. each as soon as what it needs exists: the launch template (its user data names the
//!    volume; its groups are the network's), then the group at size 0 with its launch hook;
//!    the role's inline policy (it names the volume, the address and the interface); with an
//!    interface, the address put on it; the Lambda function, then the rule's target and the
//!    invoke permission (without an interface these do not wait for the network);
//! 3. last, the group at size 1, and a wait until its instance is InService with the volume
//!    (and the interface) attached and the address associated.
//!
//! No instance can launch before step 3, so none escapes the hook, the rule or the function.
//!
//! Every object is made with the marker `autoheal:creating = <name>`, removed from all of
//! them once step 3 is done. Before step 1 the create looks for a stack of its name
//! ([`adopt`]): a finished one is refused ("import it"); the marked objects of a create that
//! never returned are adopted, each step using its leftover instead of making a new one.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::aws::gate::Gate;
use crate::aws::{
    address, alarm, autoscaling_group, ec2_tags, event_rule, iam_role, lambda_function,
    launch_template, log_group, network, network_interface, volume, OpContext,
};

use super::adopt::{self, Leftovers};
use super::converge::{Converger, Presence};
use super::lineage;
use super::names::{self, DerivedName};
use super::policy::PolicyScope;
use super::spec::Spec;
use super::stack::Stack;
use super::steps::{StepError, StepResult};
use super::tagging::{
    creating, new_volume_tags, object_tags, stack_tags, CREATING_TAG, FINAL_SNAPSHOT_TAG,
    LINEAGE_LIVE, UNUSED_TAG,
};
use super::user_data::{user_data_base64, MountParams};

/// The handler's variable naming the persistent network interface (handler/src/settings.rs).
pub const NETWORK_INTERFACE_ENV: &str = "AUTOHEAL_NETWORK_INTERFACE_ID";
/// The handler's variables of the scheduled snapshots (handler/src/settings.rs).
pub const SNAPSHOT_RULE_ENV: &str = "AUTOHEAL_SNAPSHOT_RULE";
pub const SNAPSHOT_RETENTION_ENV: &str = "AUTOHEAL_SNAPSHOT_RETENTION";

/// The settings and shared record of one create.
pub struct Creator<'a> {
    pub ctx: &'a OpContext,
    pub spec: &'a Spec,
    /// The handler zip to deploy.
    pub zip: &'a [u8],
    pub stack: Mutex<Stack>,
    /// The volume's IOPS and throughput as EBS reports them (AWS's baseline when the
    /// configuration leaves them out), so the state has them without waiting for a read.
    volume_performance: Mutex<Option<(Option<i32>, Option<i32>)>>,
    /// What an interrupted create of this name left (found by `run` before step 1).
    leftovers: Leftovers,
    /// The user's `existing_volume_id`, checked by `run` before anything is made.
    existing_volume: Option<volume::VolumeInfo>,
}

fn derived(d: DerivedName, spec: &Spec) -> String {
    d.for_stack(&spec.name)
}

/// Whether a volume found by its `autoheal:creating` marker is one this create would have
/// made: encrypted, in the stack's zone, with the configured KMS key (when
/// `volume_kms_key_id` names a key by id or ARN; an alias cannot be compared without KMS),
/// and carrying the stack's tag. `Err` says what differs.
pub(crate) fn adoptable_volume(v: &volume::VolumeInfo, spec: &Spec) -> Result<(), String> {
    if !v.encrypted {
        return Err("it is not encrypted".into());
    }
    if v.availability_zone != spec.availability_zone {
        return Err(format!(
            "it is in {}, not {}",
            v.availability_zone, spec.availability_zone
        ));
    }
    if let Some(key) = spec.volume_kms_key_id.as_deref() {
        let comparable = !key.starts_with("alias/") && !key.contains(":alias/");
        let key_id = key.rsplit('/').next().unwrap_or(key);
        let matches = v
            .kms_key_id
            .as_deref()
            .is_some_and(|k| k == key || k.ends_with(&format!("key/{key_id}")));
        if comparable && !matches {
            return Err(format!(
                "its KMS key {:?} is not volume_kms_key_id {key:?}",
                v.kms_key_id
            ));
        }
    }
    if v.tags.get(names::STACK_TAG).map(String::as_str) != Some(spec.name.as_str()) {
        return Err(format!(
            "it lacks the tag {} = {}",
            names::STACK_TAG,
            spec.name
        ));
    }
    Ok(())
}

impl<'a> Creator<'a> {
    pub fn new(ctx: &'a OpContext, spec: &'a Spec, zip: &'a [u8]) -> Self {
        Creator {
            ctx,
            spec,
            zip,
            stack: Mutex::new(Stack::default()),
            volume_performance: Mutex::new(None),
            leftovers: Leftovers::default(),
            existing_volume: None,
        }
    }

    /// The shared per-object steps, in create mode (new objects carry the marker).
    fn converger(&self) -> Converger<'_> {
        Converger {
            ctx: self.ctx,
            spec: self.spec,
            creating: true,
        }
    }

    fn record(&self, f: impl FnOnce(&mut Stack)) {
        f(&mut self.stack.lock().unwrap_or_else(|p| p.into_inner()));
    }

    pub fn snapshot(&self) -> Stack {
        self.stack.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// (IOPS, throughput) of the data volume, once the volume step has seen it.
    pub fn volume_performance(&self) -> Option<(Option<i32>, Option<i32>)> {
        *self
            .volume_performance
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Runs the whole create. On error the record holds what exists.
    pub async fn run(&mut self) -> Result<(), Vec<StepError>> {
        self.leftovers = adopt::find(self.ctx, self.spec)
            .await
            .map_err(|e| vec![e])?;
        if !self.leftovers.is_empty() {
            tracing::warn!(
                stack = self.spec.name,
                adopted = self.leftovers.summary(),
                "an earlier create of this stack was interrupted: adopting what it made"
            );
        }
        self.existing_volume = self.check_existing_volume().await.map_err(|e| vec![e])?;
        self.build().await?;
        self.unmark().await;
        Ok(())
    }

    /// The user's `existing_volume_id`, before anything is made: it must exist, be in the
    /// stack's zone, and be encrypted unless `allow_unencrypted_volume` says otherwise (every
    /// other disk of the stack is encrypted; EBS cannot encrypt a volume in place).
    async fn check_existing_volume(&self) -> Result<Option<volume::VolumeInfo>, StepError> {
        let (ctx, spec) = (self.ctx, self.spec);
        let Some(id) = &spec.existing_volume_id else {
            return Ok(None);
        };
        let v = volume::find(ctx, id)
            .await
            .step("find", format!("volume {id}"))?
            .ok_or_else(|| {
                StepError::problem(
                    "use",
                    format!("volume {id}"),
                    format!(
                        "existing_volume_id: volume {id} does not exist in this account and region"
                    ),
                )
            })?;
        if v.availability_zone != spec.availability_zone {
            return Err(StepError::problem(
                "use",
                format!("volume {id}"),
                format!(
                    "existing_volume_id: volume {id} is in {}, but availability_zone is {}; \
                     an EBS volume can only attach to instances in its own zone",
                    v.availability_zone, spec.availability_zone
                ),
            ));
        }
        if !v.encrypted && !spec.allow_unencrypted_volume {
            return Err(StepError::problem(
                "use",
                format!("volume {id}"),
                format!(
                    "existing_volume_id: volume {id} is not encrypted. Every disk of the stack \
                     is encrypted, and EBS cannot encrypt a volume in place: snapshot it, copy \
                     the snapshot with encryption, and give that copy as `volume_snapshot_id` \
                     (without `existing_volume_id`); or set `allow_unencrypted_volume = true` \
                     to use it as it is."
                ),
            ));
        }
        Ok(Some(v))
    }

    /// Steps 1 to 3. Steps 1 and 2 run as two sides that hand each other what the other
    /// needs as soon as it exists, so neither waits for more than AWS's own dependencies:
    ///
    /// - the network side: network, security group, interface; then the launch template (it
    ///   needs the volume, from the other side) and the group at size 0;
    /// - the Lambda side: volume, address, log group, role, rule, alarms; then the role's
    ///   policy, the address on the interface and the function with its target and
    ///   permission (with `persistent_network_interface` these need the interface, from the
    ///   network side; without, they need nothing of it and do not wait for the network).
    ///
    /// A side that fails drops its half of the hand-over, and the other stops where it
    /// needed it (reporting nothing more: the failed side says why).
    async fn build(&self) -> Result<(), Vec<StepError>> {
        use tokio::sync::oneshot;
        let wants_interface = self.spec.persistent_network_interface;
        let (volume_tx, volume_rx) = oneshot::channel::<String>();
        let (interface_tx, interface_rx) = oneshot::channel::<Option<String>>();

        let network_side = async move {
            let (subnet_id, security_group_id, interface) =
                self.network().await.map_err(|e| vec![e])?;
            let interface_id = interface.map(|n| n.network_interface_id);
            let _ = interface_tx.send(interface_id.clone());
            let Ok(volume_id) = volume_rx.await else {
                return Err(Vec::new());
            };
            let (template_id, version) = self
                .launch_template(&security_group_id, &volume_id)
                .await
                .map_err(|e| vec![e])?;
            self.group(&template_id, version, &subnet_id)
                .await
                .map_err(|e| vec![e])?;
            Ok(interface_id)
        };

        let lambda_side = async move {
            let (vol, addr, logs, role, rule, alarms) = tokio::join!(
                self.volume(),
                self.address(),
                self.log_group(),
                self.role(),
                self.rule(),
                self.alarms(),
            );
            let mut errors: Vec<StepError> = Vec::new();
            let vol = keep(vol, &mut errors);
            if let Some(v) = &vol {
                self.record(|s| {
                    s.volume_source_snapshot_id = v.snapshot_id.clone();
                    // A new stack serves from its home zone and volume (reported with
                    // the zone failover only: see `active`).
                    let (zone, volume) =
                        super::active::serving(self.spec, Some(&v.volume_id), None);
                    s.active_volume_id = volume;
                    s.active_availability_zone = zone;
                });
                *self
                    .volume_performance
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some((v.iops, v.throughput));
            }
            let addr = keep(addr, &mut errors);
            keep(logs, &mut errors);
            keep(alarms, &mut errors);
            let role = keep(role, &mut errors);
            let rule = keep(rule, &mut errors);
            let (Some(volume), Some(allocation_id), Some((role_arn, role_made)), Some(rule_arn)) =
                (vol, addr, role, rule)
            else {
                return Err(errors);
            };
            if !errors.is_empty() {
                return Err(errors);
            }
            let _ = volume_tx.send(volume.volume_id.clone());
            let interface_id = if wants_interface {
                match interface_rx.await {
                    Ok(id) => id,
                    Err(_) => return Err(Vec::new()),
                }
            } else {
                None
            };
            // The function needs the role (not its policy: that is in place before step 3,
            // the first launch), the volume, the address, the interface and the rule.
            let (policy, moved, function) = tokio::join!(
                self.role_policy(&role_arn, &volume, &allocation_id, interface_id.as_deref()),
                self.address_on_interface(&allocation_id, interface_id.as_deref()),
                self.function(
                    (&role_arn, role_made),
                    &volume.volume_id,
                    &allocation_id,
                    interface_id.as_deref(),
                    &rule_arn
                ),
            );
            keep(policy, &mut errors);
            keep(moved, &mut errors);
            keep(function, &mut errors);
            if !errors.is_empty() {
                return Err(errors);
            }
            Ok((volume, allocation_id))
        };

        let (network, lambda) = tokio::join!(network_side, lambda_side);
        let (interface_id, (volume, allocation_id)) = match (network, lambda) {
            (Ok(n), Ok(l)) => (n, l),
            (n, l) => {
                let errors: Vec<StepError> =
                    [n.err(), l.err()].into_iter().flatten().flatten().collect();
                debug_assert!(!errors.is_empty(), "a side stopped without a failure");
                return Err(errors);
            }
        };

        // Step 3, beside the zone failover's function (nothing needs it before the stack
        // serves; it needs every zone's subnet, made by now).
        let failover = async {
            if !self.spec.has_failover() {
                return Ok(());
            }
            let subnets = super::update::serving_subnets(self.spec, &self.snapshot());
            // Found by name and converged, not marked: a retried create or a destroy finds them
            // by their names, and the step makes no object the marker must guard.
            let objects = Converger {
                ctx: self.ctx,
                spec: self.spec,
                creating: false,
            }
            .failover(self.zip, &volume, &allocation_id, &subnets)
            .await?;
            if let Some(o) = objects {
                self.record(|s| {
                    s.failover_function_arn = Some(o.function_arn);
                    s.failover_role_arn = Some(o.role_arn);
                    s.failover_rule_arn = Some(o.rule_arn);
                });
            }
            Ok::<(), StepError>(())
        };
        let (served, failover) = tokio::join!(
            self.scale_up_and_wait(&volume.volume_id, &allocation_id, interface_id.as_deref()),
            failover
        );
        let errors: Vec<StepError> = [served.err(), failover.err()]
            .into_iter()
            .flatten()
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The leftover of one kind to adopt: the first found (a second one means two creates
    /// were interrupted in the same step; it is named in the log and left alone).
    fn leftover<'l>(&self, kind: &str, ids: &'l [String]) -> Option<&'l String> {
        if ids.len() > 1 {
            tracing::warn!(
                stack = self.spec.name,
                kind,
                ?ids,
                "several objects of an interrupted create: adopting the first, the others \
                 keep their autoheal:creating tag"
            );
        }
        ids.first()
    }

    /// Takes `autoheal:creating` off every object of the finished stack: the named objects
    /// first, then every EC2 object in one DeleteTags, the commit point: while any EC2 object
    /// is still marked, a create of this name adopts the named ones too, marked or not (see
    /// [`adopt::find`]). A failure here leaves a working stack: it is logged, not reported as
    /// a failed create (which would make Terraform replace the stack).
    async fn unmark(&self) {
        let (ctx, spec) = (self.ctx, self.spec);
        // The marker, and the create token a create without ClientToken put on its objects.
        let key = vec![
            CREATING_TAG.to_string(),
            crate::aws::context::CREATE_TOKEN_TAG.to_string(),
        ];
        let none = Default::default();
        let stack = self.snapshot();
        let group = derived(names::AUTOSCALING_GROUP, spec);
        let function = stack.lambda_function_arn.unwrap_or_default();
        let role = names::lambda_role_name(&spec.name, ctx.region());
        let rule = stack.event_rule_arn.unwrap_or_default();
        let logs = derived(names::LOG_GROUP, spec);
        let logs = async {
            // Its ARN follows from the function's; looked up only if that is not at hand.
            let arn = match log_group::arn_beside_function(&function, &logs) {
                Some(arn) => Some(arn),
                None => log_group::find(ctx, &logs).await?.and_then(|l| l.arn),
            };
            match arn {
                Some(arn) => log_group::set_tags(ctx, &arn, &none, &key).await,
                None => Ok(()),
            }
        };
        // The alarms (`alarm_actions`) were tagged like every object the create made.
        let alarm_arns: Vec<String> = [stack.heal_failure_alarm_arn, stack.no_in_service_alarm_arn]
            .into_iter()
            .flatten()
            .collect();
        let alarms = async {
            for arn in &alarm_arns {
                alarm::set_tags(ctx, arn, &none, &key).await?;
            }
            Ok(())
        };
        // The snapshot schedule's rule (`snapshot_interval`) was tagged like the launch rule.
        let schedule = stack.snapshot_rule_arn.clone();
        let rules = async {
            event_rule::set_tags(ctx, &rule, &none, &key).await?;
            match &schedule {
                Some(arn) => event_rule::set_tags(ctx, arn, &none, &key).await,
                None => Ok(()),
            }
        };
        // The marked EC2 objects are looked up beside the named objects' untagging; only
        // their DeleteTags, the commit point, waits for it.
        let (a, b, c, d, e, f, marked) = tokio::join!(
            autoscaling_group::set_tags(ctx, &group, &none, &key),
            lambda_function::set_tags(ctx, &function, &none, &key),
            iam_role::set_tags(ctx, &role, &none, &key),
            rules,
            logs,
            alarms,
            ec2_tags::find_tagged(ctx, CREATING_TAG, &spec.name),
        );
        let ec2 = async {
            let ids: Vec<String> = marked?.into_iter().map(|t| t.id).collect();
            ec2_tags::set(ctx, &ids, &none, &key).await
        }
        .await;
        for (what, result) in [
            ("Auto Scaling group", a),
            ("Lambda function", b),
            ("IAM role", c),
            ("EventBridge rules", d),
            ("log group", e),
            ("CloudWatch alarms", f),
            ("EC2 objects", ec2),
        ] {
            if let Err(e) = result {
                tracing::warn!(
                    stack = spec.name,
                    error = %e,
                    "could not remove the {CREATING_TAG} tag from the {what}; the stack works, \
                     but a create of this name without state would adopt it"
                );
            }
        }
    }

    /// Network, security group and the persistent network interface (if the spec has one);
    /// returns (subnet id, security group id, interface).
    async fn network(
        &self,
    ) -> Result<(String, String, Option<network_interface::InterfaceInfo>), StepError> {
        let (ctx, spec) = (self.ctx, self.spec);
        let (vpc_id, subnet_id) = match &spec.subnet_id {
            Some(subnet_id) => {
                let info = network::find_subnet(ctx, subnet_id)
                    .await
                    .step("find", format!("subnet {subnet_id}"))?
                    .ok_or_else(|| {
                        StepError::problem(
                            "use",
                            format!("subnet {subnet_id}"),
                            format!("subnet_id: subnet {subnet_id} does not exist in this account and region"),
                        )
                    })?;
                if info.availability_zone != spec.availability_zone {
                    return Err(StepError::problem(
                        "use",
                        format!("subnet {subnet_id}"),
                        format!(
                            "subnet_id: subnet {subnet_id} is in {}, but availability_zone is {}; \
                             they must match (the data volume lives in one zone)",
                            info.availability_zone, spec.availability_zone
                        ),
                    ));
                }
                self.record(|s| {
                    s.vpc_id = Some(info.vpc_id.clone());
                    s.subnet_id = Some(subnet_id.clone());
                });
                (info.vpc_id, subnet_id.clone())
            }
            None => {
                if let Some(adopted) = self.adopt_network().await? {
                    adopted
                } else {
                    self.create_network().await?
                }
            }
        };
        let left = self.leftover("security group", &self.leftovers.security_group_ids);
        let converger = self.converger();
        // The failover zones' subnets beside the security group: each needs only the VPC.
        let failover = async {
            if !spec.has_failover_zones() {
                return Ok(());
            }
            let ids = converger
                .failover_subnets(&vpc_id, &subnet_id, |zone, id| {
                    self.record(|s| {
                        s.failover_subnet_ids
                            .insert(zone.to_string(), id.to_string());
                    })
                })
                .await?;
            self.record(|s| s.failover_subnet_ids = ids);
            Ok::<(), StepError>(())
        };
        let (sg, failover) = tokio::join!(
            converger.security_group(left.map(String::as_str), &vpc_id, |id| {
                self.record(|s| s.security_group_id = Some(id.to_string()))
            }),
            failover
        );
        let (sg, _) = sg?;
        failover?;
        self.record(|s| s.security_group_id = Some(sg.clone()));
        let left = self.leftover("network interface", &self.leftovers.network_interface_ids);
        let groups: Vec<String> = std::iter::once(sg.clone())
            .chain(self.spec.security_group_ids.iter().cloned())
            .collect();
        let interface = self
            .converger()
            .network_interface(left.map(String::as_str), &subnet_id, &groups, |n| {
                self.record(|s| record_interface(s, Some(n)))
            })
            .await?;
        self.record(|s| record_interface(s, interface.as_ref()));
        Ok((subnet_id, sg, interface))
    }

    /// Puts the Elastic IP on the persistent network interface, if there is one: from then on
    /// it follows the interface from instance to instance.
    async fn address_on_interface(
        &self,
        allocation_id: &str,
        interface: Option<&str>,
    ) -> Result<(), StepError> {
        let Some(interface) = interface else {
            return Ok(());
        };
        address::associate(
            self.ctx,
            allocation_id,
            address::Holder::Interface(interface),
        )
        .await
        .step(
            "associate",
            format!("Elastic IP {allocation_id} with network interface {interface}"),
        )
    }

    /// The alarms (`alarm_actions`); their ARNs go into the record. Without `alarm_actions`
    /// no call at all: a new stack has none to delete.
    async fn alarms(&self) -> Result<(), StepError> {
        if !self.spec.has_alarms() {
            return Ok(());
        }
        let (heal, serve) = self.converger().alarms().await?;
        self.record(|s| {
            s.heal_failure_alarm_arn = heal;
            s.no_in_service_alarm_arn = serve;
        });
        Ok(())
    }

    /// The network of an interrupted create: adopted when it was finished (its security group,
    /// made right after it, exists); an unfinished one is deleted (it holds nothing yet) so
    /// that [`Self::create_network`] makes it whole. Returns (VPC id, subnet id) when adopted.
    async fn adopt_network(&self) -> Result<Option<(String, String)>, StepError> {
        let ctx = self.ctx;
        let left = &self.leftovers;
        let Some(vpc_id) = self.leftover("VPC", &left.vpc_ids) else {
            // A gateway is made beside its VPC: one whose VPC never came is in no network
            // and holds nothing. Deleted, unless it is attached (to someone's VPC: then it
            // is not ours to touch, whatever its tags say).
            network::delete_unattached_gateways_of(ctx, &left.internet_gateway_ids)
                .await
                .step("delete", "the internet gateway of an interrupted create")?;
            return Ok(None);
        };
        let subnet = self.leftover("subnet", &left.subnet_ids);
        if let (Some(subnet_id), false) = (subnet, left.security_group_ids.is_empty()) {
            self.record(|s| {
                s.vpc_id = Some(vpc_id.clone());
                s.subnet_id = Some(subnet_id.clone());
            });
            return Ok(Some((vpc_id.clone(), subnet_id.clone())));
        }
        tracing::info!(
            vpc_id,
            "deleting the unfinished network of an interrupted create, to make it again"
        );
        // Also deletes a gateway made but never attached (it is not in the VPC). No gate:
        // the stack's interface and address come after a finished network, so none is
        // mapped in this one.
        let open = Gate::open();
        network::delete_vpc(
            ctx,
            vpc_id,
            (names::STACK_TAG, &self.spec.name),
            &open,
            &open,
        )
        .await
        .step("delete", format!("unfinished VPC {vpc_id}"))?;
        Ok(None)
    }

    /// A new VPC with its subnet, gateway and routes; returns (VPC id, subnet id). The gateway
    /// is made beside the VPC; once the VPC is available, what needs only it is made at once
    /// (its DNS attributes, the subnet, the gateway's attachment, the route table), then the
    /// route (it needs the attached gateway) beside the table's association (it needs the
    /// subnet).
    async fn create_network(&self) -> Result<(String, String), StepError> {
        let (ctx, spec) = (self.ctx, self.spec);
        let (vpc_tags, subnet_tags, igw_tags, table_tags) = (
            creating(spec, object_tags(spec, names::VPC_NAME_TAG)),
            creating(spec, object_tags(spec, names::SUBNET_NAME_TAG)),
            creating(spec, object_tags(spec, names::INTERNET_GATEWAY_NAME_TAG)),
            creating(spec, object_tags(spec, names::ROUTE_TABLE_NAME_TAG)),
        );
        // The gateway beside the VPC: it needs one only to be attached.
        let made_vpc = |id: &str| self.record(|s| s.vpc_id = Some(id.to_string()));
        let (vpc, igw) = tokio::join!(
            network::create_vpc(ctx, &spec.vpc_cidr, &vpc_tags, made_vpc),
            network::create_internet_gateway(ctx, &igw_tags),
        );
        let vpc_id = match vpc {
            Ok(id) => id,
            Err(e) => {
                // Without a VPC in the state, no destroy would find the gateway: it goes
                // now (if that fails too, the next create of this name deletes it: it is
                // marked as this create's, and attached to nothing).
                if let Ok(igw) = &igw {
                    if let Err(d) = network::delete_internet_gateway(ctx, igw, None).await {
                        tracing::warn!(
                            internet_gateway_id = igw,
                            error = %d,
                            "could not delete the gateway made beside a VPC that failed"
                        );
                    }
                }
                return Err(e).step("create", "VPC");
            }
        };
        // Failed: the VPC is in the state, and the destroy deletes the stack's gateways
        // that are attached to nothing.
        let igw = igw.step("create", "internet gateway")?;
        let (dns, subnet, attached, table) = tokio::join!(
            network::enable_dns(ctx, &vpc_id),
            network::create_subnet(
                ctx,
                &vpc_id,
                &spec.subnet_cidr,
                &spec.availability_zone,
                &subnet_tags,
            ),
            network::attach_internet_gateway(ctx, &igw, &vpc_id),
            network::create_route_table(ctx, &vpc_id, &table_tags),
        );
        // The subnet first: recorded even when another part failed.
        let subnet_id = subnet.step("create", "subnet")?;
        self.record(|s| s.subnet_id = Some(subnet_id.clone()));
        dns.step("enable DNS on", format!("VPC {vpc_id}"))?;
        attached.step("attach", format!("internet gateway {igw} to VPC {vpc_id}"))?;
        let table = table.step("create", "route table")?;
        let (route, association) = tokio::join!(
            network::route_to_gateway(ctx, &table, &igw),
            network::associate_route_table(ctx, &table, &subnet_id),
        );
        route.step("create", format!("default route of route table {table}"))?;
        association.step(
            "associate",
            format!("route table {table} with subnet {subnet_id}"),
        )?;
        Ok((vpc_id, subnet_id))
    }

    async fn volume(&self) -> Result<volume::VolumeInfo, StepError> {
        let (ctx, spec) = (self.ctx, self.spec);
        if let Some(v) = &self.existing_volume {
            self.record(|s| s.volume_id = Some(v.volume_id.clone()));
            return Ok(v.clone());
        }
        // A volume an interrupted create left, only if it is what this create would make: a
        // tag proves nothing about the object (anyone may put one on). Others are left alone.
        for id in &self.leftovers.volume_ids {
            volume::wait_created(ctx, id)
                .await
                .step("wait for", format!("volume {id}"))?;
            let Some(v) = volume::find(ctx, id)
                .await
                .step("find", format!("volume {id}"))?
            else {
                continue;
            };
            match adoptable_volume(&v, spec) {
                Ok(()) => {
                    self.record(|s| s.volume_id = Some(id.clone()));
                    return Ok(v);
                }
                Err(why) => tracing::warn!(
                    volume_id = id,
                    why,
                    "a volume marked as this stack's interrupted create is not adopted"
                ),
            }
        }
        // Which data it starts from: see `lineage`.
        // The newest final snapshot that is one (see `lineage::restorable`); one that only
        // carries the tags is skipped, and said so.
        let mut newest = None;
        for snap in volume::completed_final_snapshots(
            ctx,
            names::STACK_TAG,
            &spec.name,
            (FINAL_SNAPSHOT_TAG, LINEAGE_LIVE),
        )
        .await
        .step("find", "final snapshot of a previous stack")?
        {
            let source = volume::find(ctx, &snap.volume_id)
                .await
                .step("find", format!("volume {}", snap.volume_id))?;
            match lineage::restorable(&snap, &spec.name, source.as_ref()) {
                Ok(()) => {
                    newest = Some(snap);
                    break;
                }
                Err(why) => tracing::warn!(
                    snapshot_id = snap.snapshot_id,
                    why,
                    "a snapshot tagged as a final snapshot of this stack is not restored"
                ),
            }
        }
        let source = lineage::choose(spec.volume_snapshot_id.as_deref(), newest.as_ref());
        tracing::info!(
            stack = spec.name,
            snapshot_id = source.snapshot_id,
            reason = source.reason,
            "the data volume's source"
        );
        let snapshot_id = source.snapshot_id.as_deref();
        let new = volume::NewVolume {
            availability_zone: &spec.availability_zone,
            size: spec.volume_size,
            volume_type: &spec.volume_type,
            iops: spec.volume_iops,
            throughput: spec.volume_throughput,
            kms_key_id: spec.volume_kms_key_id.as_deref(),
            snapshot_id,
        };
        let id = volume::create(ctx, &new, &creating(spec, new_volume_tags(spec)), |id| {
            self.record(|s| s.volume_id = Some(id.to_string()))
        })
        .await
        .step("create", "data volume")?;
        volume::find(ctx, &id)
            .await
            .step("find", format!("volume {id}"))?
            .ok_or_else(|| {
                StepError::problem(
                    "find",
                    format!("volume {id}"),
                    "the new volume is not listed",
                )
            })
    }

    async fn address(&self) -> Result<String, StepError> {
        let known = self.leftover("Elastic IP", &self.leftovers.allocation_ids);
        let info = self
            .converger()
            .address(known.map(String::as_str))
            .await?
            .info;
        self.record(|s| {
            s.allocation_id = Some(info.allocation_id.clone());
            s.public_ip = Some(info.public_ip.clone());
        });
        Ok(info.allocation_id)
    }

    async fn log_group(&self) -> Result<(), StepError> {
        let name = derived(names::LOG_GROUP, self.spec);
        self.converger()
            .log_group(presence(self.leftovers.log_group), || {
                self.record(|s| s.log_group_name = Some(name.clone()))
            })
            .await
    }

    /// The role's ARN, and whether it was made now.
    async fn role(&self) -> Result<(String, bool), StepError> {
        let (arn, made) = self
            .converger()
            .role(presence(self.leftovers.role_arn.is_some()))
            .await?;
        self.record(|s| s.lambda_role_arn = Some(arn.clone()));
        Ok((arn, made))
    }

    async fn rule(&self) -> Result<String, StepError> {
        let arn = self.converger().rule(presence(self.leftovers.rule)).await?;
        self.record(|s| s.event_rule_arn = Some(arn.clone()));
        Ok(arn)
    }

    async fn role_policy(
        &self,
        role_arn: &str,
        volume: &volume::VolumeInfo,
        allocation_id: &str,
        interface: Option<&str>,
    ) -> Result<(), StepError> {
        self.converger()
            .role_policy(role_arn, volume, allocation_id, interface)
            .await
    }

    async fn launch_template(
        &self,
        security_group_id: &str,
        volume_id: &str,
    ) -> Result<(String, i64), StepError> {
        let name = derived(names::LAUNCH_TEMPLATE, self.spec);
        let data = template_data(self.ctx, self.spec, security_group_id, volume_id).await?;
        let (id, version) =
            match self.leftover("launch template", &self.leftovers.launch_template_ids) {
                // Adopted: a new version with this create's data (it names this volume and group).
                Some(id) => {
                    self.record(|s| s.launch_template_id = Some(id.clone()));
                    let version = launch_template::create_version(self.ctx, id, &data)
                        .await
                        .step("create a version of", format!("launch template {name}"))?;
                    (id.clone(), version)
                }
                None => launch_template::create(
                    self.ctx,
                    &name,
                    &data,
                    &creating(self.spec, object_tags(self.spec, names::LAUNCH_TEMPLATE)),
                )
                .await
                .step("create", format!("launch template {name}"))?,
            };
        self.record(|s| {
            s.launch_template_id = Some(id.clone());
            s.launch_template_version = Some(version);
        });
        Ok((id, version))
    }

    /// `role`: the role's ARN, and whether it was made now (an adopted function's grant must
    /// then be renewed).
    async fn function(
        &self,
        (role_arn, role_made): (&str, bool),
        volume_id: &str,
        allocation_id: &str,
        interface: Option<&str>,
        rule_arn: &str,
    ) -> Result<(), StepError> {
        let sha = crate::handler_zip::sha256_hex(self.zip);
        let function_arn = self
            .converger()
            .function(
                presence(self.leftovers.function),
                self.zip,
                role_arn,
                role_made,
                volume_id,
                allocation_id,
                interface,
                rule_arn,
                |arn| {
                    self.record(|s| {
                        s.lambda_function_arn = Some(arn.to_string());
                        s.handler_sha256 = Some(sha);
                    })
                },
            )
            .await?;
        // The snapshot schedule needs the function (its target and permission name it).
        let schedule = self
            .converger()
            .snapshot_schedule(presence(self.leftovers.function), &function_arn)
            .await?;
        self.record(|s| s.snapshot_rule_arn = schedule);
        Ok(())
    }

    async fn group(
        &self,
        template_id: &str,
        version: i64,
        subnet_id: &str,
    ) -> Result<(), StepError> {
        let spec = self.spec;
        let name = derived(names::AUTOSCALING_GROUP, spec);
        let hook = derived(names::LIFECYCLE_HOOK, spec);
        let mut tags = stack_tags(spec);
        tags.insert(
            names::NAME_TAG.to_string(),
            names::INSTANCE_NAME_TAG.for_stack(&spec.name),
        );
        let object = format!("Auto Scaling group {name}");
        if self.leftovers.group {
            // Adopted: made with its hook in one call; metrics and the template version may be
            // from before.
            self.record(|s| {
                s.autoscaling_group_name = Some(name.clone());
                s.lifecycle_hook_name = Some(hook.clone());
            });
            self.converger().hook().await?;
            autoscaling_group::update(
                self.ctx,
                &name,
                Some((template_id, version)),
                Some(spec.health_check_grace_period),
            )
            .await
            .step("update", object.clone())?;
            return autoscaling_group::enable_metrics(self.ctx, &name)
                .await
                .step("enable the metrics of", object);
        }
        autoscaling_group::create(
            self.ctx,
            &autoscaling_group::NewGroup {
                name: &name,
                launch_template_id: template_id,
                launch_template_version: version,
                subnet_id,
                health_check_grace_period: spec.health_check_grace_period,
                hook_name: &hook,
                hook_timeout: spec.lifecycle_hook_timeout,
            },
            &tags,
            // Not propagated: instances are never part of an unfinished create.
            &creating(spec, Default::default()),
            || {
                self.record(|s| {
                    s.autoscaling_group_name = Some(name.clone());
                    s.lifecycle_hook_name = Some(hook.clone());
                })
            },
        )
        .await
        .step("create", object)
    }

    async fn scale_up_and_wait(
        &self,
        volume_id: &str,
        allocation_id: &str,
        interface: Option<&str>,
    ) -> Result<(), StepError> {
        let name = derived(names::AUTOSCALING_GROUP, self.spec);
        // From here an instance may write to the volume: the proof that none did goes first
        // (a failure before the scale-up leaves a volume that gets a final snapshot, which is
        // the safe side). A user's volume never carried it.
        if self.spec.existing_volume_id.is_none() {
            ec2_tags::set(
                self.ctx,
                &[volume_id.to_string()],
                &Default::default(),
                &[UNUSED_TAG.to_string()],
            )
            .await
            .step("mark as used", format!("data volume {volume_id}"))?;
        }
        autoscaling_group::set_size(self.ctx, &name, 1)
            .await
            .step("scale up", format!("Auto Scaling group {name}"))?;
        tracing::info!(
            group = name,
            "waiting for the first instance to get the volume and the address"
        );
        let served = Served {
            volume_id,
            allocation_id,
            interface,
        };
        let instance = wait_served(self.ctx, &name, None, &served)
            .await
            .step("wait for", format!("the first instance of {name}"))?;
        tracing::info!(
            instance,
            "instance in service with the data volume and the Elastic IP"
        );
        self.record(|s| s.instance_id = Some(instance));
        Ok(())
    }
}

/// A leftover of an interrupted create may exist; otherwise the object is made without a look.
fn presence(left_over: bool) -> Presence {
    if left_over {
        Presence::Unknown
    } else {
        Presence::Absent
    }
}

fn keep<T>(r: Result<T, StepError>, errors: &mut Vec<StepError>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            errors.push(e);
            None
        }
    }
}

/// What a serving instance holds once its heal is done.
pub struct Served<'a> {
    pub volume_id: &'a str,
    pub allocation_id: &'a str,
    /// The persistent network interface, which then carries the address.
    pub interface: Option<&'a str>,
}

/// Waits until the group has an InService instance (other than `not`) that holds the volume,
/// the interface (if any) and the address; returns its id.
pub async fn wait_served(
    ctx: &OpContext,
    group: &str,
    not: Option<&str>,
    served: &Served<'_>,
) -> Result<String, crate::aws::AwsError> {
    autoscaling_group::wait_in_service(ctx, group, not, |instance| async move {
        let (volume_id, allocation_id) = (served.volume_id, served.allocation_id);
        // Three independent reads, at once; judged in the heal's order below.
        let interface = async {
            match served.interface {
                Some(eni) => network_interface::find(ctx, eni).await,
                None => Ok(None),
            }
        };
        let (v, n, a) = tokio::join!(
            volume::find(ctx, volume_id),
            interface,
            address::find(ctx, allocation_id)
        );
        let attached = v?.as_ref().is_some_and(|v| {
            v.attachments
                .iter()
                .any(|(i, state, _)| *i == instance && state == "attached")
        });
        if !attached {
            return Ok(Some(format!("volume {volume_id} not attached to it yet")));
        }
        let n = n?;
        if let Some(eni) = served.interface {
            let here = n
                .as_ref()
                .and_then(|n| n.attachment.as_ref())
                .is_some_and(|(i, _, state)| *i == instance && state == "attached");
            if !here {
                return Ok(Some(format!(
                    "network interface {eni} not attached to it yet"
                )));
            }
        }
        let a = a?;
        let on = match served.interface {
            Some(eni) => a.and_then(|a| a.network_interface_id).as_deref() == Some(eni),
            None => a.and_then(|a| a.instance_id).as_deref() == Some(instance.as_str()),
        };
        if !on {
            return Ok(Some(format!(
                "address {allocation_id} not associated with it yet"
            )));
        }
        Ok(None)
    })
    .await
}

/// Writes the interface's id and addresses into a state (`None`: no interface).
pub fn record_interface_in_state(
    state: &mut crate::plugin::value::Value,
    n: Option<&network_interface::InterfaceInfo>,
) {
    let mut s = Stack::default();
    record_interface(&mut s, n);
    for (attr, v) in [
        ("network_interface_id", s.network_interface_id),
        (
            "network_interface_private_ip",
            s.network_interface_private_ip,
        ),
        (
            "network_interface_mac_address",
            s.network_interface_mac_address,
        ),
    ] {
        state.set_attr(attr, crate::plugin::value::Value::from(v));
    }
}

/// Writes the interface's id and addresses into the record (`None`: no interface).
pub fn record_interface(s: &mut Stack, n: Option<&network_interface::InterfaceInfo>) {
    s.network_interface_id = n.map(|n| n.network_interface_id.clone());
    s.network_interface_private_ip = n.map(|n| n.private_ip.clone());
    s.network_interface_mac_address = n.map(|n| n.mac_address.clone());
}

pub fn policy_scope(
    role_arn: &str,
    region: &str,
    spec: &Spec,
    volume: &volume::VolumeInfo,
    allocation_id: &str,
    interface: Option<&str>,
) -> Result<PolicyScope, StepError> {
    let parts: Vec<&str> = role_arn.splitn(6, ':').collect();
    let (partition, account) = match parts.as_slice() {
        ["arn", partition, "iam", "", account, _] => (partition.to_string(), account.to_string()),
        _ => {
            return Err(StepError::problem(
                "read",
                format!("IAM role ARN {role_arn}"),
                "unexpected ARN shape",
            ))
        }
    };
    Ok(PolicyScope {
        partition,
        region: region.to_string(),
        account_id: account,
        volume_id: volume.volume_id.clone(),
        allocation_id: allocation_id.to_string(),
        autoscaling_group_name: derived(names::AUTOSCALING_GROUP, spec),
        log_group_name: derived(names::LOG_GROUP, spec),
        network_interface_id: interface.map(str::to_string),
        scheduled_snapshots: spec.snapshot_schedule.is_some(),
        restored_volumes: spec.has_failover(),
        // The key that encrypts the volume, as EBS records it (a key ARN, whatever form the
        // user gave): the one of `volume_kms_key_id`, but also of a user's volume or of a
        // snapshot restored with its own key. Attaching needs KMS access to it; the policy
        // names that one key.
        kms_key_arn: volume.kms_key_id.clone(),
    })
}

/// The launch template's data for this spec.
/// What a launch template version holds for this spec. Asks EC2 for the AMI's root device
/// name, whose volume the template encrypts.
/// The user data (base64) a launch template version of the stack holds: the boot script
/// that mounts `volume_id`, then the user's `user_data`.
pub fn template_user_data(spec: &Spec, volume_id: &str) -> Result<String, StepError> {
    let mount = MountParams::new(
        volume_id,
        &spec.device_name,
        &spec.mount_point,
        &spec.filesystem,
    );
    user_data_base64(&mount, spec.user_data.as_deref())
        .map_err(|e| StepError::problem("build", "the user data", e.to_string()))
}

pub async fn template_data(
    ctx: &OpContext,
    spec: &Spec,
    security_group_id: &str,
    volume_id: &str,
) -> Result<launch_template::TemplateData, StepError> {
    let mut tags = stack_tags(spec);
    tags.insert(
        names::NAME_TAG.to_string(),
        names::INSTANCE_NAME_TAG.for_stack(&spec.name),
    );
    let user_data_base64 = template_user_data(spec, volume_id)?;
    let root_device_name = launch_template::root_device_name(ctx, &spec.ami)
        .await
        .step("describe", format!("AMI {}", spec.ami))?;
    if root_device_name.is_none() {
        tracing::warn!(
            ami = spec.ami,
            "EC2 does not know the AMI: the template maps no root volume, and the launch will fail with EC2's message"
        );
    }
    Ok(launch_template::TemplateData {
        image_id: spec.ami.clone(),
        instance_type: spec.instance_type.clone(),
        key_name: spec.key_name.clone(),
        security_group_ids: std::iter::once(security_group_id.to_string())
            .chain(spec.security_group_ids.iter().cloned())
            .collect(),
        iam_instance_profile: spec.iam_instance_profile.clone(),
        root_device_name,
        user_data_base64,
        tags,
        instance_metadata_tags: spec.has_failover(),
    })
}

/// The function's settings for this spec: the handler's environment names the stack's objects.
pub fn function_settings(
    spec: &Spec,
    role_arn: &str,
    volume_id: &str,
    allocation_id: &str,
    interface: Option<&str>,
) -> lambda_function::FunctionSettings {
    let mut env: BTreeMap<String, String> = [
        ("AUTOHEAL_VOLUME_ID", volume_id.to_string()),
        ("AUTOHEAL_ALLOCATION_ID", allocation_id.to_string()),
        ("AUTOHEAL_DEVICE_NAME", spec.device_name.clone()),
        (
            "AUTOHEAL_GROUP_NAME",
            derived(names::AUTOSCALING_GROUP, spec),
        ),
        ("AUTOHEAL_HOOK_NAME", derived(names::LIFECYCLE_HOOK, spec)),
        (
            "AUTOHEAL_HOOK_TIMEOUT_SECONDS",
            spec.lifecycle_hook_timeout.to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if let Some(eni) = interface {
        env.insert(NETWORK_INTERFACE_ENV.to_string(), eni.to_string());
    }
    if let Some(schedule) = &spec.snapshot_schedule {
        env.insert(
            SNAPSHOT_RULE_ENV.to_string(),
            derived(names::SNAPSHOT_RULE, spec),
        );
        env.insert(
            SNAPSHOT_RETENTION_ENV.to_string(),
            schedule.retention.to_string(),
        );
    }
    lambda_function::FunctionSettings {
        role_arn: role_arn.to_string(),
        memory_size: spec.lambda_memory_size,
        timeout: spec.lambda_timeout,
        architecture: spec.lambda_architecture.clone(),
        environment: env,
        log_group: Some(derived(names::LOG_GROUP, spec)),
    }
}

/// The failover function's settings: the attachment function's base variables (the volume,
/// the group) without the snapshot schedule's, plus the failover's: its check rule, every
/// zone's subnet (`subnets`, home included) and the detection window.
pub fn failover_function_settings(
    spec: &Spec,
    role_arn: &str,
    volume_id: &str,
    allocation_id: &str,
    subnets: &BTreeMap<String, String>,
) -> lambda_function::FunctionSettings {
    let mut settings = function_settings(spec, role_arn, volume_id, allocation_id, None);
    settings
        .environment
        .retain(|k, _| k != SNAPSHOT_RULE_ENV && k != SNAPSHOT_RETENTION_ENV);
    settings.environment.insert(
        "AUTOHEAL_FAILOVER_RULE".to_string(),
        derived(names::FAILOVER_RULE, spec),
    );
    settings.environment.insert(
        "AUTOHEAL_FAILOVER_SUBNETS".to_string(),
        subnets
            .iter()
            .map(|(zone, subnet)| format!("{zone}={subnet}"))
            .collect::<Vec<_>>()
            .join(","),
    );
    settings.environment.insert(
        "AUTOHEAL_FAILOVER_WINDOW_SECONDS".to_string(),
        spec.failover_detection_window.as_secs().to_string(),
    );
    // Its runs read, restore and move: a minute is ample (the restore waits up to about 25 s
    // for the new volume, and the next run continues after that).
    settings.timeout = 60;
    settings.log_group = Some(derived(names::FAILOVER_LOG_GROUP, spec));
    settings
}

/// The handler zip this spec deploys: the user's `handler_zip`, else the shipped one. What is
/// deployed is what was planned: a zip whose digest differs from the planned
/// `handler_sha256` (the file changed between plan and apply) is refused.
pub fn handler_zip(spec: &Spec) -> Result<std::borrow::Cow<'static, [u8]>, String> {
    let zip = read_handler_zip(spec)?;
    match &spec.handler_sha256 {
        Some(planned) if *planned != crate::handler_zip::sha256_hex(&zip) => Err(format!(
            "handler_zip: {} changed since the plan (planned SHA-256 {planned}, now {}); nothing \
             was deployed from it. Run `terraform apply` again to plan with the new file.",
            spec.handler_zip.as_deref().unwrap_or("the shipped handler"),
            crate::handler_zip::sha256_hex(&zip)
        )),
        _ => Ok(zip),
    }
}

fn read_handler_zip(spec: &Spec) -> Result<std::borrow::Cow<'static, [u8]>, String> {
    match &spec.handler_zip {
        Some(path) => std::fs::read(path)
            .map(std::borrow::Cow::Owned)
            .map_err(|e| format!("handler_zip: cannot read {path}: {e}")),
        None => crate::handler_zip::shipped(&spec.lambda_architecture)
            .map(std::borrow::Cow::Borrowed)
            .ok_or_else(|| {
                format!(
                    "lambda_architecture: no shipped handler for {}; set handler_zip",
                    spec.lambda_architecture
                )
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autoheal_instance::schema::schema;
    use crate::plugin::value::Value;

    /// A spec whose handler is the file at `path`, planned with digest `planned`.
    fn spec_with(path: &std::path::Path, planned: Option<&str>) -> Spec {
        let mut v = Value::null_object(&schema().value_type());
        v.set_attr("handler_zip", path.display().to_string().into());
        if let Some(p) = planned {
            v.set_attr("handler_sha256", p.to_string().into());
        }
        Spec::from_value(&v)
    }

    #[test]
    fn a_handler_zip_changed_since_the_plan_is_refused() {
        let dir = std::env::temp_dir().join(format!("autoheal-zip-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("handler.zip");
        std::fs::write(&path, b"the planned bytes").unwrap();
        let planned = crate::handler_zip::sha256_hex(b"the planned bytes");
        assert!(handler_zip(&spec_with(&path, Some(&planned))).is_ok());
        std::fs::write(&path, b"other bytes").unwrap();
        let err = handler_zip(&spec_with(&path, Some(&planned))).unwrap_err();
        assert!(
            err.starts_with("handler_zip:") && err.contains("changed since the plan"),
            "{err}"
        );
        // No planned digest (not known at plan time): nothing to compare.
        assert!(handler_zip(&spec_with(&path, None)).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_marked_volume_is_adopted_only_if_it_is_what_the_create_would_make() {
        let mut v = Value::null_object(&schema().value_type());
        v.set_attr("name", "web".to_string().into());
        v.set_attr("availability_zone", "ap-southeast-2a".to_string().into());
        let plain = Spec::from_value(&v);
        let key =
            "arn:aws:kms:ap-southeast-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        v.set_attr("volume_kms_key_id", key.to_string().into());
        let keyed = Spec::from_value(&v);
        let good = volume::VolumeInfo {
            volume_id: "vol-1".into(),
            state: "available".into(),
            availability_zone: "ap-southeast-2a".into(),
            size: 10,
            volume_type: "gp3".into(),
            iops: None,
            throughput: None,
            encrypted: true,
            kms_key_id: Some(key.into()),
            snapshot_id: None,
            attachments: vec![],
            tags: [(names::STACK_TAG.to_string(), "web".to_string())]
                .into_iter()
                .collect(),
        };
        assert_eq!(adoptable_volume(&good, &plain), Ok(()));
        assert_eq!(adoptable_volume(&good, &keyed), Ok(()));
        let planted = [
            volume::VolumeInfo {
                encrypted: false,
                ..good.clone()
            },
            volume::VolumeInfo {
                availability_zone: "ap-southeast-2b".into(),
                ..good.clone()
            },
            volume::VolumeInfo {
                tags: Default::default(),
                ..good.clone()
            },
        ];
        for v in &planted {
            assert!(adoptable_volume(v, &plain).is_err(), "{v:?}");
        }
        let other_key = volume::VolumeInfo {
            kms_key_id: Some(
                "arn:aws:kms:ap-southeast-2:111122223333:key/ffffffff-12ab-34cd-56ef-1234567890ab"
                    .into(),
            ),
            ..good.clone()
        };
        assert!(adoptable_volume(&other_key, &keyed).is_err());
        assert_eq!(adoptable_volume(&other_key, &plain), Ok(()));
    }
}

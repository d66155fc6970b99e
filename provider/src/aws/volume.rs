//! The data volume: create (encrypted, optionally from a snapshot), find, modify, wait for a
//! detach, final snapshot, delete. Nothing here ever detaches a volume by force unless the
//! caller asks: a mounted volume torn away loses data.

use aws_sdk_ec2::types::{Filter, ResourceType, VolumeState, VolumeType};

use super::context::{OpContext, Poll};
use super::error::AwsError;
use super::tags::{ec2_spec, from_ec2, Tags};

/// What the provider reads back from a volume.
#[derive(Clone, Debug, PartialEq)]
pub struct VolumeInfo {
    pub volume_id: String,
    pub state: String,
    pub availability_zone: String,
    pub size: i32,
    pub volume_type: String,
    pub iops: Option<i32>,
    pub throughput: Option<i32>,
    pub encrypted: bool,
    pub kms_key_id: Option<String>,
    pub snapshot_id: Option<String>,
    /// (instance id, attachment state, device) of each attachment.
    pub attachments: Vec<(String, String, String)>,
    pub tags: Tags,
}

/// The settings of a new volume.
#[derive(Clone, Debug, Default)]
pub struct NewVolume<'a> {
    pub availability_zone: &'a str,
    pub size: i32,
    pub volume_type: &'a str,
    pub iops: Option<i32>,
    pub throughput: Option<i32>,
    pub kms_key_id: Option<&'a str>,
    pub snapshot_id: Option<&'a str>,
}

fn info(v: &aws_sdk_ec2::types::Volume) -> VolumeInfo {
    VolumeInfo {
        volume_id: v.volume_id().unwrap_or_default().to_string(),
        state: v
            .state()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        availability_zone: v.availability_zone().unwrap_or_default().to_string(),
        size: v.size().unwrap_or_default(),
        volume_type: v
            .volume_type()
            .map(|t| t.as_str().to_string())
            .unwrap_or_default(),
        iops: v.iops(),
        throughput: v.throughput(),
        encrypted: v.encrypted().unwrap_or(false),
        kms_key_id: v.kms_key_id().map(str::to_string),
        snapshot_id: v
            .snapshot_id()
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        attachments: v
            .attachments()
            .iter()
            .map(|a| {
                (
                    a.instance_id().unwrap_or_default().to_string(),
                    a.state()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default(),
                    a.device().unwrap_or_default().to_string(),
                )
            })
            .collect(),
        tags: from_ec2(v.tags()),
    }
}

pub async fn find(ctx: &OpContext, volume_id: &str) -> Result<Option<VolumeInfo>, AwsError> {
    let out = ctx
        .find("ec2:DescribeVolumes", || {
            ctx.clients
                .ec2
                .describe_volumes()
                .volume_ids(volume_id)
                .send()
        })
        .await?;
    Ok(out.and_then(|o| o.volumes().first().map(info)))
}

/// A final snapshot of a stack's data volume (tagged by the destroy that took it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinalSnapshot {
    pub snapshot_id: String,
    /// The volume it was taken of.
    pub volume_id: String,
    /// `completed` once it can be restored; `pending` while the destroy that took it waits.
    pub state: String,
    /// (seconds, nanoseconds) since the epoch: when it was started.
    pub start_time: (i64, u32),
    pub tags: Tags,
    pub encrypted: bool,
}

impl FinalSnapshot {
    pub fn is_completed(&self) -> bool {
        self.state == "completed"
    }
}

/// Every snapshot of this account tagged `stack_tag = stack` and `final_tag` that has not
/// failed (pending ones too: a lineage that ends must end for them as well).
pub async fn final_snapshots(
    ctx: &OpContext,
    stack_tag: &str,
    stack: &str,
    final_tag: (&str, &str),
) -> Result<Vec<FinalSnapshot>, AwsError> {
    let out = ctx
        .call("ec2:DescribeSnapshots", &[], || {
            ctx.clients
                .ec2
                .describe_snapshots()
                .owner_ids("self")
                .filters(
                    Filter::builder()
                        .name(format!("tag:{stack_tag}"))
                        .values(stack)
                        .build(),
                )
                .filters(
                    Filter::builder()
                        .name(format!("tag:{}", final_tag.0))
                        .values(final_tag.1)
                        .build(),
                )
                .send()
        })
        .await?;
    Ok(out
        .snapshots()
        .iter()
        .filter_map(|s| {
            let state = s
                .state()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default();
            Some(FinalSnapshot {
                snapshot_id: s.snapshot_id()?.to_string(),
                volume_id: s.volume_id().unwrap_or_default().to_string(),
                start_time: s
                    .start_time()
                    .map(|t| (t.secs(), t.subsec_nanos()))
                    .unwrap_or_default(),
                tags: from_ec2(s.tags()),
                state,
                encrypted: s.encrypted().unwrap_or(false),
            })
        })
        .filter(|s| s.state != "error")
        .collect())
}

/// The completed ones of [`final_snapshots`], newest first.
pub async fn completed_final_snapshots(
    ctx: &OpContext,
    stack_tag: &str,
    stack: &str,
    final_tag: (&str, &str),
) -> Result<Vec<FinalSnapshot>, AwsError> {
    let mut all: Vec<FinalSnapshot> = final_snapshots(ctx, stack_tag, stack, final_tag)
        .await?
        .into_iter()
        .filter(FinalSnapshot::is_completed)
        .collect();
    all.sort_by_key(|s| std::cmp::Reverse(s.start_time));
    Ok(all)
}

/// The newest completed one of [`final_snapshots`].
pub async fn newest_final_snapshot(
    ctx: &OpContext,
    stack_tag: &str,
    stack: &str,
    final_tag: (&str, &str),
) -> Result<Option<FinalSnapshot>, AwsError> {
    Ok(completed_final_snapshots(ctx, stack_tag, stack, final_tag)
        .await?
        .into_iter()
        .next())
}

/// The newest completed snapshot of `volume_id` owned by this account and tagged `kind`
/// (the scheduled snapshots: `autoheal:snapshot = scheduled`): (id, start time as RFC 3339).
/// The volume filter is EBS's own record of the source, so a snapshot of another volume that
/// carries the tag is not taken for one of this volume.
pub async fn newest_completed_snapshot_of(
    ctx: &OpContext,
    volume_id: &str,
    kind: (&str, &str),
) -> Result<Option<(String, String)>, AwsError> {
    Ok(snapshots_of(ctx, volume_id, kind)
        .await?
        .iter()
        .filter(|s| s.state().map(|st| st.as_str()) == Some("completed"))
        .filter_map(|s| Some((s.snapshot_id()?.to_string(), s.start_time()?)))
        .max_by_key(|(_, t)| (t.secs(), t.subsec_nanos()))
        .and_then(|(id, t)| {
            t.fmt(aws_smithy_types::date_time::Format::DateTime)
                .ok()
                .map(|time| (id, time))
        }))
}

/// The account's snapshots of `volume_id` carrying the tag `tag` (key, value), in any state:
/// the one place that lists a volume's snapshots by tag (the final snapshot a create token
/// names, the scheduled ones).
async fn snapshots_of(
    ctx: &OpContext,
    volume_id: &str,
    tag: (&str, &str),
) -> Result<Vec<aws_sdk_ec2::types::Snapshot>, AwsError> {
    let out = ctx
        .call("ec2:DescribeSnapshots", &[], || {
            ctx.clients
                .ec2
                .describe_snapshots()
                .owner_ids("self")
                .filters(
                    Filter::builder()
                        .name("volume-id")
                        .values(volume_id)
                        .build(),
                )
                .filters(
                    Filter::builder()
                        .name(format!("tag:{}", tag.0))
                        .values(tag.1)
                        .build(),
                )
                .send()
        })
        .await?;
    // The filter is the server's; the volume is checked again here, as everywhere a found
    // object decides something.
    Ok(out
        .snapshots
        .unwrap_or_default()
        .into_iter()
        .filter(|s| s.volume_id() == Some(volume_id))
        .collect())
}

/// Creates the volume (always encrypted) and waits until it is available.
pub async fn create(
    ctx: &OpContext,
    spec: &NewVolume<'_>,
    tags: &Tags,
    created: impl FnOnce(&str),
) -> Result<String, AwsError> {
    // One token for this create, kept across its retries: a repeat returns the first volume.
    let token = super::context::unique_token();
    let out = ctx
        .call("ec2:CreateVolume", &[], || {
            ctx.clients
                .ec2
                .create_volume()
                .client_token(&token)
                .availability_zone(spec.availability_zone)
                .size(spec.size)
                .volume_type(VolumeType::from(spec.volume_type))
                .set_iops(spec.iops)
                .set_throughput(spec.throughput)
                .encrypted(true)
                .set_kms_key_id(spec.kms_key_id.map(str::to_string))
                .set_snapshot_id(spec.snapshot_id.map(str::to_string))
                .tag_specifications(ec2_spec(ResourceType::Volume, tags))
                .send()
        })
        .await?;
    let id = out
        .volume_id()
        .ok_or_else(|| AwsError::other("ec2:CreateVolume", "no volume id in the answer"))?
        .to_string();
    tracing::info!(
        volume_id = id,
        snapshot_id = spec.snapshot_id,
        size = spec.size,
        "created data volume"
    );
    // Recorded before the wait: a failed wait must not lose the volume.
    created(&id);
    wait_state(ctx, &id, &[VolumeState::Available]).await?;
    Ok(id)
}

/// Waits until the volume has been created: `available`, or `in-use` (a volume made by an
/// interrupted create may still be `creating`, or already attached by the heal path).
pub async fn wait_created(ctx: &OpContext, volume_id: &str) -> Result<(), AwsError> {
    wait_state(
        ctx,
        volume_id,
        &[VolumeState::Available, VolumeState::InUse],
    )
    .await
}

async fn wait_state(
    ctx: &OpContext,
    volume_id: &str,
    wanted: &[VolumeState],
) -> Result<(), AwsError> {
    let names: Vec<&str> = wanted.iter().map(|w| w.as_str()).collect();
    ctx.wait_for(
        &format!("volume {volume_id} to be {}", names.join(" or ")),
        || async {
            Ok(match find(ctx, volume_id).await? {
                Some(v) if names.contains(&v.state.as_str()) => Poll::Ready(()),
                Some(v) if v.state == "error" => {
                    return Err(AwsError::other(
                        "ec2:CreateVolume",
                        format!("volume {volume_id} is in state error"),
                    ))
                }
                Some(v) => Poll::Waiting(format!("state {}", v.state)),
                None => Poll::Waiting("not listed yet".into()),
            })
        },
    )
    .await
}

/// Changes size, type, IOPS or throughput in place (EC2 allows one modification per volume
/// every 6 hours; its error is shown as is).
pub async fn modify(
    ctx: &OpContext,
    volume_id: &str,
    size: Option<i32>,
    volume_type: Option<&str>,
    iops: Option<i32>,
    throughput: Option<i32>,
) -> Result<(), AwsError> {
    ctx.call("ec2:ModifyVolume", &["IncorrectModificationState"], || {
        ctx.clients
            .ec2
            .modify_volume()
            .volume_id(volume_id)
            .set_size(size)
            .set_volume_type(volume_type.map(VolumeType::from))
            .set_iops(iops)
            .set_throughput(throughput)
            .send()
    })
    .await?;
    tracing::info!(
        volume_id,
        ?size,
        ?volume_type,
        ?iops,
        ?throughput,
        "volume modification started"
    );
    Ok(())
}

/// Waits until the volume has no attachment (AWS detaches it when its instance terminates).
/// A volume still `attached` to an instance that is gone or going is asked to detach once;
/// `force` also detaches it from a running instance (data loss: only on the user's word).
/// AWS's transient answers (VolumeInUse, IncorrectState, `detaching`, still `attached` on the
/// first poll) are waited out within the deadline.
pub async fn wait_detached(ctx: &OpContext, volume_id: &str, force: bool) -> Result<(), AwsError> {
    let asked = std::sync::Mutex::new(Vec::<String>::new());
    ctx.wait_for(&format!("volume {volume_id} to be detached"), || {
        let asked = &asked;
        async move {
            let Some(v) = find(ctx, volume_id).await? else {
                return Ok(Poll::Ready(()));
            };
            let live: Vec<_> = v
                .attachments
                .iter()
                .filter(|(_, state, _)| state != "detached")
                .collect();
            if live.is_empty() && v.state != "in-use" {
                return Ok(Poll::Ready(()));
            }
            for (instance, state, _) in &live {
                if state != "attached"
                    || asked
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .contains(instance)
                {
                    continue;
                }
                // Gone or going instances release the volume themselves; a live holder is
                // only detached by force.
                let holder = super::instance::state(ctx, instance).await?;
                let live = matches!(holder.as_deref(), Some("pending" | "running" | "stopping"));
                if live && !force {
                    return Err(AwsError::other(
                        "ec2:DetachVolume",
                        format!(
                            "volume {volume_id} is attached to instance {instance}, which is
                             still running; detaching a mounted volume can lose data, so the \
                             provider does not force it. Stop the instance, or set \
                             `force_detach = true`"
                        ),
                    ));
                }
                asked
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(instance.clone());
                match ctx
                    .call("ec2:DetachVolume", &["VolumeInUse"], || {
                        ctx.clients
                            .ec2
                            .detach_volume()
                            .volume_id(volume_id)
                            .instance_id(instance.as_str())
                            .force(force)
                            .send()
                    })
                    .await
                {
                    Ok(_) => tracing::info!(volume_id, instance, force, "detach requested"),
                    // Already detached (or detaching on its own): keep polling.
                    Err(e) if e.is_code(&["IncorrectState"]) || e.is_not_found() => {}
                    Err(e) => return Err(e),
                }
            }
            let status = live
                .iter()
                .map(|(i, s, _)| format!("{s} to {i}"))
                .collect::<Vec<_>>()
                .join(", ");
            Ok(Poll::Waiting(if status.is_empty() {
                v.state
            } else {
                status
            }))
        }
    })
    .await
}

/// Takes a snapshot of the volume, tagged (a final snapshot: so the next stack of the same
/// name finds it), and waits until it completes.
pub async fn snapshot(
    ctx: &OpContext,
    volume_id: &str,
    description: &str,
    tags: &Tags,
) -> Result<String, AwsError> {
    let (tags, token) = super::context::with_create_token(tags);
    let id = ctx
        .create(
            "ec2:CreateSnapshot",
            // SnapshotCreationPerVolumeRateExceeded: a scheduled snapshot of the same volume
            // started within the last 15 seconds ("Wait at least 15 seconds between
            // concurrent volume snapshots", EC2 API error codes): retried with the back-off.
            &["IncorrectState", "SnapshotCreationPerVolumeRateExceeded"],
            || async {
                Ok(
                    find_snapshot(ctx, volume_id, super::context::CREATE_TOKEN_TAG, &token)
                        .await?
                        .map(Some),
                )
            },
            || async {
                let out = ctx
                    .clients
                    .ec2
                    .create_snapshot()
                    .volume_id(volume_id)
                    .description(description)
                    .tag_specifications(ec2_spec(ResourceType::Snapshot, &tags))
                    .send()
                    .await?;
                Ok(out.snapshot_id().map(str::to_string))
            },
        )
        .await?
        .ok_or_else(|| AwsError::other("ec2:CreateSnapshot", "no snapshot id in the answer"))?;
    tracing::info!(snapshot_id = id, volume_id, description, "snapshot started");
    wait_snapshot(ctx, &id, volume_id).await?;
    Ok(id)
}

/// A snapshot of `volume_id` tagged `key = value` that has not failed, if any.
pub async fn find_snapshot(
    ctx: &OpContext,
    volume_id: &str,
    key: &str,
    value: &str,
) -> Result<Option<String>, AwsError> {
    Ok(snapshots_of(ctx, volume_id, (key, value))
        .await?
        .iter()
        .filter(|s| s.state().map(|s| s.as_str()) != Some("error"))
        .find_map(|s| s.snapshot_id().map(str::to_string)))
}

/// Whether snapshot `id` exists (in any state but `error`).
pub async fn snapshot_exists(ctx: &OpContext, id: &str) -> Result<bool, AwsError> {
    let out = ctx
        .find("ec2:DescribeSnapshots", || {
            ctx.clients.ec2.describe_snapshots().snapshot_ids(id).send()
        })
        .await?;
    Ok(out.is_some_and(|o| {
        o.snapshots()
            .iter()
            .any(|s| s.state().map(|s| s.as_str()) != Some("error"))
    }))
}

/// The volume EBS records snapshot `id` was taken of (`None`: no such snapshot of this
/// account).
pub async fn snapshot_parent(ctx: &OpContext, id: &str) -> Result<Option<String>, AwsError> {
    let out = ctx
        .find("ec2:DescribeSnapshots", || {
            ctx.clients
                .ec2
                .describe_snapshots()
                .owner_ids("self")
                .snapshot_ids(id)
                .send()
        })
        .await?;
    Ok(out.and_then(|o| {
        o.snapshots()
            .iter()
            .find(|s| s.snapshot_id() == Some(id))
            .and_then(|s| s.volume_id())
            .map(str::to_string)
    }))
}

/// Waits until snapshot `id` (of `volume_id`) is completed.
pub async fn wait_snapshot(ctx: &OpContext, id: &str, volume_id: &str) -> Result<(), AwsError> {
    ctx.wait_for(&format!("snapshot {id} to complete"), || async {
        let out = ctx
            .find("ec2:DescribeSnapshots", || {
                ctx.clients.ec2.describe_snapshots().snapshot_ids(id).send()
            })
            .await?;
        let snap = out.as_ref().and_then(|o| o.snapshots().first());
        Ok(match snap.and_then(|s| s.state()).map(|s| s.as_str()) {
            Some("completed") => Poll::Ready(()),
            Some("error") => {
                return Err(AwsError::other(
                    "ec2:CreateSnapshot",
                    format!("snapshot {id} of {volume_id} failed"),
                ))
            }
            Some(state) => Poll::Waiting(format!(
                "{state} {}",
                snap.and_then(|s| s.progress()).unwrap_or_default()
            )),
            None => Poll::Waiting("not listed yet".into()),
        })
    })
    .await?;
    tracing::info!(snapshot_id = id, volume_id, "snapshot completed");
    Ok(())
}

/// Deletes the volume; VolumeInUse (a detach still settling) is retried.
pub async fn delete(ctx: &OpContext, volume_id: &str) -> Result<(), AwsError> {
    ctx.delete("ec2:DeleteVolume", &["VolumeInUse"], || {
        ctx.clients.ec2.delete_volume().volume_id(volume_id).send()
    })
    .await?;
    tracing::info!(volume_id, "deleted data volume");
    Ok(())
}

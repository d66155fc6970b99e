#!/bin/bash
# The autoheal boot script: mounts the stack's data volume before the user's user_data runs.
#
# It runs once per instance, as the first part of the launch template's user data. The
# instance boots while the launch lifecycle hook holds it in Pending:Wait and the attachment
# Lambda moves the volume over, so the volume usually appears some time after this starts.
#
#  1. Wait (at most WAIT_SECONDS) for the volume: on Nitro instances at its stable NVMe name
#     /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_<volume id without the dash>, which
#     names this very volume; on Xen instances at DEVICE_NAME or its /dev/sdX <-> /dev/xvdX
#     alias.
#  2. Make a FILESYSTEM file system only when the volume holds no signature at all: a file
#     system or partition table found there is never overwritten.
#  3. Mount it at MOUNT_POINT, then grow the file system to the volume's size (the volume may
#     have grown since the file system was made; growing a mounted one needs no fsck).
#  4. Keep exactly one /etc/fstab entry for MOUNT_POINT, by UUID with `nofail`, so reboots
#     mount the volume and a boot without it does not hang: an older entry for MOUNT_POINT
#     is commented out, and a re-run changes nothing.
#
# user_data.rs renders it: it replaces the block between the PARAMETERS markers with
# shell-quoted values it has checked, and drops comment lines and blank lines to save
# user-data bytes (EC2 allows 16 KiB in all; this script is budgeted 4 KiB). So: no
# here-documents and no multi-line strings in here.
set -euo pipefail

# BEGIN PARAMETERS
VOLUME_ID=vol-00000000000000000
DEVICE_NAME=/dev/xvdb
MOUNT_POINT=/data
FILESYSTEM=ext4
WAIT_SECONDS=600
# END PARAMETERS

# To the console and cloud-init's log (stderr), and to syslog when there is one.
log() {
  echo "autoheal-mount: $*" >&2
  logger -t autoheal-mount "$*" 2>/dev/null || true
}
fail() {
  log "ERROR: $*"
  exit 1
}

# 1. Wait for the volume.
alias=/dev/xvd${DEVICE_NAME: -1}
[[ $alias != "$DEVICE_NAME" ]] || alias=/dev/sd${DEVICE_NAME: -1}
paths=("/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${VOLUME_ID/-/}" "$DEVICE_NAME" "$alias")
log "waiting up to ${WAIT_SECONDS}s for $VOLUME_ID at ${paths[*]}"
start=$SECONDS
found=
while :; do
  for p in "${paths[@]}"; do
    if [[ -e $p ]]; then
      found=$p
      break 2
    fi
  done
  waited=$((SECONDS - start))
  if ((waited >= WAIT_SECONDS)); then
    fail "$VOLUME_ID did not appear within ${WAIT_SECONDS}s; the stack's attachment Lambda attaches it: see its log group"
  fi
  if ((waited > 0 && waited % 30 == 0)); then
    log "still waiting for $VOLUME_ID (${waited}s)"
  fi
  sleep 1
done
dev=$(readlink -f "$found")
log "found $VOLUME_ID at $found ($dev) after $((SECONDS - start))s"

# What is on the device: blkid -p probes it directly (no cache). Exit 2 is "no signature
# at all"; any other failure (unreadable, conflicting signatures) stops here rather than
# risk formatting a volume that holds data.
probe() {
  local rc=0
  info=$(blkid -p -o export "$dev") || rc=$?
  ((rc == 0 || rc == 2)) || fail "blkid cannot tell what is on $dev (exit $rc); leaving it alone"
  fstype=$(sed -n 's/^TYPE=//p' <<<"$info")
  uuid=$(sed -n 's/^UUID=//p' <<<"$info")
}

# 2. A file system only on a blank volume.
probe
if [[ -z $info ]]; then
  log "$dev is blank: making an $FILESYSTEM file system"
  # A new EBS volume reads as zeros, so discarding its blocks first only costs time.
  if [[ $FILESYSTEM == xfs ]]; then
    mkfs.xfs -q -K "$dev" </dev/null >&2
  else
    mkfs.ext4 -q -E nodiscard "$dev" </dev/null >&2
  fi
  probe
  [[ $fstype == "$FILESYSTEM" ]] || fail "mkfs.$FILESYSTEM made no file system on $dev"
elif [[ -z $fstype ]]; then
  fail "$dev holds no file system but ${info//$'\n'/ }; not formatting it"
else
  log "$dev has a file system ($fstype): keeping it"
fi
[[ -n $uuid ]] || fail "the $fstype file system on $dev has no UUID"

# 3. Mount, then grow (best effort: mounted but not grown is still usable).
mkdir -p "$MOUNT_POINT"
if mounted=$(findmnt -n -o SOURCE --mountpoint "$MOUNT_POINT"); then
  [[ $(blkid -p -o value -s UUID "$mounted") == "$uuid" ]] ||
    fail "$MOUNT_POINT has $mounted mounted, not $VOLUME_ID"
  log "$VOLUME_ID is already mounted at $MOUNT_POINT"
else
  mount -t "$fstype" "$dev" "$MOUNT_POINT"
  mounted=$(findmnt -n -o SOURCE --mountpoint "$MOUNT_POINT")
  log "mounted $VOLUME_ID ($fstype UUID=$uuid) at $MOUNT_POINT"
fi
case $fstype in
  ext[234]) grow=(resize2fs "$mounted") ;;
  xfs) grow=(xfs_growfs "$MOUNT_POINT") ;;
  *) grow=(true) ;;
esac
"${grow[@]}" >&2 || log "WARNING: ${grow[0]} failed; $MOUNT_POINT keeps its size"

# 4. fstab. A new file renamed over the old one: a crash never leaves half an fstab.
pass=2
[[ $fstype != xfs ]] || pass=0
entry="UUID=$uuid $MOUNT_POINT $fstype defaults,nofail 0 $pass"
fstab=/etc/fstab
touch "$fstab"
export MOUNT_POINT
if [[ $(awk '!/^[[:space:]]*#/ && $2 == ENVIRON["MOUNT_POINT"]' "$fstab") != "$entry" ]]; then
  new=$(mktemp "$fstab.XXXXXX")
  awk '!/^[[:space:]]*#/ && $2 == ENVIRON["MOUNT_POINT"] { print "# replaced by autoheal: " $0; next } 1' "$fstab" >"$new"
  echo "$entry" >>"$new"
  chmod 644 "$new"
  mv -f "$new" "$fstab"
  log "$fstab: $entry"
fi
log "done: $VOLUME_ID is mounted at $MOUNT_POINT"

#!/bin/bash
# The autoheal boot script: mounts the stack's data volume before the user's user_data runs.
#
# It runs once per instance, as the first part of the launch template's user data. The
# instance boots while the launch lifecycle hook holds it in Pending:Wait and the attachment
# Lambda moves the volume over, so the volume usually appears some time after this starts.
#
#  0. Guard MOUNT_POINT on the root file system: the empty directory is made immutable, so
#     nothing lands on the root disk there while the volume is not mounted (now, or on a
#     later boot without it).
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
# When it fails without the volume mounted at MOUNT_POINT, an EXIT trap mounts an empty
# read-only file system there and keeps cloud-init from running the user's scripts (see
# on_exit).
#
# user_data.rs renders it: it replaces the block between the PARAMETERS markers with
# shell-quoted values it has checked, and drops comment lines, blank lines and indentation
# to save user-data bytes (EC2 allows 16 KiB in all; this script is budgeted 4 KiB, and a
# test holds it to that). So: no here-documents and no multi-line strings in here.
set -euo pipefail

# BEGIN PARAMETERS
VOLUME_ID='vol-00000000000000000'
DEVICE_NAME=/dev/sdf
MOUNT_POINT=/data
FILESYSTEM=ext4
WAIT_SECONDS=600
# END PARAMETERS
# Short names: every byte counts (see above).
mp=$MOUNT_POINT
vol=$VOLUME_ID

# To the console and cloud-init's log (stderr), and to syslog when there is one.
log() {
  echo "autoheal-mount: $*" >&2
  logger -t autoheal-mount "$*" 2>/dev/null || true
}
fail() {
  log "ERROR: $*"
  exit 1
}

# Failing without the volume at the mount point must neither let data land on the root disk
# nor let the user's scripts run without their data:
# - an empty read-only tmpfs goes over the mount point, unless something is mounted there:
#   writes fail with EROFS, even root's, for the rest of this boot (the immutable directory
#   of step 0 stays for later boots). A re-run of this script unmounts it first.
# - cloud-init's scripts_user module runs the files of its scripts directory, this script
#   included (the user's parts sort after it: 10-user-data, part-NNN, and runcmd's commands),
#   with runparts() of cloudinit/subp.py: it lists the directory once, sorted, then runs each
#   file only if is_exe() (os.path.isfile and os.access X_OK) holds when it gets to it, and
#   else logs "skipping ... as its not executable". So taking the executable bits off the
#   files after this one keeps them from running. Only in a directory named scripts, as
#   cloud-init's is: run by hand from elsewhere, the script leaves other files alone.
# The trap is removed once the volume is mounted.
ph=autoheal-no-volume
on_exit() {
  rc=$?
  ((rc)) || return 0
  set +e
  findmnt -M "$mp" >/dev/null || mount -t tmpfs -o ro,mode=555 $ph "$mp"
  [[ $0 == */scripts/* ]] || exit $rc
  LC_ALL=C
  for f in "${0%/*}"/*; do
    [[ -f $f && -x $f && ${f##*/} > ${0##*/} ]] && chmod a-x "$f" &&
      log "not running ${f##*/}: no data volume at $mp"
  done
  exit $rc
}
trap on_exit EXIT

# 0. Guard the mount point. A directory with the immutable attribute gets no new entries,
# not even from root, while nothing is mounted on it; mounting on it still works. Only an
# empty one (what is there may be the AMI's), and only while nothing is mounted there (a
# re-run: done already). It lives on the root file system, so it also holds on a later boot
# where fstab's nofail entry finds no volume. `chattr -i` undoes it.
mkdir -p "$mp"
[[ $(findmnt -no SOURCE -M "$mp") != "$ph" ]] || umount "$mp"
if findmnt -M "$mp" >/dev/null; then
  :
elif [[ -n $(ls -A "$mp") ]]; then
  log "WARNING: $mp not empty: not immutable"
elif ! chattr +i "$mp" >&2; then
  log "WARNING: chattr +i $mp failed"
fi

# 1. Wait for the volume.
al=/dev/xvd${DEVICE_NAME: -1}
[[ $al != "$DEVICE_NAME" ]] || al=/dev/sd${DEVICE_NAME: -1}
# After a zone failover the group's autoheal:active-volume tag, propagated to this instance
# and readable in the metadata service (IMDSv2) when the template enables instance tags
# there, names the restored volume the attachment Lambda attaches: wait for that one. No tag
# (404), tags not enabled or no answer: VOLUME_ID. (A failed && list does not trip set -e.)
m=169.254.169.254/latest
h=X-aws-ec2-metadata-token
t=$(curl -sfm2 -XPUT -H"$h-ttl-seconds: 9" $m/api/token) &&
  a=$(curl -sfm2 -H"$h: $t" $m/meta-data/tags/instance/autoheal:active-volume) &&
  [[ $a =~ ^vol-[0-9a-f]+$ ]] && vol=$a
paths=("/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${vol/-/}" "$DEVICE_NAME" "$al")
log "waiting ${WAIT_SECONDS}s for $vol at ${paths[*]}"
start=$SECONDS
found=
while :; do
  for p in "${paths[@]}"; do
    [[ ! -e $p ]] || {
      found=$p
      break 2
    }
  done
  waited=$((SECONDS - start))
  ((waited < WAIT_SECONDS)) ||
    fail "$vol did not appear within ${WAIT_SECONDS}s"
  ((waited == 0 || waited % 30)) || log "waiting for $vol (${waited}s)"
  sleep 1
done
dev=$(readlink -f "$found")
log "found $vol at $found after $((SECONDS - start))s"

# What is on the device: blkid -p probes it directly (no cache). Exit 2 is "no signature
# at all"; any other failure (unreadable, conflicting signatures) stops here rather than
# risk formatting a volume that holds data.
probe() {
  local rc=0
  info=$(blkid -p -o export "$dev") || rc=$?
  ((rc == 0 || rc == 2)) || fail "blkid cannot read $dev (exit $rc)"
  fstype=$(sed -n 's/^TYPE=//p' <<<"$info")
  uuid=$(sed -n 's/^UUID=//p' <<<"$info")
}

# 2. A file system only on a blank volume.
probe
if [[ -z $info ]]; then
  log "$dev is blank: mkfs.$FILESYSTEM"
  # A new EBS volume reads as zeros, so discarding its blocks first only costs time.
  if [[ $FILESYSTEM == xfs ]]; then
    mkfs.xfs -q -K "$dev" </dev/null >&2
  else
    mkfs.ext4 -q -E nodiscard "$dev" </dev/null >&2
  fi
  probe
  [[ $fstype == "$FILESYSTEM" ]] || fail "mkfs.$FILESYSTEM failed on $dev"
elif [[ -z $fstype ]]; then
  fail "$dev holds ${info//$'\n'/ } but no file system: not formatting"
else
  log "$dev has $fstype: keeping it"
fi
[[ -n $uuid ]] || fail "no UUID on $dev"

# 3. Mount, then grow (best effort: mounted but not grown is still usable).
if mounted=$(findmnt -no SOURCE -M "$mp"); then
  [[ $(blkid -p -o value -s UUID "$mounted") == "$uuid" ]] ||
    fail "$mp has $mounted mounted, not $vol"
  log "$vol is already mounted at $mp"
else
  mount -t "$fstype" "$dev" "$mp"
  mounted=$(findmnt -no SOURCE -M "$mp")
  log "mounted $vol ($fstype UUID=$uuid) at $mp"
fi
trap - EXIT
case $fstype in
  ext[234]) grow=(resize2fs "$mounted") ;;
  xfs) grow=(xfs_growfs "$mp") ;;
  *) grow=(true) ;;
esac
"${grow[@]}" >&2 || log "WARNING: ${grow[0]} failed"

# 4. fstab. A new file renamed over the old one: a crash never leaves half an fstab.
pass=2
[[ $fstype != xfs ]] || pass=0
entry="UUID=$uuid $mp $fstype defaults,nofail 0 $pass"
fstab=/etc/fstab
touch "$fstab"
export mp
if [[ $(awk '!/^[[:space:]]*#/ && $2 == ENVIRON["mp"]' "$fstab") != "$entry" ]]; then
  new=$(mktemp "$fstab.XXXXXX")
  awk '!/^[[:space:]]*#/ && $2 == ENVIRON["mp"] { print "# replaced by autoheal: " $0; next } 1' "$fstab" >"$new"
  echo "$entry" >>"$new"
  chmod 644 "$new"
  mv -f "$new" "$fstab"
  log "$fstab: $entry"
fi
log "done: $vol at $mp"

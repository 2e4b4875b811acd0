#!/usr/bin/env bash
# File-level recovery from a mounted backup without booting it: the commands of docs/file-recovery.md, as a script.
#   scripts/recover-file.sh /vms/web01.vhdx /etc/hostname ./hostname
# 1. qemu-storage-daemon opens the VHDX read-only and exports the disk inside it as a raw file (FUSE);
# 2. the first Linux partition of that raw view is loop-mounted read-only (noload: no journal replay);
# 3. the file is copied out; everything is unmounted again. Needs root and qemu-system-common + util-linux.
set -euo pipefail
disk=$1 file=$2 out=$3
work=$(mktemp -d /tmp/backupfuse-recover.XXXXXX)
raw="$work/disk.raw"; mnt="$work/mnt"
touch "$raw"; mkdir "$mnt"
cleanup() {
  mountpoint -q "$mnt" && umount "$mnt"
  [[ -n "${qsd:-}" ]] && kill "$qsd" 2>/dev/null && wait "$qsd" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

qemu-storage-daemon \
  --blockdev driver=file,node-name=file0,filename="$disk",read-only=on \
  --blockdev driver=vhdx,node-name=disk0,file=file0,read-only=on \
  --export type=fuse,id=exp0,node-name=disk0,mountpoint="$raw",writable=off &
qsd=$!
for _ in $(seq 100); do [[ $(stat -c %s "$raw") -gt 0 ]] && break; sleep 0.1; done

# Start of the first Linux (or basic data) partition, in bytes.
start=$(sfdisk -d "$raw" | awk -F'[=,]' '/start=/ { gsub(/ /, "", $2); print $2; exit }')
mount -o ro,noload,loop,offset=$((start * 512)) "$raw" "$mnt"
cp -- "$mnt/$file" "$out"
echo "recovered $file -> $out"

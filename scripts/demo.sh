#!/usr/bin/env bash
# The README's demo: make a small bootable disk, back it up (full + incremental), mount the backups as VHDX
# files, let QEMU's own tools read them, and boot the incremental backup point as a VM. Needs root (FUSE mount,
# one loop mount while building the disk) and a Debian 12 machine; installs what it needs.
#   scripts/demo.sh            everything (about 1-2 minutes after packages are installed)
#   BF_DEMO_KEEP=1 scripts/demo.sh   keep the work directory and leave it mounted for exploring
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Installing what the demo needs (Debian packages; skipped when present)"
scripts/install-deps.sh
command -v qemu-system-x86_64 >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-system-x86 >/dev/null; }

step "Building backupfuse (Release)"
dotnet build -c Release src/BackupFuse.Daemon --nologo -v q -clp:NoSummary
bf="$repo/src/BackupFuse.Daemon/bin/Release/net10.0/backupfuse"

work=$(mktemp -d /tmp/backupfuse-demo.XXXXXX)
cleanup() {
  if [[ -z "${BF_DEMO_KEEP:-}" ]]; then
    "$bf" unmount "$work/vms" >/dev/null 2>&1 || true
    sleep 0.5
    rm -rf "$work"
  else
    echo "kept $work (mounted at $work/vms; unmount with: $bf unmount $work/vms)"
  fi
}
trap cleanup EXIT
mkdir -p "$work/backups" "$work/vms"

step "Making a 256 MiB bootable disk (GPT, ext4, extlinux, Debian kernel, busybox)"
BF_CHECK_CONTENT=monday scripts/guest/make-boot-disk.sh "$work/disk.raw" 256

step "Full backup, then change a file and take an incremental"
"$bf" backup "$work/disk.raw" "$work/backups/demo-full.bfi"
scripts/guest/set-check-file.sh "$work/disk.raw" tuesday
"$bf" backup "$work/disk.raw" "$work/backups/demo-tuesday.bfi" --parent "$work/backups/demo-full.bfi"
"$bf" info "$work/backups/demo-tuesday.bfi"
ls -l "$work/backups"

step "Plugin files: small pointers named *.vhdx"
"$bf" plugin create "$work/backups/demo-full.bfi" "$work/vms/monday.vhdx"
"$bf" plugin create "$work/backups/demo-tuesday.bfi" "$work/vms/tuesday.vhdx"
ls -l "$work/vms"
head -3 "$work/vms/tuesday.vhdx"

step "Mounting $work/vms over itself: the plugins now read as complete VHDX disks"
"$bf" mount "$work/vms" --images "$work/backups"
ls -l "$work/vms"

step "QEMU's own tools read the synthesized VHDX"
qemu-img info "$work/vms/tuesday.vhdx"
qemu-img check "$work/vms/tuesday.vhdx"
qemu-img compare -f vhdx -F raw "$work/vms/tuesday.vhdx" "$work/disk.raw"
vhdiinfo "$work/vms/tuesday.vhdx" | sed -n '1,12p'

step "Booting the Tuesday backup point as a VM (QEMU, format=vhdx); the guest writes a file"
scripts/guest/boot-vm.sh --drive "file=$work/vms/tuesday.vhdx,format=vhdx,cache=none,aio=threads" \
  --append-extra "bf.write=hello-from-the-vm" --log "$work/boot1.log" --timeout 180
grep -a BFGUEST "$work/boot1.log" | tr -d '\r'
grep -aq "BFGUEST-FILE:tuesday" "$work/boot1.log" || { echo "the guest did not see the Tuesday file" >&2; exit 1; }
ls -l "$work/vms/.backupfuse"

step "Unmount, mount again, boot again: the guest's write is still there (kept in a differencing VHDX)"
"$bf" unmount "$work/vms"
sleep 0.5
"$bf" info "$work/vms/tuesday.vhdx" | sed -n '1,3p'
"$bf" mount "$work/vms" --images "$work/backups"
scripts/guest/boot-vm.sh --drive "file=$work/vms/tuesday.vhdx,format=vhdx,cache=none,aio=threads" --log "$work/boot2.log" --timeout 180
grep -a BFGUEST "$work/boot2.log" | tr -d '\r'
grep -aq "BFGUEST-SEEN:hello-from-the-vm" "$work/boot2.log" || { echo "the guest's write did not survive the remount" >&2; exit 1; }
vhdiinfo "$work/vms/.backupfuse/tuesday.changes.vhdx" | grep -E "Disk type|Parent"

step "The backup files were only read; 'reset' drops the VM's changes"
"$bf" verify "$work/backups/demo-tuesday.bfi"
"$bf" unmount "$work/vms"
sleep 0.5
"$bf" reset "$work/vms/tuesday.vhdx"
echo
echo "Demo finished: a backup booted as a VM straight from the mount, kept its changes aside, and was reset."

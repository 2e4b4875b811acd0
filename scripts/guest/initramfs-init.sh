#!/bin/busybox sh
# /init of the tiny initramfs built by make-boot-disk.sh (runs as PID 1 before the real root exists).
# Loads the modules listed in /modules.order (virtio_pci, virtio_blk, ext4 and its helpers, qemu_fw_cfg),
# mounts root= (default /dev/vda1) read-only, moves /dev /proc /sys into it and switch_roots to init=
# (default /init.sh). Any failure prints "BFGUEST-INITRAMFS-ERROR: <why>" and powers the VM off, so the host
# never waits for a timeout to learn that the root was not found.
PATH=/bin:/sbin:/usr/bin:/usr/sbin
export PATH

mount -t devtmpfs devtmpfs /dev 2>/dev/null
# The kernel could not open /dev/console before devtmpfs existed: attach stdio now.
exec 0</dev/console 1>/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys

fail() {
  echo "BFGUEST-INITRAMFS-ERROR: $*"
  sync
  poweroff -f
  echo o >/proc/sysrq-trigger
  sleep 5
}

# Missing modules (for example crc32c-intel on a CPU without SSE4.2) are not fatal; a missing root is.
while read -r m; do
  [ -n "$m" ] && insmod "/lib/modules/$m" 2>/dev/null
done </modules.order

root=/dev/vda1
init=/init.sh
rootflags=ro
for tok in $(cat /proc/cmdline); do
  case "$tok" in
    root=*) root="${tok#root=}" ;;
    init=*) init="${tok#init=}" ;;
    rw) rootflags=rw ;;
  esac
done

i=0
while [ ! -b "$root" ] && [ $i -lt 100 ]; do
  sleep 0.1
  i=$((i + 1))
done
[ -b "$root" ] || fail "root device $root did not appear (is the drive attached with if=virtio?)"

mkdir -p /newroot
mount -t ext4 -o "$rootflags" "$root" /newroot || fail "cannot mount $root as ext4"
[ -x "/newroot$init" ] || fail "init $init is missing or not executable on $root"

for d in dev proc sys; do
  mkdir -p "/newroot/$d" 2>/dev/null
  mount --move "/$d" "/newroot/$d" || fail "cannot move /$d into the new root"
done
exec switch_root /newroot "$init"

#!/bin/sh
# /init.sh of the BackupFuse test guest (installed by make-boot-disk.sh; runs as PID 1 via init=/init.sh).
#
# Protocol (one marker per line on the serial console, /dev/ttyS0; the host may see CRLF line ends):
#   BFGUEST-BOOTED              the root filesystem is mounted read-write and this script runs
#   BFGUEST-FILE:<text>         content of /etc/bf-check (newlines folded into spaces), if the file exists
#   BFGUEST-WROTE               a write request was found; /root/bf-written.txt now holds its text (synced)
#   BFGUEST-SEEN:<text>         content of /root/bf-written.txt, if it exists (from this boot or an earlier one)
#   BFGUEST-HOOK-EXIT:<rc>      /etc/bf-hook.sh existed and was run with sh; its output precedes this line
#   BFGUEST-POWEROFF            everything is synced and / is read-only again; the VM powers off next
#
# Write request: token bf.write=<text> (no spaces) on the kernel command line, or in the QEMU fw_cfg blob
# opt/bf.cmdline (same token syntax; boot-vm.sh --append-extra puts its text there, because a disk booted by
# its own extlinux has a fixed command line), or the whole fw_cfg blob opt/bf.write (text may contain spaces).
# fw_cfg is read from /sys/firmware/qemu_fw_cfg, provided by the qemu_fw_cfg module the initramfs loads.
PATH=/bin:/sbin:/usr/bin:/usr/sbin
export PATH

# busybox-static has no `mountpoint` applet: look at /proc/mounts (or /proc/self/mountinfo) instead.
mounted() { [ -r /proc/mounts ] && grep -q "^[^ ]* $1 " /proc/mounts; }
mounted /proc || mount -t proc proc /proc
mounted /sys || mount -t sysfs sysfs /sys
mounted /dev || mount -t devtmpfs devtmpfs /dev
out=/dev/ttyS0
[ -c "$out" ] || out=/dev/console
exec 0</dev/null 1>"$out" 2>&1

mount -o remount,rw / || echo "BFGUEST-ERROR: cannot remount / read-write"

one_line() { tr '\r\n' '  ' <"$1" | sed 's/ *$//'; }

echo "BFGUEST-BOOTED"

[ -f /etc/bf-check ] && echo "BFGUEST-FILE:$(one_line /etc/bf-check)"

fwcfg=/sys/firmware/qemu_fw_cfg/by_name/opt
cmdline="$(cat /proc/cmdline)"
[ -r "$fwcfg/bf.cmdline/raw" ] && cmdline="$cmdline $(cat "$fwcfg/bf.cmdline/raw")"
write=""
have_write=0
for tok in $cmdline; do
  case "$tok" in
    bf.write=*) write="${tok#bf.write=}"; have_write=1 ;;
  esac
done
if [ -r "$fwcfg/bf.write/raw" ]; then
  write="$(cat "$fwcfg/bf.write/raw")"
  have_write=1
fi
if [ "$have_write" = 1 ]; then
  mkdir -p /root
  printf '%s\n' "$write" >/root/bf-written.txt && sync && echo "BFGUEST-WROTE"
fi

[ -f /root/bf-written.txt ] && echo "BFGUEST-SEEN:$(one_line /root/bf-written.txt)"

if [ -f /etc/bf-hook.sh ]; then
  sh /etc/bf-hook.sh
  echo "BFGUEST-HOOK-EXIT:$?"
fi

sync
mount -o remount,ro / || echo "BFGUEST-ERROR: cannot remount / read-only"
sync
echo "BFGUEST-POWEROFF"
poweroff -f
echo o >/proc/sysrq-trigger
sleep 10

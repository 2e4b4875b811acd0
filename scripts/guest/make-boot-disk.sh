#!/usr/bin/env bash
# Builds a small bootable raw disk for the BackupFuse guest tests.
#
#   scripts/guest/make-boot-disk.sh OUT.raw [SIZE_MIB]        (SIZE_MIB default 256, minimum 48)
#   env BF_CHECK_CONTENT   content of /etc/bf-check in the guest (default "full-backup")
#   env BF_KERNEL_VERSION  kernel to use from /boot and /lib/modules (default: newest installed)
#
# Layout: GPT (sfdisk); partition 1 starts at 1 MiB, type Linux filesystem, attribute LegacyBIOSBootable,
# ends 1 MiB before the end of the disk; it holds an ext4 filesystem (no 64bit feature: syslinux cannot boot
# from 64bit ext4) with:
#   /bin/busybox (busybox-static) + prebuilt applet symlinks, /init.sh (guest-init.sh), /etc/bf-check,
#   /boot/vmlinuz (Debian linux-image-amd64), /boot/initrd.img (a tiny busybox initramfs built here from
#   initramfs-init.sh that loads virtio_pci, virtio_blk, ext4 + deps, qemu_fw_cfg), /boot/extlinux.conf and
#   the extlinux loader (ldlinux.sys/ldlinux.c32). The first 440 bytes of the disk hold syslinux gptmbr.bin,
#   which boots the legacy-bootable partition's extlinux: the disk boots on its own under SeaBIOS.
#
# Kernel command line (extlinux.conf): root=/dev/vda1 ro console=ttyS0,115200 init=/init.sh panic=1 quiet.
# The guest expects the disk on virtio-blk (if=virtio) as the first virtio disk.
#
# How it is built: the filesystem is a separate image populated with `mkfs.ext4 -d` (no mount), then
# loop-mounted only to run `extlinux --install` (extlinux needs a mounted filesystem), unmounted, and written
# into the partition offset with dd conv=sparse,notrunc. The result is written to OUT.raw.tmp and renamed, so
# the script is idempotent and never leaves a half-built OUT. Needs root (loop mount). Missing Debian packages
# are installed with apt-get.
set -euo pipefail

usage() { echo "usage: $0 OUT.raw [SIZE_MIB]" >&2; exit 2; }
[[ $# -ge 1 && $# -le 2 ]] || usage
out="$1"
size_mib="${2:-256}"
[[ "$size_mib" =~ ^[0-9]+$ ]] && ((size_mib >= 48)) || { echo "error: SIZE_MIB must be an integer >= 48, got '$size_mib'" >&2; exit 2; }
check_content="${BF_CHECK_CONTENT-full-backup}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# ---- packages --------------------------------------------------------------------------------------------
packages=(linux-image-amd64 busybox-static fdisk e2fsprogs extlinux syslinux-common cpio)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "make-boot-disk: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[[ $(id -u) -eq 0 ]] || { echo "error: make-boot-disk.sh needs root (loop mount for extlinux --install)" >&2; exit 1; }

kver="${BF_KERNEL_VERSION:-}"
if [[ -z "$kver" ]]; then
  kver="$(ls -1 /boot/vmlinuz-* 2>/dev/null | sed 's|^/boot/vmlinuz-||' | sort -V | tail -n1)"
fi
[[ -n "$kver" && -f "/boot/vmlinuz-$kver" ]] || { echo "error: no kernel /boot/vmlinuz-$kver (package linux-image-amd64)" >&2; exit 1; }
[[ -d "/lib/modules/$kver" ]] || { echo "error: no modules directory /lib/modules/$kver" >&2; exit 1; }
busybox=/bin/busybox
file -L "$busybox" 2>/dev/null | grep -q 'statically linked' || ldd "$busybox" 2>&1 | grep -q 'not a dynamic' ||
  { echo "error: $busybox is not statically linked (package busybox-static)" >&2; exit 1; }
mbr=/usr/lib/syslinux/mbr/gptmbr.bin
[[ -f "$mbr" ]] || mbr=/usr/lib/EXTLINUX/gptmbr.bin
[[ -f "$mbr" ]] || { echo "error: gptmbr.bin not found (package syslinux-common)" >&2; exit 1; }

# ---- work area -------------------------------------------------------------------------------------------
work="$(mktemp -d "${TMPDIR:-/tmp}/bfguest-build.XXXXXX")"
mnt="$work/mnt"
cleanup() {
  if mountpoint -q "$mnt" 2>/dev/null; then umount "$mnt" || umount -l "$mnt" || true; fi
  rm -rf "$work"
  rm -f "$out.tmp"
}
trap cleanup EXIT

# Prebuilt busybox applet links (relative to root dir $1), so neither root needs `busybox --install`.
install_busybox() {
  local root="$1" applet
  mkdir -p "$root/bin" "$root/sbin" "$root/usr/bin" "$root/usr/sbin"
  cp "$busybox" "$root/bin/busybox"
  while read -r applet; do
    [[ "$applet" == bin/busybox ]] && continue
    [[ -e "$root/$applet" ]] || ln -s "/bin/busybox" "$root/$applet"
  done < <("$busybox" --list-full)
}

# ---- initramfs -------------------------------------------------------------------------------------------
ird="$work/initramfs"
mkdir -p "$ird/lib/modules" "$ird/dev" "$ird/proc" "$ird/sys" "$ird/newroot"
install_busybox "$ird"
install -m 0755 "$here/initramfs-init.sh" "$ird/init"
: >"$ird/modules.order"
declare -A seen=()
# exfat, vfat and their code pages: file-level backups are presented as exFAT/FAT32 disks (optional: a kernel without
# them still boots; only the tests that mount such a disk in the guest need them).
for m in virtio_pci virtio_blk crc32c_generic ext4 qemu_fw_cfg exfat vfat nls_cp437 nls_utf8; do
  while read -r verb path _; do
    [[ "$verb" == insmod ]] || continue
    base="$(basename "$path")"
    [[ -n "${seen[$base]:-}" ]] && continue
    seen[$base]=1
    case "$path" in
      *.ko) cp "$path" "$ird/lib/modules/$base" ;;
      *.ko.xz) xz -dc "$path" >"$ird/lib/modules/${base%.xz}"; base="${base%.xz}" ;;
      *.ko.zst) zstd -qdc "$path" >"$ird/lib/modules/${base%.zst}"; base="${base%.zst}" ;;
      *) echo "error: unexpected module file $path" >&2; exit 1 ;;
    esac
    echo "$base" >>"$ird/modules.order"
  done < <(modprobe -S "$kver" --show-depends "$m")
done
grep -q '^virtio_blk.ko$' "$ird/modules.order" && grep -q '^ext4.ko$' "$ird/modules.order" ||
  { echo "error: could not resolve virtio_blk/ext4 modules for kernel $kver" >&2; exit 1; }
(cd "$ird" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet -R 0:0) | gzip -9 >"$work/initrd.img"

# ---- root filesystem tree --------------------------------------------------------------------------------
rootdir="$work/root"
mkdir -p "$rootdir"/{boot,dev,proc,sys,tmp,root,etc,mnt,run,var/tmp}
chmod 1777 "$rootdir/tmp" "$rootdir/var/tmp"
chmod 0700 "$rootdir/root"
install_busybox "$rootdir"
install -m 0755 "$here/guest-init.sh" "$rootdir/init.sh"
printf '%s\n' "$check_content" >"$rootdir/etc/bf-check"
echo "bfguest" >"$rootdir/etc/hostname"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$rootdir/etc/passwd"
printf 'root:x:0:\n' >"$rootdir/etc/group"
cp "/boot/vmlinuz-$kver" "$rootdir/boot/vmlinuz"
cp "$work/initrd.img" "$rootdir/boot/initrd.img"
cat >"$rootdir/boot/extlinux.conf" <<'EOF'
SERIAL 0 115200
DEFAULT bfguest
PROMPT 0
TIMEOUT 0
LABEL bfguest
  LINUX /boot/vmlinuz
  INITRD /boot/initrd.img
  APPEND root=/dev/vda1 ro console=ttyS0,115200 init=/init.sh panic=1 quiet
EOF

# ---- filesystem image ------------------------------------------------------------------------------------
sector=512
total_sectors=$((size_mib * 1024 * 1024 / sector))
part_start=2048                                   # 1 MiB
part_sectors=$((total_sectors - part_start - 2048))  # leave 1 MiB at the end (backup GPT lives there)
fsimg="$work/fs.img"
truncate -s $((part_sectors * sector)) "$fsimg"
# Fixed features: no 64bit (syslinux), no metadata_csum_seed/orphan_file (older tools); journal kept.
mkfs.ext4 -q -F -L bfroot -b 4096 -m 0 -d "$rootdir" \
  -O '^64bit,^metadata_csum_seed,^orphan_file' -E lazy_itable_init=0,lazy_journal_init=0 \
  "$fsimg" >/dev/null 2>"$work/mkfs.err" ||
  mkfs.ext4 -q -F -L bfroot -b 4096 -m 0 -d "$rootdir" -O '^64bit' "$fsimg" >/dev/null ||
  { cat "$work/mkfs.err" >&2; echo "error: mkfs.ext4 failed" >&2; exit 1; }

mkdir -p "$mnt"
mount -o loop "$fsimg" "$mnt"
extlinux --install "$mnt/boot" >/dev/null 2>"$work/extlinux.err" ||
  { cat "$work/extlinux.err" >&2; echo "error: extlinux --install failed" >&2; exit 1; }
umount "$mnt"
e2fsck -fn "$fsimg" >/dev/null 2>&1 || { e2fsck -fn "$fsimg" >&2 || true; echo "error: filesystem image fails e2fsck" >&2; exit 1; }

# ---- disk ------------------------------------------------------------------------------------------------
rm -f "$out.tmp"
truncate -s $((total_sectors * sector)) "$out.tmp"
sfdisk -q --no-reread --no-tell-kernel "$out.tmp" >/dev/null <<EOF
label: gpt
first-lba: 34
start=$part_start, size=$part_sectors, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="bfroot", attrs="LegacyBIOSBootable"
EOF
dd if="$mbr" of="$out.tmp" bs=440 count=1 conv=notrunc status=none
dd if="$fsimg" of="$out.tmp" bs=1M seek=$((part_start * sector)) oflag=seek_bytes conv=sparse,notrunc status=none
mv -f "$out.tmp" "$out"
echo "make-boot-disk: $out (${size_mib} MiB virtual, $(du -k "$out" | cut -f1) KiB allocated, kernel $kver, /etc/bf-check='$check_content')" >&2

#!/usr/bin/env bash
# Installs the .deb on a clean Debian 12 root made by debootstrap and uses it there (root, ~3 minutes, needs the
# Debian mirror). Too slow and too network-bound for every test run; PackagingTests does the cheap checks.
#   scripts/package-check.sh [PATH.deb]      (default: builds one with scripts/package.sh --fast)
# Steps, each checked:
#   1. dpkg -i --force-depends without fuse3: `backupfuse --version` runs and names the package to install,
#      and `backupfuse mount` refuses with that line (exit 1)
#   2. apt-get -f install pulls the dependencies: --version shows libfuse, fusermount3, /dev/fuse
#   3. backup -> plugin create -> mount (background) -> the plugin reads as a VHDX -> unmount
#   4. systemd (installed in the root) verifies the installed unit; dpkg -r keeps the conffile, dpkg -P removes it
set -euo pipefail
cd "$(dirname "$0")/.."

deb="${1:-}"
if [[ -z "$deb" ]]; then
  deb=$(scripts/package.sh --fast --out artifacts | tail -n1)
fi
deb=$(realpath "$deb")
command -v debootstrap >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }

root=$(mktemp -d /tmp/backupfuse-deb12.XXXXXX)
cleanup() { rm -rf --one-file-system "$root"; }
trap cleanup EXIT
step() { printf '\n== %s\n' "$*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

step "debootstrap --variant=minbase bookworm $root"
debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >/dev/null
cp "$deb" "$root/tmp/backupfuse.deb"

# Everything inside one private mount namespace: /dev, /proc and the FUSE mount vanish with it.
unshare --mount --propagation private bash -euo pipefail -s "$root" <<'INNER'
root="$1"
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { printf '\n== %s\n' "$*"; }
mount --rbind /dev "$root/dev"
mount -t proc proc "$root/proc"
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive "$@"; }

step "dpkg -i without the dependencies"
in_root dpkg -i --force-depends /tmp/backupfuse.deb >/dev/null 2>&1 || true
out=$(in_root backupfuse --version) || fail "--version exited $?"
echo "$out"
grep -q '^backupfuse 0\.' <<<"$out" || fail "no program line"
grep -q '^libfuse3 not found: install package fuse3 (Debian/Ubuntu: apt-get install fuse3)$' <<<"$out" || fail "no libfuse3 hint"
grep -q '^fusermount3 not found' <<<"$out" || fail "no fusermount3 hint"
mkdir -p "$root/tmp/vms" "$root/tmp/img"
set +e; err=$(in_root backupfuse mount /tmp/vms --images /tmp/img 2>&1); rc=$?; set -e
echo "mount: exit $rc: $err"
[[ $rc -eq 1 && "$err" == "error: libfuse3 not found: install package fuse3"* ]] || fail "mount did not refuse clearly"

step "apt-get -f install (fuse3, libfuse3-3, libssl3, ...)"
in_root apt-get update -qq
in_root apt-get -f install -y -qq >/dev/null
in_root dpkg -s backupfuse | grep -q '^Status: install ok installed' || fail "backupfuse not installed"
out=$(in_root backupfuse --version)
echo "$out"
grep -Eq '^libfuse 3\.[0-9]+\.[0-9]+ \(/.*libfuse3\.so' <<<"$out" || fail "no libfuse line"
grep -q '^fusermount3: /usr/bin/fusermount3$' <<<"$out" || fail "no fusermount3 line"
grep -q '^/dev/fuse: present$' <<<"$out" || fail "no /dev/fuse line"

step "backup, plugin create, mount, read as VHDX, unmount"
in_root sh -c 'head -c 8388608 /dev/urandom > /tmp/disk.raw && truncate -s 64M /tmp/disk.raw'
in_root backupfuse backup /tmp/disk.raw /tmp/img/full.bfi
in_root backupfuse plugin create /tmp/img/full.bfi /tmp/vms/disk.vhdx
in_root backupfuse mount /tmp/vms --images /tmp/img
in_root backupfuse status
signature=$(in_root head -c 8 /tmp/vms/disk.vhdx)
size=$(in_root stat -c %s /tmp/vms/disk.vhdx)
echo "disk.vhdx: signature '$signature', $size bytes"
in_root backupfuse unmount /tmp/vms
for _ in $(seq 50); do grep -q " $root/tmp/vms " /proc/mounts || break; sleep 0.1; done
! grep -q " $root/tmp/vms " /proc/mounts || fail "still mounted after unmount"
[[ "$signature" == "vhdxfile" ]] || fail "the plugin does not read as a VHDX"
(( size > 64 * 1024 * 1024 )) || fail "VHDX size $size is not larger than the disk"
in_root backupfuse export /tmp/vms/disk.vhdx /tmp/out.raw --format raw
in_root cmp /tmp/disk.raw /tmp/out.raw || fail "export differs from the disk"

step "systemd-analyze verify of the installed unit (systemd installed in the root)"
in_root apt-get install -y -qq --no-install-recommends systemd >/dev/null
in_root cp /etc/backupfuse/example.conf /etc/backupfuse/check.conf
in_root systemd-analyze verify backupfuse@check.service || fail "unit does not verify"
INNER

rm -f "$root/etc/backupfuse/check.conf"
step "dpkg -r keeps the conffile, dpkg -P removes it"
chroot "$root" dpkg -r backupfuse >/dev/null
[[ -f "$root/etc/backupfuse/example.conf" && ! -e "$root/usr/bin/backupfuse" ]] || fail "dpkg -r"
chroot "$root" dpkg -P backupfuse >/dev/null
[[ ! -e "$root/etc/backupfuse/example.conf" ]] || fail "dpkg -P left the conffile"

printf '\npackage-check: OK (%s, %s bytes)\n' "$(basename "$deb")" "$(stat -c %s "$deb")"

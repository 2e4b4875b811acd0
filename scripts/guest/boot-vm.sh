#!/usr/bin/env bash
# Boots a disk made by make-boot-disk.sh (or a VHDX/backup of it) headless under QEMU and checks the guest.
#
#   scripts/guest/boot-vm.sh --drive 'file=X,format=vhdx|raw[,...]' --log LOG
#                            [--append-extra 'bf.write=hello'] [--timeout 120] [--accel auto|kvm|tcg]
#                            [-- EXTRA QEMU ARGS...]
#
# The VM: qemu-system-x86_64 -m 512 -nodefaults -display none -no-reboot, serial console (ttyS0) written to
# LOG (lines end in CRLF), the drive attached as virtio-blk (if=virtio is added unless the spec has if=).
# The disk boots by itself (SeaBIOS -> gptmbr -> extlinux -> kernel + initramfs from the disk).
#
# Write requests / extra guest parameters: the kernel command line is fixed in the disk's extlinux.conf, so
# --append-extra TEXT is handed to the guest through QEMU fw_cfg as opt/bf.cmdline (a file, so any
# characters are fine); the guest's /init.sh reads /sys/firmware/qemu_fw_cfg/by_name/opt/bf.cmdline/raw and
# honours tokens like bf.write=<text> exactly as if they were on the kernel command line.
#
# Acceleration: --accel auto (default, or env BF_ACCEL) uses KVM only if it really works. /dev/kvm exists on
# these machines but KVM guests hang in early boot (nested virtualization), so the first auto run makes a
# trial boot of the same drive with KVM and snapshot=on (guest writes are discarded) and a short timeout
# (BF_KVM_TRIAL_TIMEOUT, default 25 s). The verdict ("kvm" or "tcg") is cached in BF_KVM_CACHE (default
# /tmp/bfguest-kvm-verdict.<uid>); delete that file to test again. A trial that fails fast (not a hang) is not
# cached: it may be the drive's fault, so that run just uses TCG.
#
# Exit status: 0 = qemu exited by itself (guest power-off) and LOG holds BFGUEST-BOOTED and BFGUEST-POWEROFF;
# 2 = usage error; 3 = timeout (qemu killed); 4 = qemu failed (its stderr is shown); 5 = the guest ran but the
# markers are missing (e.g. BFGUEST-INITRAMFS-ERROR, kernel panic). A one-line summary goes to stderr.
# A read-only drive (readonly=on, or a read-only FUSE file) still boots and exits 0: the guest prints
# "BFGUEST-ERROR: cannot remount / read-write" (reported here as a warning) and cannot honour bf.write.
# Use snapshot=on in the drive spec to boot a read-only image with writes going to a throw-away overlay.
set -euo pipefail

usage() {
  sed -n '4,7p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

drive=""
append_extra=""
timeout_s=120
log=""
accel="${BF_ACCEL:-auto}"
extra_qemu=()
while (($#)); do
  case "$1" in
    --drive) drive="${2:?}"; shift 2 ;;
    --append-extra) append_extra="${2?}"; shift 2 ;;
    --timeout) timeout_s="${2:?}"; shift 2 ;;
    --log) log="${2:?}"; shift 2 ;;
    --accel) accel="${2:?}"; shift 2 ;;
    --) shift; extra_qemu=("$@"); break ;;
    -h|--help) usage ;;
    *) echo "error: unknown argument '$1'" >&2; usage ;;
  esac
done
[[ -n "$drive" && -n "$log" ]] || { echo "error: --drive and --log are required" >&2; usage; }
[[ "$timeout_s" =~ ^[0-9]+$ ]] || { echo "error: --timeout wants whole seconds, got '$timeout_s'" >&2; exit 2; }
[[ "$accel" =~ ^(auto|kvm|tcg)$ ]] || { echo "error: --accel must be auto, kvm or tcg, got '$accel'" >&2; exit 2; }
[[ ",$drive," == *,if=* ]] || drive="$drive,if=virtio"
command -v qemu-system-x86_64 >/dev/null || {
  echo "boot-vm: installing qemu-system-x86" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-system-x86 >/dev/null
}

tmp="$(mktemp -d "${TMPDIR:-/tmp}/bfguest-vm.XXXXXX")"
trial_pid=""
trap '[[ -n "$trial_pid" ]] && kill -9 "$trial_pid" 2>/dev/null; rm -rf "$tmp"' EXIT

# run_qemu ACCEL DRIVE LOG TIMEOUT [fw_cfg file]: sets qemu_rc (124 = timeout) and fills $tmp/qemu.err.
run_qemu() {
  local acc="$1" drv="$2" lg="$3" t="$4" fw="${5:-}"
  local args=(-m 512 -nodefaults -vga none -display none -no-reboot -monitor none
              -serial "file:$lg" -drive "$drv")
  # No -cpu host with KVM: on these hosts it aborts on an MSR write (0x10a).
  if [[ "$acc" == kvm ]]; then args+=(-accel kvm); else args+=(-accel tcg); fi
  [[ -n "$fw" ]] && args+=(-fw_cfg "name=opt/bf.cmdline,file=$fw")
  rm -f "$lg"
  qemu_rc=0
  timeout --kill-after=5 "$t" qemu-system-x86_64 "${args[@]}" "${extra_qemu[@]}" \
    </dev/null >"$tmp/qemu.out" 2>"$tmp/qemu.err" || qemu_rc=$?
}

# kvm_trial DRIVE LOG TIMEOUT: sets verdict to kvm, tcg, or "" (failed fast for a reason that is not KVM's).
# Polls so that a "KVM internal error" (the guest is then stuck forever) ends the trial at once.
kvm_trial() {
  local drv="$1" lg="$2" t="$3" pid waited=0
  rm -f "$lg"
  qemu-system-x86_64 -m 512 -nodefaults -vga none -display none -no-reboot -monitor none \
    -serial "file:$lg" -drive "$drv" -accel kvm "${extra_qemu[@]}" </dev/null >/dev/null 2>"$tmp/trial.err" &
  pid=$!
  trial_pid=$pid
  verdict=""
  while kill -0 "$pid" 2>/dev/null; do
    if grep -q 'KVM internal error\|emulation failure' "$tmp/trial.err" 2>/dev/null || ((waited >= t * 2)); then
      kill "$pid" 2>/dev/null || true
      sleep 1
      kill -9 "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
      trial_pid=""
      verdict=tcg
      return
    fi
    sleep 0.5
    waited=$((waited + 1))
  done
  local rc=0
  wait "$pid" || rc=$?
  trial_pid=""
  if ((rc == 0)) && has_marker BFGUEST-POWEROFF "$lg"; then
    verdict=kvm
  elif grep -qi 'kvm' "$tmp/trial.err"; then
    verdict=tcg
  else
    echo "boot-vm: KVM trial failed (rc $rc; verdict not cached): $(head -c 300 "$tmp/trial.err")" >&2
  fi
}

has_marker() { [[ -f "$2" ]] && tr -d '\r' <"$2" | grep -aq -- "$1"; }

if [[ "$accel" == auto ]]; then
  cache="${BF_KVM_CACHE:-/tmp/bfguest-kvm-verdict.$(id -u)}"
  verdict="$(cat "$cache" 2>/dev/null || true)"
  if [[ "$verdict" != kvm && "$verdict" != tcg ]]; then
    if [[ -r /dev/kvm && -w /dev/kvm ]]; then
      trial_t="${BF_KVM_TRIAL_TIMEOUT:-25}"
      echo "boot-vm: trying KVM (trial boot, timeout ${trial_t} s; verdict cached in $cache)" >&2
      kvm_trial "$drive,snapshot=on" "$tmp/trial.log" "$trial_t"
    else
      verdict=tcg
    fi
    [[ -n "$verdict" ]] && { echo "$verdict" >"$cache.$$" && mv -f "$cache.$$" "$cache"; echo "boot-vm: KVM verdict: $verdict" >&2; }
  fi
  accel="${verdict:-tcg}"
fi

fw=""
if [[ -n "$append_extra" ]]; then
  fw="$tmp/bf.cmdline"
  printf '%s' "$append_extra" >"$fw"
fi

start_ns=$(date +%s%N)
run_qemu "$accel" "$drive" "$log" "$timeout_s" "$fw"
elapsed="$(( ($(date +%s%N) - start_ns) / 1000000 ))"
secs="$((elapsed / 1000)).$(printf '%03d' $((elapsed % 1000)))"

if ((qemu_rc == 124 || qemu_rc == 137)); then
  echo "boot-vm: TIMEOUT after ${timeout_s} s (accel $accel): qemu killed; last console lines:" >&2
  tr -d '\r' <"$log" 2>/dev/null | tail -n 5 >&2 || true
  exit 3
fi
if ((qemu_rc != 0)); then
  echo "boot-vm: qemu failed (rc $qemu_rc, accel $accel, drive $drive):" >&2
  cat "$tmp/qemu.err" >&2
  exit 4
fi
if ! has_marker BFGUEST-BOOTED "$log" || ! has_marker BFGUEST-POWEROFF "$log"; then
  echo "boot-vm: guest did not complete (no BFGUEST-BOOTED/BFGUEST-POWEROFF in $log, accel $accel, ${secs} s); last console lines:" >&2
  tr -d '\r' <"$log" 2>/dev/null | grep -av '^$' | tail -n 8 >&2 || true
  exit 5
fi
if tr -d '\r' <"$log" | grep -aq 'BFGUEST-ERROR'; then
  echo "boot-vm: warning: the guest reported: $(tr -d '\r' <"$log" | grep -a 'BFGUEST-ERROR' | head -n 3 | tr '\n' ' ')(read-only drive?)" >&2
fi
echo "boot-vm: ok (accel $accel, ${secs} s, drive $drive)" >&2

#!/usr/bin/env bash
# End-to-end check of the guest tooling: build a disk, boot it raw (check file, write, persistence, a check
# file changed offline with set-check-file.sh), then convert it to VHDX with qemu-img and boot that.
#
#   scripts/guest/selftest.sh [--keep]      (--keep leaves the temp dir with disks and logs)
#   env BF_ACCEL=auto|kvm|tcg               passed on to boot-vm.sh (default auto)
#
# Exits 0 only if every step passes; prints a timing for each step.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
keep=0
[[ "${1:-}" == --keep ]] && keep=1

work="$(mktemp -d "${TMPDIR:-/tmp}/bfguest-selftest.XXXXXX")"
((keep)) || trap 'rm -rf "$work"' EXIT
disk="$work/disk.raw"
text="persist-$RANDOM-$$"

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
step_start=0
begin() { step_name="$1"; step_start=$(now_ms); }
end() { local ms=$(( $(now_ms) - step_start )); printf '  %-46s %3d.%03d s\n' "$step_name" $((ms / 1000)) $((ms % 1000)); }
fail() { echo "SELFTEST FAIL: $*" >&2; if ((keep)); then echo "(files kept in $work)" >&2; fi; exit 1; }

# log_has LOG LINE / log_lacks LOG PREFIX: whole-line match on the console log, CRLF tolerated.
log_has() { tr -d '\r' <"$1" | grep -aqxF -- "$2" || fail "$1: expected line '$2'; markers seen: $(tr -d '\r' <"$1" | grep -a BFGUEST | tr '\n' ' ')"; }
log_lacks() { ! tr -d '\r' <"$1" | grep -aq -- "^$2" || fail "$1: unexpected line starting '$2'"; }

boot() { # boot NAME DRIVE [APPEND]
  local name="$1" drive="$2" extra="${3:-}"
  local args=(--drive "$drive" --log "$work/$name.log" --timeout 120)
  [[ -n "$extra" ]] && args+=(--append-extra "$extra")
  "$here/boot-vm.sh" "${args[@]}" 2>"$work/$name.err" || { cat "$work/$name.err" >&2; fail "boot '$name' failed"; }
  grep -o 'accel [a-z]*' "$work/$name.err" | tail -n1 >"$work/accel"
}

echo "guest selftest in $work"
begin "build disk (make-boot-disk.sh, 256 MiB)"
"$here/make-boot-disk.sh" "$disk" 256 2>"$work/build.err" || { cat "$work/build.err" >&2; fail "make-boot-disk.sh failed"; }
end

begin "boot raw: first boot"
boot first "file=$disk,format=raw"
end
log_has "$work/first.log" "BFGUEST-BOOTED"
log_has "$work/first.log" "BFGUEST-FILE:full-backup"
log_lacks "$work/first.log" "BFGUEST-SEEN:"
log_lacks "$work/first.log" "BFGUEST-WROTE"
log_has "$work/first.log" "BFGUEST-POWEROFF"

begin "boot raw: write request bf.write=$text"
boot write "file=$disk,format=raw" "bf.write=$text"
end
log_has "$work/write.log" "BFGUEST-WROTE"
log_has "$work/write.log" "BFGUEST-SEEN:$text"

begin "boot raw: persistence check"
boot again "file=$disk,format=raw"
end
log_lacks "$work/again.log" "BFGUEST-WROTE"
log_has "$work/again.log" "BFGUEST-SEEN:$text"

begin "set-check-file.sh + boot raw"
"$here/set-check-file.sh" "$disk" "incremental-1" 2>"$work/setcheck.err" || { cat "$work/setcheck.err" >&2; fail "set-check-file.sh failed"; }
boot check "file=$disk,format=raw"
end
log_has "$work/check.log" "BFGUEST-FILE:incremental-1"
log_has "$work/check.log" "BFGUEST-SEEN:$text"
e2fsck -fn "$disk?offset=1048576" >"$work/fsck.out" 2>&1 || { cat "$work/fsck.out" >&2; fail "guest filesystem is not clean after the boots"; }

begin "qemu-img convert -O vhdx"
qemu-img convert -f raw -O vhdx "$disk" "$work/disk.vhdx"
end
begin "boot vhdx (format=vhdx)"
boot vhdx "file=$work/disk.vhdx,format=vhdx"
end
log_has "$work/vhdx.log" "BFGUEST-BOOTED"
log_has "$work/vhdx.log" "BFGUEST-FILE:incremental-1"
log_has "$work/vhdx.log" "BFGUEST-SEEN:$text"
log_has "$work/vhdx.log" "BFGUEST-POWEROFF"

echo "  disk: 256 MiB virtual, raw allocated $(du -k "$disk" | cut -f1) KiB, vhdx file $(du -k "$work/disk.vhdx" | cut -f1) KiB; $(cat "$work/accel")"
echo "SELFTEST PASS"

#!/usr/bin/env bash
# Builds the Debian package artifacts/backupfuse_<version>_amd64.deb from a NativeAOT publish (one native executable):
#   /usr/bin/backupfuse                          the program (no .NET runtime needed on the target)
#   /lib/systemd/system/backupfuse@.service      one mount per /etc/backupfuse/<instance>.conf
#   /lib/systemd/system/backupfuse-boot-check.{service,timer}  nightly boot check (shipped disabled)
#   /etc/backupfuse/example.conf                 conffile: a commented example configuration
#   /usr/share/doc/backupfuse/{copyright,operations.md}
# With --rid linux-arm64 the same package for arm64 (backupfuse_<version>_arm64.deb; a self-contained single file
# with the JIT, see below). With --rid osx-arm64 or
# osx-x64 a tarball backupfuse_<version>_<rid>.tar.gz (backupfuse, operations.md, copyright): a self-contained
# single file for macOS with macFUSE (see docs/operations.md "macOS"; not yet tested on a Mac).
#
#   scripts/package.sh                   publish, then package (linux-x64)
#   scripts/package.sh --rid RID         linux-x64 (default), linux-arm64, osx-arm64 or osx-x64
#   scripts/package.sh --all             all four, one after the other (prints four paths)
#   scripts/package.sh --binary PATH     package an already published binary (same publish
#                                        arguments as below; the tests and the Dockerfile use them)
#   scripts/package.sh --out DIR         write the package to DIR instead of artifacts/
#   scripts/package.sh --fast            gzip instead of xz (32 MiB instead of 24, 3 s instead of 45; for tests)
# Prints the path of each package on standard output (last lines). Needs the .NET SDK (the runtime packs of
# the other RIDs come from the NuGet feed at restore), dpkg-deb, and for linux-x64 clang + zlib1g-dev (NativeAOT).
set -euo pipefail
cd "$(dirname "$0")/.."

binary=""
out="artifacts"
rid="linux-x64"
all=0
fast=()
compression=(-Zxz)
while (($#)); do
  case "$1" in
    --binary) binary="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --rid) rid="$2"; shift 2 ;;
    --all) all=1; shift ;;
    --fast) compression=(-Zgzip); fast=(--fast); shift ;;
    *) echo "usage: scripts/package.sh [--rid RID | --all] [--binary PATH] [--out DIR] [--fast]" >&2; exit 2 ;;
  esac
done

if ((all)); then
  if [[ -n "$binary" ]]; then
    echo "error: --all publishes every RID itself; --binary packages one" >&2
    exit 2
  fi
  for r in linux-x64 linux-arm64 osx-arm64 osx-x64; do
    "$0" --rid "$r" --out "$out" "${fast[@]}" | tail -n1
  done
  exit 0
fi

case "$rid" in
  linux-x64) arch=amd64 ;;
  linux-arm64) arch=arm64 ;;
  osx-arm64|osx-x64) arch="" ;;
  *) echo "error: unknown --rid $rid (linux-x64, linux-arm64, osx-arm64, osx-x64)" >&2; exit 2 ;;
esac

version=$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' Directory.Build.props | head -n1)
if [[ -z "$version" ]]; then
  echo "error: no <Version> in Directory.Build.props" >&2
  exit 1
fi

mkdir -p "$out"
out=$(cd "$out" && pwd)
work="$out/deb-build-$rid"
rm -rf "$work"
mkdir -p "$work"

if [[ -z "$binary" && "$rid" == linux-x64 ]]; then
  # NativeAOT (one native executable, no JIT), the same publish as the tests' and the Dockerfile's build stage.
  scripts/publish.sh "$work/publish"
  binary="$work/publish/backupfuse"
elif [[ -z "$binary" ]]; then
  # The same publish for another RID, built under $work (--artifacts-path) so the checkout's obj/ and bin/
  # (restored for linux-x64) are left alone. macOS: the SDK signs the apphost ad hoc, which Apple silicon requires.
  # Single-file with the JIT, not NativeAOT: ILCompiler does not cross-compile to another OS (macOS), and to
  # linux-arm64 only with an arm64 clang sysroot this build host does not have.
  dotnet publish src/BackupFuse.Daemon/BackupFuse.Daemon.csproj -c Release -r "$rid" --self-contained \
    -p:PublishSingleFile=true -p:DebugType=none --artifacts-path "$work/build" -o "$work/publish" --nologo >&2
  binary="$work/publish/backupfuse"
fi
if [[ ! -f "$binary" ]]; then
  echo "error: $binary does not exist" >&2
  exit 1
fi

if [[ -z "$arch" ]]; then
  # macOS: a tarball (no .deb); the executable keeps its mode bits.
  stage="$work/backupfuse-$version-$rid"
  install -D -m 0755 "$binary" "$stage/backupfuse"
  install -D -m 0644 docs/operations.md "$stage/operations.md"
  install -D -m 0644 packaging/debian/copyright "$stage/copyright"
  tarball="$out/backupfuse_${version}_${rid}.tar.gz"
  tar -C "$work" --owner=0 --group=0 -czf "$tarball" "$(basename "$stage")"
  rm -rf "$work"
  echo "$tarball"
  exit 0
fi
if [[ ! -x "$binary" ]]; then
  echo "error: $binary is not an executable" >&2
  exit 1
fi

root="$work/root"
install -D -m 0755 "$binary" "$root/usr/bin/backupfuse"
install -D -m 0644 packaging/systemd/backupfuse@.service "$root/lib/systemd/system/backupfuse@.service"
for unit in backupfuse-boot-check.service backupfuse-boot-check.timer; do
  install -D -m 0644 "packaging/systemd/$unit" "$root/lib/systemd/system/$unit" # not enabled: see operations.md
done
install -D -m 0644 packaging/systemd/example.conf "$root/etc/backupfuse/example.conf"
install -D -m 0644 packaging/debian/copyright "$root/usr/share/doc/backupfuse/copyright"
install -D -m 0644 docs/operations.md "$root/usr/share/doc/backupfuse/operations.md"

install -d -m 0755 "$root/DEBIAN"
install -m 0644 packaging/debian/conffiles "$root/DEBIAN/conffiles"
for script in postinst prerm postrm; do
  install -m 0755 "packaging/debian/$script" "$root/DEBIAN/$script"
done
installed_kib=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
# The glibc floor: a NativeAOT binary is linked against the build host's glibc (Debian 12: 2.34), so the amd64
# package takes it from the binary's versioned symbols; the JIT single file (arm64) runs on 2.27.
glibc=2.27
if [[ $arch == amd64 ]] && command -v objdump >/dev/null 2>&1; then
  needed=$(objdump -T "$binary" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n1)
  [[ -z $needed ]] || glibc=$needed
fi
sed -e "s/@VERSION@/$version/" -e "s/@INSTALLED_SIZE@/$installed_kib/" -e "s/^Architecture: amd64$/Architecture: $arch/" \
  -e "s/libc6 (>= 2.27)/libc6 (>= $glibc)/" packaging/debian/control.in > "$root/DEBIAN/control"

deb="$out/backupfuse_${version}_${arch}.deb"
# --root-owner-group: every file root:root whoever builds; xz packs the 16 MiB NativeAOT executable (70 MiB single file
# for arm64) to about a third.
dpkg-deb --root-owner-group "${compression[@]}" --build "$root" "$deb" >&2
rm -rf "$work"
echo "$deb"

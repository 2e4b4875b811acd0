#!/usr/bin/env bash
# Builds the Debian package artifacts/backupfuse_<version>_amd64.deb from a self-contained single-file publish:
#   /usr/bin/backupfuse                          the program (no .NET runtime needed on the target)
#   /lib/systemd/system/backupfuse@.service      one mount per /etc/backupfuse/<instance>.conf
#   /etc/backupfuse/example.conf                 conffile: a commented example configuration
#   /usr/share/doc/backupfuse/{copyright,operations.md}
#
#   scripts/package.sh                   publish, then package
#   scripts/package.sh --binary PATH     package an already published single-file binary (same publish
#                                        arguments as below; the tests and the Dockerfile use them)
#   scripts/package.sh --out DIR         write the .deb to DIR instead of artifacts/
#   scripts/package.sh --fast            gzip instead of xz (32 MiB instead of 24, 3 s instead of 45; for tests)
# Prints the path of the .deb on standard output (last line). Needs the .NET SDK and dpkg-deb.
set -euo pipefail
cd "$(dirname "$0")/.."

binary=""
out="artifacts"
compression=(-Zxz)
while (($#)); do
  case "$1" in
    --binary) binary="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --fast) compression=(-Zgzip); shift ;;
    *) echo "usage: scripts/package.sh [--binary PATH] [--out DIR] [--fast]" >&2; exit 2 ;;
  esac
done

version=$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' Directory.Build.props | head -n1)
if [[ -z "$version" ]]; then
  echo "error: no <Version> in Directory.Build.props" >&2
  exit 1
fi

mkdir -p "$out"
out=$(cd "$out" && pwd)
work="$out/deb-build"
rm -rf "$work"
mkdir -p "$work"

if [[ -z "$binary" ]]; then
  # The same arguments as the Dockerfile's build stage.
  dotnet publish src/BackupFuse.Daemon/BackupFuse.Daemon.csproj -c Release -r linux-x64 --self-contained \
    -p:PublishSingleFile=true -p:DebugType=none -o "$work/publish" --nologo >&2
  binary="$work/publish/backupfuse"
fi
if [[ ! -x "$binary" ]]; then
  echo "error: $binary is not an executable" >&2
  exit 1
fi

root="$work/root"
install -D -m 0755 "$binary" "$root/usr/bin/backupfuse"
install -D -m 0644 packaging/systemd/backupfuse@.service "$root/lib/systemd/system/backupfuse@.service"
install -D -m 0644 packaging/systemd/example.conf "$root/etc/backupfuse/example.conf"
install -D -m 0644 packaging/debian/copyright "$root/usr/share/doc/backupfuse/copyright"
install -D -m 0644 docs/operations.md "$root/usr/share/doc/backupfuse/operations.md"

install -d -m 0755 "$root/DEBIAN"
install -m 0644 packaging/debian/conffiles "$root/DEBIAN/conffiles"
for script in postinst prerm postrm; do
  install -m 0755 "packaging/debian/$script" "$root/DEBIAN/$script"
done
installed_kib=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@INSTALLED_SIZE@/$installed_kib/" packaging/debian/control.in > "$root/DEBIAN/control"

deb="$out/backupfuse_${version}_amd64.deb"
# --root-owner-group: every file root:root whoever builds; xz keeps the 70 MiB executable near 24 MiB.
dpkg-deb --root-owner-group "${compression[@]}" --build "$root" "$deb" >&2
rm -rf "$work"
echo "$deb"

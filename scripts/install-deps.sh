#!/usr/bin/env bash
# Installs what BackupFuse needs on a Debian 12 machine (run as root, or with sudo available).
#   scripts/install-deps.sh          runtime + demo tools (fuse3, qemu-utils, libvhdi-utils, 7zip;
#                                    qemu-system-x86 and ovmf for boot-check)
#   scripts/install-deps.sh --test   also what the tests use: libfuse3-dev + gcc for the struct layout check,
#                                    systemd (systemd-analyze verify for the unit file);
#                                    a Debian kernel, busybox, extlinux, sfdisk/mkfs for the bootable test guest;
#                                    qemu-system-x86 (the hypervisor, and qemu-storage-daemon) to boot it;
#                                    docker.io + debootstrap for DockerTests (a local engine, a Debian base image);
#                                    libvirt-daemon-system + libvirt-clients + virtinst for LibvirtTests (libvirtd, virsh, virt-install)
#                                    libvmdk-utils (vmdkinfo) for the .vmdk plugin format's oracle
#                                    gcc-aarch64-linux-gnu + libc6-dev-arm64-cross: the linux-arm64 struct/flag oracle (NativeAbiTests)
#                                    clang + zlib1g-dev: the NativeAOT publish of the shipped binary (scripts/package.sh)
#                                    chromium (BootCheckTests open the boot-check report in it)
#                                    nginx-light + openssl and s3rver (npm, into /opt/backupfuse-test) for the remote
#                                    repository tests (RemoteHttpTests, RemoteS3Tests)
# Packages already present are not reinstalled; apt-get runs only when something is missing.
set -euo pipefail

packages=(fuse3 libfuse3-3 libdeflate0 libzstd1 qemu-utils libvhdi-utils 7zip qemu-system-x86 ovmf)
if [[ "${1:-}" == "--test" ]]; then
  packages+=(libfuse3-dev gcc libc6-dev gcc-aarch64-linux-gnu libc6-dev-arm64-cross systemd e2fsprogs fdisk qemu-system-x86 linux-image-amd64 busybox-static extlinux syslinux-common cpio docker.io debootstrap libvirt-daemon-system libvirt-clients virtinst libvmdk-utils nginx-light openssl chromium)
  packages+=(gdisk xfsprogs ntfs-3g partclone) # volume backups: sgdisk -v, used-block maps of XFS/NTFS, the partclone bench peer
  packages+=(exfatprogs dosfstools exfat-fuse fusefat mtools) # file-level backups: fsck.exfat/fsck.vfat, FUSE drivers, mdir
  packages+=(clang zlib1g-dev) # the NativeAOT publish (scripts/package.sh, scripts/test.sh): ILCompiler links with clang
  packages+=(afl++) # fuzzing: scripts/fuzz.sh drives SharpFuzz targets with afl-fuzz
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [[ "${1:-}" == "--test" && ! -x /opt/backupfuse-test/node_modules/.bin/s3rver ]]; then
  echo "installing: s3rver@3 (npm) into /opt/backupfuse-test" >&2
  if ! command -v npm >/dev/null 2>&1; then
    $( [[ $(id -u) -ne 0 ]] && echo sudo ) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  fi
  mkdir -p /opt/backupfuse-test
  (cd /opt/backupfuse-test && npm install --no-audit --no-fund --silent s3rver@3 >/dev/null)
fi

if ! command -v dotnet >/dev/null 2>&1; then
  echo "error: the .NET 10 SDK is needed (dotnet not found on PATH); see README.md, section Install" >&2
  exit 1
fi

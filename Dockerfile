# BackupFuse daemon image: `backupfuse mount` in the foreground as PID 1.
#
#   docker build -t backupfuse .
#   mkdir -p /srv/backupfuse/vms    # plugin files go in vms/; the parent is bound, the mount is made below it
#   docker run -d --name backupfuse --restart unless-stopped --device /dev/fuse --cap-add SYS_ADMIN \
#     --security-opt apparmor=unconfined \
#     -v /backups:/backups:ro -v /srv/backupfuse:/srv/backupfuse:rshared backupfuse
#   docker stop backupfuse        # SIGTERM: lazy unmount, open files served until closed, exit 0
#
# Bind the PARENT of the plugin directory, not the directory itself: after a `docker kill` (or an OOM kill)
# the FUSE mount stays on the host, dead, because its auto_unmount watchdog died with the container. Docker
# cannot bind a dead mount as a volume ("mkdir ...: file exists"), so a container bound to /srv/backupfuse/vms
# itself could never start again. Bound one level up, it starts, finds the dead mount below it and removes it
# (mount clears a dead BackupFuse mount of its own mount point), and mounts again: a restart policy recovers.
#
# Stage "build" publishes the same NativeAOT binary as scripts/package.sh (the .deb), so the image and the
# package run one tested artifact (ILCompiler links with clang; the SDK image has none, so it is installed). The SDK image is pinned to the feature band global.json asks
# for (the floating sdk:10.0 tag moves to newer bands, which global.json's latestPatch refuses).
# The runtime stage is runtime-deps (glibc, libstdc++, OpenSSL; no .NET runtime needed) plus fuse3 for libfuse3
# and fusermount3 (auto_unmount uses it). The daemon handles SIGTERM/SIGINT itself, so it runs directly as
# PID 1 (exec-form ENTRYPOINT, no shell) and `docker stop` reaches it.
# Build arguments (BuildKit builds only the stages a build needs):
#   BUILD_IMAGE, RUNTIME_IMAGE  the two base images (e.g. a local mirror, or a Debian 12 image: any glibc
#                               distribution with apt; fuse3, libdeflate0 and libzstd1 are installed unless present)
#   BINARY_FROM=prebuilt        take packaging/docker/backupfuse from the context instead of the SDK stage
#                               (a binary published as scripts/package.sh does; no SDK image is needed)
# docs/operations.md (section Docker) explains the run options.
ARG BUILD_IMAGE=mcr.microsoft.com/dotnet/sdk:10.0.401-noble
ARG RUNTIME_IMAGE=mcr.microsoft.com/dotnet/runtime-deps:10.0-noble
ARG BINARY_FROM=build

FROM ${BUILD_IMAGE} AS build
RUN if ! dpkg -s clang zlib1g-dev >/dev/null 2>&1; then \
      apt-get update && apt-get install -y --no-install-recommends clang zlib1g-dev && rm -rf /var/lib/apt/lists/*; \
    fi
WORKDIR /src
COPY global.json Directory.Build.props Directory.Packages.props .editorconfig ./
COPY src/ src/
RUN dotnet publish src/BackupFuse.Daemon/BackupFuse.Daemon.csproj -c Release -r linux-x64 --self-contained \
    -p:PublishAot=true -p:DebugType=none -o /out

FROM scratch AS prebuilt
COPY packaging/docker/ /out/

FROM ${BINARY_FROM} AS binary

FROM ${RUNTIME_IMAGE}
RUN if ! dpkg -s fuse3 libdeflate0 libzstd1 >/dev/null 2>&1; then \
      apt-get update \
      && apt-get install -y --no-install-recommends fuse3 libdeflate0 libzstd1 \
      && rm -rf /var/lib/apt/lists/*; \
    fi
COPY --from=binary /out/backupfuse /usr/bin/backupfuse
# One malloc arena from the daemon's first malloc on (docs/operations.md, memory); `docker run -e` overrides it.
ENV MALLOC_ARENA_MAX=1
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/backupfuse"]
CMD ["mount", "/srv/backupfuse/vms", "--images", "/backups", "--foreground"]

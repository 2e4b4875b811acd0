# BackupFuse daemon image: `backupfuse mount` in the foreground as PID 1.
#
#   docker build -t backupfuse .
#   docker run -d --name backupfuse --device /dev/fuse --cap-add SYS_ADMIN \
#     --security-opt apparmor=unconfined \
#     -v /backups:/backups:ro -v /vms:/vms:rshared backupfuse
#   docker stop backupfuse        # SIGTERM: lazy unmount, open files served until closed, exit 0
#
# Stage 1 publishes the same self-contained single-file binary as scripts/package.sh (the .deb), so the
# image and the package run one tested artifact. The SDK image is pinned to the feature band global.json asks
# for (the floating sdk:10.0 tag moves to newer bands, which global.json's latestPatch refuses).
# Stage 2 is runtime-deps (glibc, libstdc++, OpenSSL; no .NET runtime needed) plus fuse3 for libfuse3 and
# fusermount3 (auto_unmount uses it). The daemon handles SIGTERM/SIGINT itself, so it runs directly as PID 1
# (exec-form ENTRYPOINT, no shell) and `docker stop` reaches it.
# docs/operations.md (section Docker) explains the run options.
FROM mcr.microsoft.com/dotnet/sdk:10.0.401-noble AS build
WORKDIR /src
COPY global.json Directory.Build.props Directory.Packages.props .editorconfig ./
COPY src/ src/
RUN dotnet publish src/BackupFuse.Daemon/BackupFuse.Daemon.csproj -c Release -r linux-x64 --self-contained \
    -p:PublishSingleFile=true -p:DebugType=none -o /out

FROM mcr.microsoft.com/dotnet/runtime-deps:10.0-noble
RUN apt-get update \
 && apt-get install -y --no-install-recommends fuse3 libdeflate0 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/backupfuse /usr/bin/backupfuse
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/backupfuse"]
CMD ["mount", "/vms", "--images", "/backups", "--foreground"]

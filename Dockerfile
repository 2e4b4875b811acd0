# BackupFuse daemon image: `backupfuse mount` in the foreground as PID 1.
#
#   docker build -t backupfuse .
#   docker run -d --name backupfuse --device /dev/fuse --cap-add SYS_ADMIN \
#     --security-opt apparmor=unconfined \
#     -v /backups:/backups:ro -v /vms:/vms:rshared backupfuse
#
# Stage 1 builds a framework-dependent publish with the SDK; stage 2 is the runtime plus fuse3 (for
# fusermount3, which auto_unmount uses). The daemon handles SIGTERM itself (clean unmount on `docker stop`),
# so it runs directly as PID 1 with no shell in between (exec-form ENTRYPOINT).
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
COPY global.json Directory.Build.props Directory.Packages.props .editorconfig ./
COPY src/ src/
RUN dotnet publish src/BackupFuse.Daemon/BackupFuse.Daemon.csproj -c Release -o /out

FROM mcr.microsoft.com/dotnet/runtime:10.0
RUN apt-get update \
 && apt-get install -y --no-install-recommends fuse3 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/ /opt/backupfuse/
STOPSIGNAL SIGTERM
ENTRYPOINT ["/opt/backupfuse/backupfuse"]
CMD ["mount", "/vms", "--images", "/backups", "--foreground"]

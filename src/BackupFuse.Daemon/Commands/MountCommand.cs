using System.CommandLine;
using System.Diagnostics;
using BackupFuse.Core;
using BackupFuse.Daemon.Cli;
using BackupFuse.Daemon.Mounting;
using BackupFuse.Daemon.BackupPoints;
using BackupFuse.Fuse;
using BackupFuse.Fuse.Overlay;
using Serilog;

namespace BackupFuse.Daemon.Commands;

/// <summary><c>backupfuse mount</c>: serve a directory with its plugin files read as VHDX disks.</summary>
public static class MountCommand
{
    private static readonly Argument<string> Dir = new("dir")
    {
        Description = "Directory holding plugin files (*.vhdx) and anything else the hypervisor keeps there.",
    };

    private static readonly Option<string[]> Images = new("--images")
    {
        Description = "Directory, s3://BUCKET/PREFIX/ or https://HOST/PATH/ to find backup images in (repeatable, mixable). Plugins may only point at images below these.",
        AllowMultipleArgumentsPerToken = false,
        Arity = ArgumentArity.OneOrMore,
        Required = true,
    };

    private static readonly Option<string?> At = new("--at")
    {
        Description = "Mount at this (empty) directory instead of over <dir> itself.",
    };

    private static readonly Option<bool> ReadOnly = new("--read-only")
    {
        Description = "Refuse every write through the mount (EROFS).",
    };

    private static readonly Option<bool> Volatile = new("--volatile")
    {
        Description = "Keep the guests' changes in a temporary directory and drop them at unmount (try things out, keep nothing).",
    };

    private static readonly Option<bool> AllowOther = new("--allow-other")
    {
        Description = "Let other users (e.g. a libvirt qemu user) use the mount. Non-root needs user_allow_other in /etc/fuse.conf.",
    };

    private static readonly Option<string?> Owner = new("--owner")
    {
        Description = "Show every plugin as owned by USER[:GROUP] (names or ids; e.g. libvirt-qemu:libvirt-qemu), so that user may open it " +
            "without a chown. Only how the mount presents plugins: the plugin files stay as they are, and whether a plugin may " +
            "serve a backup still depends on its file's real owner. Other users need --allow-other too.",
    };

    private static readonly Option<string?> Mode = new("--mode")
    {
        Description = "Show every plugin with these permission bits (octal, e.g. 0660); read-only plugins never show write bits.",
    };

    private static readonly Option<bool> Foreground = new("--foreground", "-f")
    {
        Description = "Stay in the foreground until unmounted (for systemd, Docker and debugging). Without it the daemon goes to the background once the mount is live.",
    };

    private static readonly Option<long?> CacheSize = ByteSizeOption.Create("--cache-size",
        "Memory for cached backup data (decompressed chunks and index pages) of ALL open disks together, e.g. 64M, 1G " +
        $"(default {CacheBudget.DefaultCapacityBytes >> 20}M). The daemon itself needs some 40-300 MiB beside it.");

    private static readonly PassphraseOptions Passphrase = new();

    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var command = new Command("mount",
            "Mount <dir> so that its plugin files read as complete VHDX disks of their backup points.\n" +
            "All other files pass through unchanged (read, write, create, rename, ...).\n" +
            "What a VM writes to a disk goes to a differencing VHDX in .backupfuse/ beside its plugin; the backup is never\n" +
            "modified ('backupfuse reset' drops the changes, 'backupfuse export' flattens them).\n\n" +
            "Examples:\n" +
            "  backupfuse mount /vms --images /backups\n" +
            "  backupfuse mount /vms --images /backups --images /mnt/usb/backups --at /mnt/vms --read-only\n" +
            "  backupfuse mount /vms --images /backups --allow-other --owner libvirt-qemu:libvirt-qemu --mode 0660   (for libvirt)\n" +
            "Unmount with 'backupfuse unmount /vms' (or fusermount3 -u /vms).");
        command.Arguments.Add(Dir);
        command.Options.Add(Images);
        command.Options.Add(At);
        command.Options.Add(ReadOnly);
        command.Options.Add(Volatile);
        command.Options.Add(AllowOther);
        command.Options.Add(Owner);
        command.Options.Add(Mode);
        command.Options.Add(Foreground);
        Owner.Validators.Add(r =>
        {
            if (OwnerSpec.Parse(r.GetValueOrDefault<string?>() ?? string.Empty, out string? error) == null)
            {
                r.AddError(error!);
            }
        });
        Mode.Validators.Add(r =>
        {
            if (OwnerSpec.ParseMode(r.GetValueOrDefault<string?>() ?? string.Empty, out string? error) == null)
            {
                r.AddError(error!);
            }
        });
        command.Options.Add(CacheSize);
        Passphrase.AddTo(command);
        command.SetGuardedAction((parse, token) => Run(parse, token));
        return command;
    }

    private static int Run(ParseResult parse, CancellationToken token)
    {
        string dir = Path.GetFullPath(parse.GetValue(Dir)!);
        string mountPoint = Path.GetFullPath(parse.GetValue(At) ?? dir);
        if (MountCapability.Problem() is { } noCapability)
        {
            throw new CliError(noCapability);
        }

        if (parse.GetValue(ReadOnly) && parse.GetValue(Volatile))
        {
            throw new CliError("--read-only and --volatile exclude each other");
        }

        // A dead mount reads as neither file nor directory; a regular file is refused here, before the mount checks.
        if (File.Exists(dir))
        {
            throw new CliError($"{dir}: not a directory (mount takes the directory that holds the plugin files)");
        }

        if (File.Exists(mountPoint))
        {
            throw new CliError($"--at {mountPoint}: not a directory");
        }

        // First clear what an earlier daemon left: a dead mount answers ENOTCONN even to a stat of the directory.
        RefuseLiveMount(mountPoint);

        // A daemon that died may still have its auto_unmount helper on the way; it would take our new mount.
        if (!MountTable.WaitForLeftoverUnmountHelpers(mountPoint, TimeSpan.FromSeconds(10)))
        {
            throw new CliError($"{mountPoint}: the unmount helper (fusermount3) of an earlier daemon is still running there; try again in a moment");
        }

        if (MountTable.IsMounted(mountPoint))
        {
            RefuseLiveMount(mountPoint); // somebody else may have mounted while we waited
            Log.Warning("{MountPoint}: removing a dead BackupFuse mount (its daemon ended while a file was open)", mountPoint);
            MountTable.DetachDead(mountPoint);
        }

        if (!Directory.Exists(dir))
        {
            throw new CliError($"{dir}: no such directory");
        }

        if (!Directory.Exists(mountPoint))
        {
            throw new CliError($"--at {mountPoint}: no such directory");
        }

        var roots = new ImageRoots(parse.GetValue(Images)!, RemoteOptions.Stores(parse));
        string realMountPoint = ImageRoots.RealPath(mountPoint) ?? mountPoint;
        foreach (var root in roots.Directories)
        {
            if (ImageRoots.IsUnder(root, realMountPoint))
            {
                throw new CliError($"--images {root} lies inside the mount point {mountPoint}; keep backup images outside the mounted directory");
            }
        }

        FuseLibrary.ThrowIfUnavailable();
        if (!parse.GetValue(Foreground))
        {
            return Daemonize(mountPoint, parse.GetValue(GlobalOptions.LogFile));
        }

        DaemonSession.EnterIfMarked(); // the daemon child of a `mount` without --foreground: its own session

        string? volatileDir = parse.GetValue(Volatile) ? Directory.CreateTempSubdirectory("backupfuse-volatile-").FullName : null;
        try
        {
            return Serve(parse, dir, mountPoint, roots, volatileDir, token);
        }
        finally
        {
            RemoteOptions.CloseCache(); // after every stack over it is closed (Serve's own scope)
            if (volatileDir != null)
            {
                Directory.Delete(volatileDir, recursive: true);
                Log.Information("dropped the volatile changes in {Dir}", volatileDir);
            }
        }
    }

    private static int Serve(ParseResult parse, string dir, string mountPoint, ImageRoots roots, string? volatileDir, CancellationToken token)
    {
        CacheBudget.Process.CapacityBytes = parse.GetValue(CacheSize) ?? CacheBudget.DefaultCapacityBytes; // one budget for every plugin of this mount
        MemoryTrimmer.Watch(CacheBudget.Process, MemoryTrimmer.DefaultHeadroomBytes);
        NativeHeap.ConfigureForDaemon(); // the daemon child has its arena limit from the start (DaemonSession)
        using var opener = OpenImages(roots, Passphrase.Resolve(parse));
        using var provider = new PluginProvider(opener, new PluginProviderOptions { ReadOnly = parse.GetValue(ReadOnly), VolatileDirectory = volatileDir });
        using var fs = DirectoryOverlayFileSystem.Open(dir, provider, parse.GetValue(ReadOnly), Presentation(parse));
        var options = new FuseMountOptions
        {
            MountPoint = mountPoint,
            ReadOnly = parse.GetValue(ReadOnly),
            AllowOther = parse.GetValue(AllowOther),
            HandleSignals = true,
        };
        Log.Information("mounting {Dir} at {MountPoint} (images from {Roots}{Mode})", dir, mountPoint, string.Join(", ", roots.Locations),
            options.ReadOnly ? ", read-only" : volatileDir != null ? $", volatile changes in {volatileDir}" : string.Empty);
        int rc;
        using (MountStatistics.Start(mountPoint, () => RemoteOptions.Cache))
        using (SystemdNotify.StoppingOnShutdown())
        {
            rc = FuseHost.Run(options, fs, new SerilogFuseLog(), token, () =>
            {
                Log.Information("mounted {MountPoint}; libfuse {Version}", mountPoint, FuseLibrary.PackageVersion);
                SystemdNotify.Ready(mountPoint);
                DaemonSession.ReleaseParentPipes(); // the `mount` command returns now and stops reading them
            });
        }

        Log.Information("unmounted {MountPoint}", mountPoint);
        return rc == 0 ? ExitCodes.Ok : ExitCodes.Error;
    }

    /// <summary>
    /// How plugins are presented (--owner, --mode); warns when the named owner cannot use the mount without --allow-other
    /// (FUSE refuses every user but the one who mounted before any permission is looked at).
    /// </summary>
    private static VirtualFileOwnership Presentation(ParseResult parse)
    {
        var owner = parse.GetValue(Owner) is { } o ? OwnerSpec.Parse(o, out _) : null;
        uint? mode = parse.GetValue(Mode) is { } m ? OwnerSpec.ParseMode(m, out _) : null;
        if ((owner != null || mode != null) && !parse.GetValue(AllowOther))
        {
            Log.Warning("--owner/--mode without --allow-other: only the user who mounted (uid {Uid}) can open anything on this mount, whatever the plugins show; add --allow-other for libvirt-qemu or any other user",
                UnderlyingDirectory.CurrentUserId);
        }

        return new VirtualFileOwnership { Uid = owner?.Uid, Gid = owner?.Gid, Mode = mode };
    }

    /// <summary>
    /// The opener of the mount (its catalog follows the roots through inotify). Refuses the mount when the roots hold
    /// encrypted images and the passphrase opens none of them: otherwise every open would fail later with EACCES.
    /// </summary>
    private static BackupPointOpener OpenImages(ImageRoots roots, BackupFuse.BackupImage.Crypto.PassphraseSource passphrase)
    {
        var opener = new BackupPointOpener(roots, passphrase, watch: true);
        try
        {
            opener.RequireUsablePassphrase();
            opener.WarnAboutUnlistedRemoteRoots();
            return opener;
        }
        catch
        {
            opener.Dispose();
            throw;
        }
    }

    private static void RefuseLiveMount(string mountPoint)
    {
        if (MountTable.IsLive(mountPoint))
        {
            throw new CliError($"{mountPoint}: a BackupFuse mount is already there (see 'backupfuse status')");
        }
    }

    /// <summary>
    /// Starts this same command again with --foreground in a new session (DaemonSession), waits until the mount is live
    /// or the child has failed, and returns. The child's log goes to --log-file, else under systemd to the inherited
    /// standard error (the journal), else to the mount point's file in the private log directory (see
    /// <see cref="LogFiles"/>); where it goes is printed.
    /// </summary>
    private static int Daemonize(string mountPoint, string? userLogFile)
    {
        string[] args = Environment.GetCommandLineArgs()[1..];
        bool toJournal = userLogFile == null && LogFiles.UnderSystemd;
        string? logFile = userLogFile;
        if (logFile == null && !toJournal)
        {
            logFile = LogFiles.DefaultPathFor(mountPoint);
            LogFiles.EnsurePrivateDirectory(Path.GetDirectoryName(logFile)!);
            LogFiles.OpenForAppend(logFile, privateDirectory: true).Dispose(); // refuse a planted link here, in one line
        }

        string logShown = logFile ?? "standard error (the journal)";
        string self = Environment.ProcessPath ?? throw new CliError("cannot find this program's path to start the daemon");
        var psi = new ProcessStartInfo(self) { UseShellExecute = false, RedirectStandardError = !toJournal, RedirectStandardOutput = true, RedirectStandardInput = true };
        if (Path.GetFileNameWithoutExtension(self) == "dotnet")
        {
            psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "backupfuse.dll"));
        }

        DaemonSession.Mark(psi.Environment, standardStreamsArePipes: !toJournal);
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        psi.ArgumentList.Add("--foreground");
        if (userLogFile == null && logFile != null)
        {
            psi.ArgumentList.Add("--log-file");
            psi.ArgumentList.Add(logFile);
        }
        using var child = Process.Start(psi) ?? throw new CliError("could not start the daemon process");
        child.StandardInput.Close();
        var stderr = toJournal ? Task.FromResult(string.Empty) : child.StandardError.ReadToEndAsync();
        _ = child.StandardOutput.ReadToEndAsync();
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(60))
        {
            if (MountTable.IsLive(mountPoint))
            {
                Console.Error.WriteLine($"mounted {mountPoint} (daemon pid {child.Id}, log {logShown}); unmount with 'backupfuse unmount {mountPoint}'");
                return ExitCodes.Ok;
            }

            // Short polls: the mount is usually live within tens of milliseconds of the child's start (NativeAOT), and
            // this command's return is what a script or a hypervisor hook waits for. A check costs a directory listing
            // and a read of /proc/self/mountinfo; the interval grows after the first second.
            if (child.WaitForExit(deadline.ElapsedMilliseconds < 1000 ? 2 : 50))
            {
                Console.Error.Write(stderr.Result);
                return child.ExitCode == 0 ? ExitCodes.Error : child.ExitCode;
            }
        }

        throw new CliError($"the daemon did not mount {mountPoint} within 60 s; see {logShown}");
    }
}

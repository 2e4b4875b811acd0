namespace BackupFuse.Fuse;

/// <summary>How to mount a file system (maps onto libfuse -o options and init settings).</summary>
public sealed record FuseMountOptions
{
    /// <summary>Largest read/write request asked of the kernel (1 MiB; also passed as -o max_read).</summary>
    public const int MaxRequestBytes = 1 << 20;

    /// <summary>Where to mount (may be the served directory itself: mount over it).</summary>
    public required string MountPoint { get; init; }

    /// <summary>Mount read-only (-o ro; the kernel then refuses writes with EROFS).</summary>
    public bool ReadOnly { get; init; }

    /// <summary>Let other users see the mount (-o allow_other; non-root needs user_allow_other in /etc/fuse.conf).</summary>
    public bool AllowOther { get; init; }

    /// <summary>Let fusermount3 remove the mount if the process dies (-o auto_unmount; ignored where the platform has none: macOS).</summary>
    public bool AutoUnmount { get; init; } = true;

    /// <summary>Shown as the source in /proc/mounts.</summary>
    public string FileSystemName { get; init; } = "backupfuse";

    /// <summary>Shown as fuse.&lt;subtype&gt; in /proc/mounts.</summary>
    public string Subtype { get; init; } = "backupfuse";

    /// <summary>How long the kernel may cache name lookups.</summary>
    public TimeSpan EntryTimeout { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>How long the kernel may cache attributes (virtual files' sizes may change with their plugin file).</summary>
    public TimeSpan AttributeTimeout { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Upper bound of libfuse worker threads.</summary>
    public int MaxThreads { get; init; } = 10;

    /// <summary>Unmount cleanly on SIGINT/SIGTERM (PosixSignalRegistration); for the daemon, not for tests.</summary>
    public bool HandleSignals { get; init; }

    /// <summary>libfuse debug output (-d) on stderr.</summary>
    public bool Debug { get; init; }

    /// <summary>The argv handed to fuse_new.</summary>
    public IReadOnlyList<string> BuildArguments() => BuildArguments(BackupFuse.Core.Native.NativeAbi.Current);

    /// <summary>
    /// The argv for a platform's libfuse. Linux: fusermount3/kernel options (subtype, max_read, auto_unmount).
    /// macOS (macFUSE): none of those three (macFUSE's mount has no such options), plus noappledouble so Finder
    /// does not store ._* AppleDouble files for the xattrs the file system does not serve.
    /// </summary>
    internal IReadOnlyList<string> BuildArguments(BackupFuse.Core.Native.NativeAbi? abi)
    {
        foreach (var value in new[] { FileSystemName, Subtype })
        {
            if (value.Length == 0 || value.AsSpan().IndexOfAny(",=\\ ") >= 0)
            {
                throw new ArgumentException($"'{value}' cannot be used as a FUSE fsname/subtype (no commas, '=', '\\' or spaces)");
            }
        }

        bool mac = abi?.IsMacOS ?? false;
        var o = mac
            ? new List<string> { "default_permissions", $"fsname={FileSystemName}", "noappledouble" }
            : new List<string> { "default_permissions", $"fsname={FileSystemName}", $"subtype={Subtype}", $"max_read={MaxRequestBytes}" };
        if (AutoUnmount && (abi?.SupportsAutoUnmount ?? true))
        {
            o.Add("auto_unmount");
        }

        if (AllowOther)
        {
            o.Add("allow_other");
        }

        if (ReadOnly)
        {
            o.Add("ro");
        }

        var args = new List<string> { "backupfuse", "-o", string.Join(',', o) };
        if (Debug)
        {
            args.Add("-d");
        }

        return args;
    }
}

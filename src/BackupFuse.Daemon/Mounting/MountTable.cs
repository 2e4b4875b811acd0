using System.Text;

namespace BackupFuse.Daemon.Mounting;

/// <summary>One BackupFuse mount as /proc/self/mountinfo lists it.</summary>
public sealed record MountEntry(string MountPoint, string Source, string Options);

/// <summary>Reads the kernel's mount table for BackupFuse mounts (file system type fuse.backupfuse).</summary>
public static class MountTable
{
    /// <summary>The FUSE subtype this daemon mounts with.</summary>
    public const string FileSystemType = "fuse.backupfuse";

    /// <summary>Every BackupFuse mount visible to this process.</summary>
    public static IReadOnlyList<MountEntry> List()
    {
        var result = new List<MountEntry>();
        foreach (string line in File.ReadLines("/proc/self/mountinfo"))
        {
            // 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
            int dash = line.IndexOf(" - ", StringComparison.Ordinal);
            if (dash < 0)
            {
                continue;
            }

            string[] left = line[..dash].Split(' ');
            string[] right = line[(dash + 3)..].Split(' ');
            if (left.Length >= 6 && right.Length >= 3 && right[0] == FileSystemType)
            {
                result.Add(new MountEntry(Unescape(left[4]), Unescape(right[1]), left[5]));
            }
        }

        return result;
    }

    /// <summary>Whether a BackupFuse mount sits at <paramref name="mountPoint"/>.</summary>
    public static bool IsMounted(string mountPoint) =>
        List().Any(m => m.MountPoint == Path.GetFullPath(mountPoint).TrimEnd('/') || (m.MountPoint == "/" && mountPoint == "/"));

    /// <summary>
    /// Whether a BackupFuse mount with a daemon behind it sits at <paramref name="mountPoint"/>. The dead check comes
    /// first on purpose: a dead mount that an unmount helper removes between the two checks then reads as "not dead,
    /// not mounted" (correct) instead of "mounted, not dead" (a live mount that is not there).
    /// </summary>
    public static bool IsLive(string mountPoint) => !IsDead(mountPoint) && IsMounted(mountPoint);

    /// <summary>
    /// Whether the BackupFuse mount at <paramref name="mountPoint"/> is dead: its daemon is gone (the kernel answers
    /// ENOTCONN) but the mount stayed, which happens when the daemon was killed while a file was open (fusermount3's
    /// auto_unmount then finds the mount busy).
    /// </summary>
    public static bool IsDead(string mountPoint)
    {
        try
        {
            _ = Directory.GetFileSystemEntries(mountPoint);
            return false;
        }
        catch (DirectoryNotFoundException)
        {
            return false; // missing, or a file (ENOTDIR): not a mount of ours at all; the caller says what it is
        }
        catch (IOException e) when (e.Message.Contains("not connected", StringComparison.OrdinalIgnoreCase) || e.HResult == 107)
        {
            return true;
        }
    }

    /// <summary>Detaches a dead mount (lazy unmount: processes that still hold its files keep failing, nothing else does).</summary>
    public static void DetachDead(string mountPoint)
    {
        var psi = new System.Diagnostics.ProcessStartInfo("fusermount3") { UseShellExecute = false, RedirectStandardError = true };
        psi.ArgumentList.Add("-u");
        psi.ArgumentList.Add("-z");
        psi.ArgumentList.Add(mountPoint);
        using var p = System.Diagnostics.Process.Start(psi) ?? throw new IOException("cannot run fusermount3 (package fuse3)");
        string err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0 && IsMounted(mountPoint))
        {
            // A failure because the mount is already gone (its auto_unmount helper was quicker) is what we wanted.
            throw new IOException($"cannot remove the dead mount at {mountPoint}: {err.Trim()}");
        }
    }

    /// <summary>
    /// Waits (at most <paramref name="timeout"/>) until no fusermount3 auto_unmount helper of an earlier daemon is left
    /// for <paramref name="mountPoint"/>. A daemon that dies leaves its helper to unmount the path; the helper goes by
    /// path, not by connection, so a helper that wakes up late would unmount the next daemon's fresh mount. Call only
    /// when no live mount is there (a live mount's helper runs as long as the mount). True when none is left.
    /// </summary>
    public static bool WaitForLeftoverUnmountHelpers(string mountPoint, TimeSpan timeout)
    {
        string path = Path.GetFullPath(mountPoint).TrimEnd('/');
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (AnyUnmountHelper(path))
        {
            if (clock.Elapsed > timeout)
            {
                return false;
            }

            Thread.Sleep(20);
        }

        return true;
    }

    private static bool AnyUnmountHelper(string path)
    {
        string self = Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture);
        foreach (string dir in Directory.EnumerateDirectories("/proc"))
        {
            string name = Path.GetFileName(dir);
            if (name.Length == 0 || !char.IsAsciiDigit(name[0]) || name == self)
            {
                continue;
            }

            string[] argv;
            try
            {
                argv = File.ReadAllText(Path.Combine(dir, "cmdline")).Split('\0', StringSplitOptions.RemoveEmptyEntries);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                continue; // the process ended while we looked
            }

            if (argv.Length > 0 && Path.GetFileName(argv[0]).StartsWith("fusermount", StringComparison.Ordinal)
                && argv.Any(a => a.Contains("auto_unmount", StringComparison.Ordinal))
                && argv.Any(a => a.TrimEnd('/') == path))
            {
                return true;
            }
        }

        return false;
    }

    // mountinfo escapes space, tab, newline and backslash as \ooo (octal).
    private static string Unescape(string field)
    {
        if (!field.Contains('\\', StringComparison.Ordinal))
        {
            return field;
        }

        var bytes = new List<byte>();
        for (int i = 0; i < field.Length; i++)
        {
            if (field[i] == '\\' && i + 3 < field.Length)
            {
                bytes.Add(Convert.ToByte(field.Substring(i + 1, 3), 8));
                i += 3;
            }
            else
            {
                bytes.AddRange(Encoding.UTF8.GetBytes(field[i].ToString()));
            }
        }

        return Encoding.UTF8.GetString(bytes.ToArray());
    }
}

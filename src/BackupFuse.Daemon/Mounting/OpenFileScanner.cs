using BackupFuse.Daemon.BackupPoints;
namespace BackupFuse.Daemon.Mounting;

/// <summary>A process that has a file open (<paramref name="Writing"/>: with O_WRONLY or O_RDWR).</summary>
public sealed record FileUser(int Pid, string Command, bool Writing = false);

/// <summary>
/// Finds processes that have given files open, by reading /proc/PID/fd links (as root: every process). This is how
/// <c>reset</c> refuses to drop the changes of a disk a VM has open: the hypervisor holds the plugin open, and the
/// daemon holds the changes file open exactly while any handle of the plugin is open (once changes exist). The access
/// mode of each open comes from /proc/PID/fdinfo (so <c>export</c> can refuse writers only).
/// </summary>
public static class OpenFileScanner
{
    /// <summary>The processes (other than this one) that have any of <paramref name="paths"/> open.</summary>
    public static IReadOnlyList<FileUser> Users(params string[] paths)
    {
        // The kernel shows each descriptor's canonical path: compare with the real paths (a path given through a
        // symlinked directory would never match), and the plain ones for files that are gone.
        var wanted = new HashSet<string>(paths.Select(Path.GetFullPath).Concat(paths.Select(ImageRoots.RealPath).OfType<string>()), StringComparer.Ordinal);
        var users = new List<FileUser>();
        foreach (var procDir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(procDir), out int pid) || pid == Environment.ProcessId)
            {
                continue;
            }

            try
            {
                foreach (var fd in Directory.EnumerateFileSystemEntries(Path.Combine(procDir, "fd")))
                {
                    var target = new FileInfo(fd).LinkTarget;
                    if (target != null && wanted.Contains(target))
                    {
                        bool writing = IsOpenForWriting(Path.Combine(procDir, "fdinfo", Path.GetFileName(fd)));
                        int known = users.FindIndex(u => u.Pid == pid);
                        if (known < 0)
                        {
                            users.Add(new FileUser(pid, File.ReadAllText(Path.Combine(procDir, "comm")).Trim(), writing));
                        }
                        else if (writing)
                        {
                            users[known] = users[known] with { Writing = true };
                        }
                    }
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // The process ended, or its descriptors are not ours to see.
            }
        }

        return users;
    }

    /// <summary>Whether the descriptor whose /proc/PID/fdinfo/N file is <paramref name="fdInfo"/> was opened for writing.</summary>
    private static bool IsOpenForWriting(string fdInfo)
    {
        foreach (var line in File.ReadLines(fdInfo))
        {
            if (line.StartsWith("flags:", StringComparison.Ordinal))
            {
                // Octal open flags; the low two bits are the access mode (0 = O_RDONLY).
                return (Convert.ToInt32(line["flags:".Length..].Trim(), 8) & 3) != 0;
            }
        }

        return false;
    }

    /// <summary>"qemu-system-x86 (pid 123), backupfuse (pid 45)".</summary>
    public static string Describe(IEnumerable<FileUser> users) => string.Join(", ", users.Select(u => $"{u.Command} (pid {u.Pid})"));
}

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

using System.Globalization;

namespace BackupFuse.Daemon.Mounting;

// Design notes:
// - A FUSE mount needs CAP_SYS_ADMIN: libfuse calls mount(2) itself when the process has it, and otherwise runs the
//   setuid-root fusermount3, which gets it only if it is in the capability bounding set and no_new_privs is off.
//   When neither way is open (a container without --cap-add SYS_ADMIN, setpriv --bounding-set=-sys_admin, a
//   systemd unit whose CapabilityBoundingSet= lacks it) the mount fails deep inside libfuse with "Operation not
//   permitted"; checking /proc/self/status first turns that into one line before any image is opened or the daemon
//   goes to the background.
// - Deliberately not checked: whether the kernel or an LSM (AppArmor, seccomp) still refuses mount(2); that shows up
//   as the mount's own error.

/// <summary>Whether this process can make a FUSE mount at all, judged from its capabilities.</summary>
public static class MountCapability
{
    private const int CapSysAdmin = 21;

    /// <summary>The reason this process cannot mount, or null when CAP_SYS_ADMIN is reachable (or unknown).</summary>
    public static string? Problem() => Problem(TryRead("/proc/self/status"));

    /// <summary>The reason a process with this /proc/PID/status text cannot mount, or null.</summary>
    public static string? Problem(string? status)
    {
        if (status == null)
        {
            return null;
        }

        ulong? effective = Field(status, "CapEff");
        ulong? bounding = Field(status, "CapBnd");
        ulong? noNewPrivs = Field(status, "NoNewPrivs");
        if (effective is not { } eff || bounding is not { } bnd)
        {
            return null;
        }

        bool has(ulong set) => (set & (1UL << CapSysAdmin)) != 0;
        if (has(eff) || (has(bnd) && noNewPrivs != 1))
        {
            return null;
        }

        return "mounting needs CAP_SYS_ADMIN, and this process cannot get it (" +
            (has(bnd) ? "no_new_privs is set, so fusermount3 cannot gain it" : "it is not in the capability bounding set") +
            "); run as root with CAP_SYS_ADMIN (Docker: --cap-add SYS_ADMIN)";
    }

    private static ulong? Field(string status, string name)
    {
        foreach (string line in status.Split('\n'))
        {
            if (line.StartsWith(name + ":", StringComparison.Ordinal))
            {
                string value = line[(name.Length + 1)..].Trim();
                return ulong.TryParse(value, name == "NoNewPrivs" ? NumberStyles.None : NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong v) ? v : null;
            }
        }

        return null;
    }

    private static string? TryRead(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}

using System.Runtime.InteropServices;

namespace BackupFuse.Daemon.BackupPoints;

// Design notes:
// - The one place that asks the system's user and group databases (getpwnam_r, getpwuid_r, getgrnam_r,
//   getgrouplist), so NSS sources count, for mount --owner (OwnerSpec) and the plugin owner's read check
//   (PluginOwner). The *_r calls get a buffer that grows (4 KiB times 4, up to 1 MiB) while they answer ERANGE;
//   any other error, or no entry, is "not found" (null), never an exception.
// - Deliberately not done: caching (group changes apply to the next look-up). Stateless: thread-safe.

/// <summary>Look-ups in the system's user and group databases.</summary>
internal static unsafe partial class UserDatabase
{
    private const int ERange = 34;

    private delegate int Attempt<T>(byte* buffer, nuint length, out T? value)
        where T : struct;

    /// <summary>The uid and primary gid of the user named <paramref name="name"/>, or null when there is none.</summary>
    public static (uint Uid, uint Gid)? UserByName(string name)
    {
        byte[] user = Terminated(name);
        return WithBuffer((byte* b, nuint length, out (uint Uid, uint Gid)? value) =>
        {
            Passwd pwd;
            Passwd* result;
            fixed (byte* u = user)
            {
                int rc = getpwnam_r(u, &pwd, b, length, &result);
                value = rc == 0 && result != null ? (pwd.Uid, pwd.Gid) : null;
                return rc;
            }
        });
    }

    /// <summary>The name and primary gid of the user with <paramref name="uid"/>, or null when there is no passwd entry.</summary>
    public static (string? Name, uint Gid)? UserById(uint uid) =>
        WithBuffer((byte* b, nuint length, out (string? Name, uint Gid)? value) =>
        {
            Passwd pwd;
            Passwd* result;
            int rc = getpwuid_r(uid, &pwd, b, length, &result);
            value = rc == 0 && result != null ? (Marshal.PtrToStringUTF8(pwd.Name), pwd.Gid) : null;
            return rc;
        });

    /// <summary>The gid of the group named <paramref name="name"/>, or null when there is none.</summary>
    public static uint? GroupByName(string name)
    {
        byte[] group = Terminated(name);
        return WithBuffer((byte* b, nuint length, out uint? value) =>
        {
            Group grp;
            Group* result;
            fixed (byte* g = group)
            {
                int rc = getgrnam_r(g, &grp, b, length, &result);
                value = rc == 0 && result != null ? grp.Gid : null;
                return rc;
            }
        });
    }

    /// <summary>The groups of the user named <paramref name="name"/> (getgrouplist(3), <paramref name="primary"/> included); empty if they cannot be had.</summary>
    public static uint[] GroupList(string name, uint primary)
    {
        byte[] user = Terminated(name);
        int count = 64;
        for (int attempt = 0; attempt < 4; attempt++)
        {
            uint[] groups = new uint[count];
            int n = count;
            fixed (byte* u = user)
            fixed (uint* g = groups)
            {
                if (getgrouplist(u, primary, g, &n) >= 0)
                {
                    return groups[..n];
                }
            }

            count = Math.Max(n, count * 2);
        }

        return [];
    }

    private static byte[] Terminated(string name) => [.. System.Text.Encoding.UTF8.GetBytes(name), 0];

    /// <summary>Runs <paramref name="attempt"/> with a buffer that grows while it answers ERANGE.</summary>
    private static T? WithBuffer<T>(Attempt<T> attempt)
        where T : struct
    {
        for (int size = 4096; size <= 1 << 20; size *= 4)
        {
            byte[] buffer = new byte[size];
            int rc;
            T? value;
            fixed (byte* b = buffer)
            {
                rc = attempt(b, (nuint)buffer.Length, out value);
            }

            if (rc == 0)
            {
                return value;
            }

            if (rc != ERange)
            {
                break; // not ERANGE: no usable entry
            }
        }

        return null;
    }

    [LibraryImport("libc")]
    private static partial int getpwnam_r(byte* name, Passwd* pwd, byte* buffer, nuint length, Passwd** result);

    [LibraryImport("libc")]
    private static partial int getpwuid_r(uint uid, Passwd* pwd, byte* buffer, nuint length, Passwd** result);

    [LibraryImport("libc")]
    private static partial int getgrnam_r(byte* name, Group* grp, byte* buffer, nuint length, Group** result);

    [LibraryImport("libc")]
    private static partial int getgrouplist(byte* user, uint group, uint* groups, int* count);

    /// <summary>
    /// struct passwd on linux-x64 (48 bytes). pw_name, pw_uid and pw_gid (the only members read) sit at the same
    /// offsets on macOS, whose struct is 72 bytes (pw_change, pw_class, pw_expire added): Size reserves that much so
    /// getpwnam_r never writes past this struct there.
    /// </summary>
    [StructLayout(LayoutKind.Sequential, Size = 72)]
    private struct Passwd
    {
        public IntPtr Name;
        public IntPtr Password;
        public uint Uid;
        public uint Gid;
        public IntPtr Gecos;
        public IntPtr Directory;
        public IntPtr Shell;
    }

    /// <summary>struct group on linux-x64.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct Group
    {
        public IntPtr Name;
        public IntPtr Password;
        public uint Gid;
        public IntPtr Members;
    }
}

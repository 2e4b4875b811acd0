using System.Globalization;
using BackupFuse.BackupImage.Reading;

namespace BackupFuse.Daemon.BackupPoints;

// Design notes:
// - The rule: a plugin serves a chain only if the user who owns the plugin file could read every image of the chain
//   himself. The daemon usually runs as root and a mount with --allow-other is used by other users; without this
//   rule, anybody allowed to create a plugin in the mounted directory could read a root-only backup through it.
// - "Could read" is checked the way POSIX path resolution and open(2) would for that user, on the file actually
//   opened (its descriptor's real path, owner and mode): search (x) permission on every directory of the real path,
//   and read permission on the file, each with the owner/group/other bits that apply (owner if the uid matches,
//   else group if one of the user's groups matches, else other). The user's groups are his primary group and
//   getgrouplist(3) for his name (from getpwuid_r); a uid without a passwd entry has no groups. Root (uid 0) may
//   read anything.
// - Deliberately not done: ACLs, capabilities and the permissions of a symlink's own directory (only the real path
//   counts, as for the --images rule). Credentials are resolved on every check (no cache): group changes apply to
//   the next open.
// - Immutable after Of: thread-safe.

/// <summary>The user owning a plugin file, whose read access every image of its chain is checked against.</summary>
public sealed class PluginOwner
{
    private const uint ReadBit = 4;
    private const uint SearchBit = 1;

    private readonly HashSet<uint> _groups;

    private PluginOwner(uint uid, string? name, HashSet<uint> groups)
    {
        Uid = uid;
        Name = name;
        _groups = groups;
    }

    /// <summary>The owner's uid.</summary>
    public uint Uid { get; }

    /// <summary>The user name, or null when the uid has no passwd entry.</summary>
    public string? Name { get; }

    /// <summary>The user with <paramref name="uid"/> and his groups, as the system's user database has them now.</summary>
    public static PluginOwner Of(uint uid)
    {
        if (uid == 0)
        {
            return new PluginOwner(0, "root", [0]);
        }

        var (name, primary) = UserDatabase.UserById(uid) ?? (null, 0);
        var groups = new HashSet<uint>();
        if (name != null)
        {
            groups.Add(primary);
            groups.UnionWith(UserDatabase.GroupList(name, primary));
        }

        return new PluginOwner(uid, name, groups);
    }

    /// <summary>Null if this user may read the opened image <paramref name="image"/>, else why not.</summary>
    public string? WhyNotReadable(ImageFileStatus image)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (Uid == 0)
        {
            return null;
        }

        string? dir = Path.GetDirectoryName(image.RealPath);
        var dirs = new List<string>();
        for (; !string.IsNullOrEmpty(dir); dir = Path.GetDirectoryName(dir))
        {
            dirs.Add(dir);
        }

        for (int i = dirs.Count - 1; i >= 0; i--)
        {
            var st = UnixFile.TryStat(dirs[i]);
            if (st == null || !Allows(st.Value, SearchBit))
            {
                return $"{Describe()} has no search permission on directory {dirs[i]}";
            }
        }

        return Allows(image.Stat, ReadBit)
            ? null
            : $"{Describe()} may not read {image.RealPath} (mode {Convert.ToString(image.Stat.Mode & 0xFFF, 8).PadLeft(4, '0')}, owner uid {image.Stat.Uid}, group gid {image.Stat.Gid})";
    }

    /// <summary>"user NAME (uid N)", for messages.</summary>
    public string Describe() => Name == null
        ? $"uid {Uid.ToString(CultureInfo.InvariantCulture)}"
        : $"user {Name} (uid {Uid.ToString(CultureInfo.InvariantCulture)})";

    private bool Allows(UnixFileStat st, uint bit)
    {
        uint mode = st.Mode;
        uint bits = st.Uid == Uid ? (mode >> 6) & 7 : _groups.Contains(st.Gid) ? (mode >> 3) & 7 : mode & 7;
        return (bits & bit) != 0;
    }
}

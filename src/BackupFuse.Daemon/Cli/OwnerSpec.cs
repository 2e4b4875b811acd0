using System.Globalization;
using BackupFuse.Daemon.BackupPoints;

namespace BackupFuse.Daemon.Cli;

// Design notes:
// - Parses mount's --owner USER[:GROUP] and --mode OCTAL the way chown(1) and chmod(1) take them: names are looked up
//   in the system's user and group databases (UserDatabase: getpwnam_r/getgrnam_r, so NSS sources count), a number
//   is taken as an id as it is; USER alone means the user's primary group (none for a bare uid without a passwd
//   entry: each plugin keeps its group), :GROUP alone keeps each plugin's own owner.
// - A bad value is a usage error with one line naming the option and the value (ParseOwner/ParseMode return the
//   message; the option validators report it).
// - Stateless: thread-safe.

/// <summary>The owner and group named by <c>--owner</c> (either may be null: keep the plugin file's own).</summary>
/// <param name="Uid">The user id, or null for ":GROUP".</param>
/// <param name="Gid">The group id, or null when neither GROUP nor a user with a primary group was named.</param>
public sealed record OwnerSpec(uint? Uid, uint? Gid)
{
    /// <summary>Parses USER[:GROUP] or :GROUP; null and the reason when it names nobody.</summary>
    public static OwnerSpec? Parse(string value, out string? error)
    {
        ArgumentNullException.ThrowIfNull(value);
        error = null;
        int colon = value.IndexOf(':', StringComparison.Ordinal);
        string user = colon < 0 ? value : value[..colon];
        string? group = colon < 0 ? null : value[(colon + 1)..];
        if (user.Length == 0 && string.IsNullOrEmpty(group))
        {
            error = $"--owner {value}: give USER, USER:GROUP or :GROUP";
            return null;
        }

        uint? uid = null;
        uint? gid = null;
        if (user.Length > 0)
        {
            if (UserId(user) is not { } found)
            {
                error = $"--owner {value}: no such user '{user}'";
                return null;
            }

            uid = found.Uid;
            gid = found.Gid;
        }

        if (!string.IsNullOrEmpty(group))
        {
            if (GroupId(group) is not { } g)
            {
                error = $"--owner {value}: no such group '{group}'";
                return null;
            }

            gid = g;
        }

        return new OwnerSpec(uid, gid);
    }

    /// <summary>Parses an octal mode of permission bits (0..0777); null and the reason otherwise.</summary>
    public static uint? ParseMode(string value, out string? error)
    {
        ArgumentNullException.ThrowIfNull(value);
        error = null;
        if (value.Length is > 0 and <= 4 && value.All(c => c is >= '0' and <= '7'))
        {
            uint mode = Convert.ToUInt32(value, 8);
            if (mode <= 0x1FF)
            {
                return mode;
            }
        }

        error = $"--mode {value}: give octal permission bits from 0 to 0777 (e.g. 0660)";
        return null;
    }

    private static (uint Uid, uint? Gid)? UserId(string name)
    {
        if (UserDatabase.UserByName(name) is { } entry)
        {
            return (entry.Uid, entry.Gid);
        }

        // A plain number is an id as it is (chown(1) does the same when no user has that name); no primary group then.
        return uint.TryParse(name, NumberStyles.None, CultureInfo.InvariantCulture, out uint uid) ? (uid, null) : null;
    }

    private static uint? GroupId(string name) =>
        UserDatabase.GroupByName(name) ?? (uint.TryParse(name, NumberStyles.None, CultureInfo.InvariantCulture, out uint gid) ? gid : null);
}

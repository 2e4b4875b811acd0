using System.Runtime.InteropServices;
using BackupFuse.Daemon.BackupPoints;
using BackupFuse.Fuse.Overlay;
using BackupFuse.Vhdx.Differencing;
using Microsoft.Win32.SafeHandles;
using BackupFuse.Daemon.Mounting;

namespace BackupFuse.Daemon.BackupPoints;

// Design notes:
// - Where a plugin's changes live, and the only code that touches them on disk. For plugin dir/web01.vhdx: the
//   differencing VHDX dir/.backupfuse/web01.changes.vhdx and, beside it, dir/.backupfuse/web01.base.vhdx, a
//   pristine-view plugin that the mount shows as the untouched base (the differencing file's parent locator names it
//   by relative path, so libvhdi and 7-Zip open the pair through the mount). --volatile mounts use a folder of the
//   daemon's own temporary directory instead of .backupfuse.
// - Plugins of the other formats (web01.img, .raw, .vhd, .vmdk) keep their changes in the same differencing VHDX,
//   named after the whole file name with a dash: web01.img-changes.vhdx and web01.img-base.vhdx. So web01.vhdx and
//   web01.img in one directory never share a file, and no name of one scheme can be a name of the other (a .vhdx
//   plugin's names end in ".changes.vhdx"/".base.vhdx", the others' in "-changes.vhdx"/"-base.vhdx"; the part before
//   the dash is the full plugin name, so two plugins of the other formats differ there too).
// - Users may write in a plugin's directory while the daemon runs as root, so nothing here follows a symbolic link:
//   the directory holding the state directory is reached from a directory descriptor one component at a time with
//   O_NOFOLLOW (UnderlyingDirectory.OpenDirectory), the state directory and the files in it are opened with O_NOFOLLOW,
//   and new files are created with O_EXCL under a temporary name and renamed into place (renameat2 follows neither
//   name). An existing changes file must be a regular file with one link that belongs to the plugin's owner or to
//   the daemon's user (the latter only inside a state directory the daemon's user owns: in a directory somebody else
//   owns, that somebody could have moved another plugin's file there). Anything else is refused
//   (UnauthorizedAccessException: EACCES to the guest, one log line) and nothing is created or written outside the
//   state directory. A state directory the daemon creates stays the daemon's (0755): plugins of several users share
//   it, so no one of them may rename or unlink the others' changes files; the files in it belong to their plugins'
//   owners. A new state directory is made durable in its parent (fsync of the container), not only its entries.
// - The daemon opens a changes file with an exclusive flock (LOCK_NB): two stacks on one file (e.g. the plugin file
//   replaced while a VM had it open) would keep two allocation points and corrupt it, so the second is refused with a
//   clear error instead. The CLI (info, export) reads without the lock; export refuses while a writer has the disk.
// - A state directory that is not a plain directory (a symlink, a file) reads as "no changes": the plugin shows the
//   pristine backup, and the first write fails. Symlinked state directories are deliberately not supported.
// - New files get the plugin file's owner and group (what its owner would get creating them) and the plugin's
//   read/write bits.
// - The paths (StateDirectory, ChangesFile, BaseViewFile) are for messages and OpenFileScanner; they are never opened.
// - Not synchronized: the daemon creates under BackupPointStack's lock; the CLI is single-threaded.

/// <summary>Where a plugin's changes live, and the symlink-safe operations on them.</summary>
public sealed partial class ChangesLocation
{
    /// <summary>Name of the per-directory state folder.</summary>
    public const string StateDirectoryName = ".backupfuse";

    private const UnixFileMode DirectoryMode = (UnixFileMode)0x1ED; // 0755
    private const UnixFileMode FileBits = (UnixFileMode)0x1B6; // 0666
    private readonly Func<UnderlyingDirectory> _openContainer;
    private readonly string _stateName;
    private readonly string _changesName;
    private readonly string? _pluginName;

    private ChangesLocation(Func<UnderlyingDirectory> openContainer, string containerPath, string stateName, (string Changes, string Base) names, string? pluginName)
    {
        _openContainer = openContainer;
        _stateName = stateName;
        _changesName = names.Changes;
        BaseViewName = names.Base;
        _pluginName = pluginName;
        StateDirectory = Path.Combine(containerPath, stateName);
        ChangesFile = Path.Combine(StateDirectory, ChangesName);
        BaseViewFile = Path.Combine(StateDirectory, BaseViewName);
    }

    /// <summary>The state directory's path (for messages).</summary>
    public string StateDirectory { get; }

    /// <summary>The differencing file's path (for messages and for finding who has it open).</summary>
    public string ChangesFile { get; }

    /// <summary>The base view's path (for messages).</summary>
    public string BaseViewFile { get; }

    /// <summary>File name of the base view, as the differencing file's relative_path names it.</summary>
    public string BaseViewName { get; }

    /// <summary>Whether a changes file exists (a state directory that is a symlink or not a directory holds none).</summary>
    public bool Exists
    {
        get
        {
            using var state = TryOpenState();
            return state != null && state.TryGetStat(ChangesName, out _);
        }
    }

    private string ChangesName => _changesName;

    /// <summary>
    /// The changes and base-view file names of the plugin named <paramref name="pluginFileName"/>: web01.vhdx gives
    /// web01.changes.vhdx and web01.base.vhdx, web01.img gives web01.img-changes.vhdx and web01.img-base.vhdx.
    /// </summary>
    public static (string Changes, string Base) NamesFor(string pluginFileName) =>
        pluginFileName.EndsWith(".vhdx", StringComparison.OrdinalIgnoreCase)
            ? NamesOf(Path.GetFileNameWithoutExtension(pluginFileName))
            : (pluginFileName + "-changes.vhdx", pluginFileName + "-base.vhdx");

    private static (string Changes, string Base) NamesOf(string name) => (name + ".changes.vhdx", name + ".base.vhdx");

    /// <summary>
    /// The location for the plugin at <paramref name="pluginPath"/>, a path given on the command line: its directory
    /// is opened by that path (the user named it), everything below without following symlinks.
    /// </summary>
    public static ChangesLocation ForPlugin(string pluginPath)
    {
        string full = Path.GetFullPath(pluginPath);
        string container = Path.GetDirectoryName(full) ?? "/";
        return new ChangesLocation(() => UnderlyingDirectory.Open(container), container, StateDirectoryName, NamesFor(Path.GetFileName(full)), Path.GetFileName(full));
    }

    /// <summary>
    /// The location for the plugin at <paramref name="relativePath"/> below a mount's served directory
    /// <paramref name="root"/> (which must stay open while this location is used): no component is followed.
    /// </summary>
    public static ChangesLocation ForPlugin(UnderlyingDirectory root, string relativePath)
    {
        ArgumentNullException.ThrowIfNull(root);
        string relativeDirectory = Path.GetDirectoryName(relativePath.TrimStart('/')) ?? string.Empty;
        return new ChangesLocation(() => root.OpenDirectory(relativeDirectory), Path.Combine(root.Path, relativeDirectory), StateDirectoryName,
            NamesFor(Path.GetFileName(relativePath)), Path.GetFileName(relativePath));
    }

    /// <summary>The location inside <paramref name="directory"/> (a directory of the daemon's own, used for --volatile) for a disk called <paramref name="name"/>.</summary>
    public static ChangesLocation InDirectory(string directory, string name)
    {
        string full = Path.GetFullPath(directory);
        string container = Path.GetDirectoryName(full) ?? "/";
        return new ChangesLocation(() => UnderlyingDirectory.Open(container), container, Path.GetFileName(full), NamesOf(name), pluginName: null);
    }

    /// <summary>Opens the existing changes file (see <see cref="DifferencingVhdxFile.Open(SafeFileHandle, string, Guid, long?)"/>), after the ownership and file-type checks.</summary>
    /// <param name="parentDataWriteGuid">The base's DataWriteGuid the file must link to.</param>
    /// <param name="virtualSize">The base's virtual size.</param>
    /// <param name="exclusive">Take the exclusive lock the daemon holds while it serves the file (see the design notes).</param>
    public DifferencingVhdxFile Open(Guid parentDataWriteGuid, long virtualSize, bool exclusive = false)
    {
        using var container = _openContainer();
        var owner = OwnerOf(container);
        using var state = container.OpenDirectory(_stateName);
        var handle = OpenNoFollow(state, ChangesName, ChangesFile, FileMode.Open);
        try
        {
            var stat = UnderlyingDirectory.GetStat(handle, ChangesFile);
            if (!stat.IsRegularFile || stat.LinkCount != 1)
            {
                throw new UnauthorizedAccessException($"{ChangesFile}: not a regular file with a single link; not opened");
            }

            CheckOwner(stat, owner, ChangesFile, stateOwnedByDaemon: state.GetStat().Uid == UnderlyingDirectory.CurrentUserId);
            if (exclusive)
            {
                LockExclusive(handle, ChangesFile);
            }
        }
        catch
        {
            handle.Dispose();
            throw;
        }

        return DifferencingVhdxFile.Open(handle, ChangesFile, parentDataWriteGuid, virtualSize);
    }

    /// <summary>
    /// Creates the state directory (when missing), the base view <paramref name="baseView"/> and an empty changes file
    /// for <paramref name="parent"/> (which must not exist yet), all owned by the plugin's owner, and opens the
    /// changes file.
    /// </summary>
    public DifferencingVhdxFile Create(PluginFile baseView, DifferencingParent parent)
    {
        ArgumentNullException.ThrowIfNull(baseView);
        ArgumentNullException.ThrowIfNull(parent);
        try
        {
            return CreateFiles(baseView, parent);
        }
        catch (BackupFuse.Fuse.ErrnoException e)
        {
            // Said once, as a warning, and as EIO to the guest (a bare errno would be logged at debug level only).
            throw new IOException($"{ChangesFile}: cannot create the changes file: {e.Message}", e);
        }
    }

    private DifferencingVhdxFile CreateFiles(PluginFile baseView, DifferencingParent parent)
    {
        using var container = _openContainer();
        var owner = OwnerOf(container);
        using var state = container.CreateDirectory(_stateName, DirectoryMode, out bool created);
        if (created)
        {
            // The new directory entry must survive a crash as much as the files in it will.
            container.Flush();
        }

        using (var handle = CreateTemporary(state, BaseViewName, owner, out string temp))
        {
            try
            {
                RandomAccess.Write(handle, System.Text.Encoding.UTF8.GetBytes(baseView.ToText()), 0);
                RandomAccess.FlushToDisk(handle);
                state.Rename(temp, BaseViewName, replace: true);
            }
            catch
            {
                state.Delete(temp);
                throw;
            }
        }

        var changes = CreateTemporary(state, ChangesName, owner, out string changesTemp);
        try
        {
            LockExclusive(changes, ChangesFile);
            DifferencingVhdxFile.Format(changes, parent);
            state.Rename(changesTemp, ChangesName, replace: false);
        }
        catch
        {
            changes.Dispose();
            state.Delete(changesTemp);
            throw;
        }

        state.Flush();
        return DifferencingVhdxFile.Open(changes, ChangesFile, parent.DataWriteGuid, parent.VirtualSize);
    }

    /// <summary>
    /// Removes the changes file and the base view (never following a symlink), and the state directory when that
    /// leaves it empty. Returns the changes file's size, or -1 when there was none.
    /// </summary>
    public long Delete()
    {
        using var container = _openContainer();
        using var state = TryOpenState(container);
        if (state == null || !state.TryGetStat(ChangesName, out var stat))
        {
            return -1;
        }

        state.Delete(ChangesName);
        state.Delete(BaseViewName);
        state.Flush();
        try
        {
            container.Delete(_stateName, directory: true);
        }
        catch (BackupFuse.Fuse.ErrnoException e) when (e.Errno is BackupFuse.Fuse.Errno.ENOTEMPTY or BackupFuse.Fuse.Errno.EEXIST)
        {
            // Other plugins' changes live there too.
        }

        return stat.Size;
    }

    private static SafeFileHandle CreateTemporary(UnderlyingDirectory state, string name, in Owner owner, out string temp)
    {
        temp = $".{name}.{Guid.NewGuid():N}.tmp";
        var handle = OpenNoFollow(state, temp, Path.Combine(state.Path, temp), FileMode.CreateNew);
        try
        {
            UnderlyingDirectory.SetOwnerAndMode(handle, owner.Uid, owner.Gid, owner.FileMode, Path.Combine(state.Path, temp));
            return handle;
        }
        catch
        {
            handle.Dispose();
            state.Delete(temp);
            throw;
        }
    }

    private static SafeFileHandle OpenNoFollow(UnderlyingDirectory directory, string name, string path, FileMode mode)
    {
        try
        {
            return directory.OpenFile(name, FileAccess.ReadWrite, mode, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
        catch (BackupFuse.Fuse.ErrnoException e) when (e.Errno == BackupFuse.Fuse.Errno.ELOOP)
        {
            throw new UnauthorizedAccessException($"{path}: is a symbolic link; not followed", e);
        }
    }

    private static void CheckOwner(in UnderlyingFileStat stat, in Owner owner, string path, bool stateOwnedByDaemon)
    {
        if (stat.Uid != owner.Uid && !(stat.Uid == UnderlyingDirectory.CurrentUserId && stateOwnedByDaemon))
        {
            throw new UnauthorizedAccessException($"{path}: belongs to uid {stat.Uid}, not to the plugin's owner ({owner.Uid}) nor to this daemon's user in a state directory of its own; not used");
        }
    }

    private static void LockExclusive(SafeFileHandle handle, string path)
    {
        if (flock((int)handle.DangerousGetHandle(), LockExclusiveNonBlocking) != 0)
        {
            int errno = BackupFuse.Core.Native.PosixCalls.LastErrno(); // canonical: EWOULDBLOCK is 35 on macOS
            throw new IOException(errno == EWOULDBLOCK
                ? $"{path}: already open in this daemon for another version of the plugin file (was the plugin replaced while a VM had the disk open?); close the disk and open it again"
                : $"{path}: cannot lock the changes file: {BackupFuse.Core.Native.PosixCalls.Describe(errno)}");
        }
    }

    private const int LockExclusiveNonBlocking = 2 | 4; // LOCK_EX | LOCK_NB
    private const int EWOULDBLOCK = 11;

    [LibraryImport("libc", SetLastError = true)]
    private static partial int flock(int fd, int operation);

    private UnderlyingDirectory? TryOpenState()
    {
        UnderlyingDirectory container;
        try
        {
            container = _openContainer();
        }
        catch (DirectoryNotFoundException)
        {
            return null;
        }

        using (container)
        {
            return TryOpenState(container);
        }
    }

    private UnderlyingDirectory? TryOpenState(UnderlyingDirectory container) =>
        container.TryGetStat(_stateName, out var stat) && stat.IsDirectory ? container.OpenDirectory(_stateName) : null;

    /// <summary>Who new files belong to: the plugin file's owner, or the daemon's user for a volatile location.</summary>
    private Owner OwnerOf(UnderlyingDirectory container)
    {
        if (_pluginName == null)
        {
            return new Owner(UnderlyingDirectory.CurrentUserId, UnderlyingDirectory.CurrentGroupId, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        if (!container.TryGetStat(_pluginName, out var plugin))
        {
            throw new FileNotFoundException($"{Path.Combine(container.Path, _pluginName)}: the plugin file is gone");
        }

        return new Owner(plugin.Uid, plugin.Gid, (UnixFileMode)plugin.Mode & FileBits);
    }

    private readonly record struct Owner(uint Uid, uint Gid, UnixFileMode FileMode);
}

namespace BackupFuse.Daemon.Mounting;

/// <summary>
/// Where a plugin's changes live. For plugin <c>dir/web01.vhdx</c>: the differencing VHDX
/// <c>dir/.backupfuse/web01.changes.vhdx</c> and, beside it, <c>dir/.backupfuse/web01.base.vhdx</c>, a pristine-view
/// plugin that the mount shows as the untouched base. The differencing file's parent locator names that base by
/// relative path, so libvhdi (vhdimount) and 7-Zip open the pair through the mount. Paths here are I/O paths (for a
/// mount over the directory they go through the directory descriptor, see UnderlyingDirectory.DescriptorPath).
/// </summary>
public sealed record ChangesLocation(string StateDirectory, string ChangesFile, string BaseViewFile)
{
    /// <summary>Name of the per-directory state folder.</summary>
    public const string StateDirectoryName = ".backupfuse";

    /// <summary>File name of the base view, as the differencing file's relative_path names it.</summary>
    public string BaseViewName => Path.GetFileName(BaseViewFile);

    /// <summary>The location for the plugin at <paramref name="pluginIoPath"/> (an I/O path of the plugin file).</summary>
    public static ChangesLocation ForPlugin(string pluginIoPath)
    {
        string dir = Path.Combine(Path.GetDirectoryName(pluginIoPath) ?? ".", StateDirectoryName);
        return InDirectory(dir, Path.GetFileNameWithoutExtension(pluginIoPath));
    }

    /// <summary>The location inside <paramref name="directory"/> for a disk called <paramref name="name"/> (used for --volatile).</summary>
    public static ChangesLocation InDirectory(string directory, string name) =>
        new(directory, Path.Combine(directory, name + ".changes.vhdx"), Path.Combine(directory, name + ".base.vhdx"));

    /// <summary>Whether a differencing file exists.</summary>
    public bool Exists => File.Exists(ChangesFile);
}

namespace BackupFuse.Daemon.BackupPoints;

// Design notes:
// - The plugin file's extension chooses the disk format the mount presents its backup point in; the stack below
//   (chain, cache, changes) is the same for all of them (BackupPointStack.Present builds the view). Case-insensitive,
//   as hypervisors and users treat extensions.

/// <summary>The disk format a plugin is presented in, chosen by its file name's extension.</summary>
public enum PluginFormat
{
    /// <summary>.vhdx: the synthesized fixed VHDX.</summary>
    Vhdx,

    /// <summary>.img / .raw: the raw disk.</summary>
    Raw,

    /// <summary>.vhd: a fixed VHD (raw disk + footer).</summary>
    Vhd,

    /// <summary>.vmdk: a single-file monolithicSparse VMDK with every grain allocated.</summary>
    Vmdk,
}

/// <summary>Extension rules of <see cref="PluginFormat"/>.</summary>
public static class PluginFormats
{
    /// <summary>The extensions a plugin may have, for messages.</summary>
    public const string ExtensionList = ".vhdx, .vhd, .vmdk, .img or .raw";

    /// <summary>The format named by <paramref name="path"/>'s extension, or null when it names none.</summary>
    public static PluginFormat? FromPath(string path) =>
        Path.GetExtension(path).ToLowerInvariant() switch
        {
            ".vhdx" => PluginFormat.Vhdx,
            ".img" or ".raw" => PluginFormat.Raw,
            ".vhd" => PluginFormat.Vhd,
            ".vmdk" => PluginFormat.Vmdk,
            _ => null,
        };

    /// <summary>What users call the format ("VHDX", "raw disk", ...), for messages.</summary>
    public static string Describe(this PluginFormat format) => format switch
    {
        PluginFormat.Raw => "raw disk",
        PluginFormat.Vhd => "fixed VHD",
        PluginFormat.Vmdk => "sparse VMDK",
        _ => "VHDX",
    };
}

namespace BackupFuse.Daemon.BackupPoints;

/// <summary>One image a plugin names: its address (absolute path or remote URL) and identity.</summary>
/// <param name="Path">Absolute path or normalized remote URL of the image.</param>
/// <param name="Id">Identity of the image (checked at open).</param>
public sealed record PluginImage(string Path, Guid Id);

namespace BackupFuse.Core.FileTrees;

/// <summary>An entry a synthesized file system stores under another name, or leaves out, and why.</summary>
/// <param name="Entry">Index of the entry in its <see cref="IFileTree"/>.</param>
/// <param name="Path">The entry's path as backed up ('/'-separated, from the root).</param>
/// <param name="StoredName">The name on the synthesized file system; null when the entry is left out.</param>
/// <param name="Reason">Why, in a few words ("case collision", "forbidden character", "symlink: FAT has none").</param>
public sealed record FileNameMapping(int Entry, string Path, string? StoredName, string Reason);

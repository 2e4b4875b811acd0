using BackupFuse.BackupImage.Writing;

namespace BackupFuse.BackupImage.Files;

/// <summary>What a file-level backup wrote.</summary>
/// <param name="Image">The image as any backup describes it (its disk is the data stream).</param>
/// <param name="Fields">The tree's counts and the catalog's place, as recorded in the header.</param>
public sealed record FileBackupResult(BackupResult Image, FileImageFields Fields);

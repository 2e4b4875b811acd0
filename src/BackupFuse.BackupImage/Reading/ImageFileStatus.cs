namespace BackupFuse.BackupImage.Reading;

/// <summary>
/// The file an image was actually read from, as its open descriptor saw it (fstat and /proc/self/fd): what access
/// rules check, so that a path swapped between a check and the open can never slip through.
/// </summary>
/// <param name="RealPath">The canonical path of the opened file (symlinks resolved by the kernel).</param>
/// <param name="Stat">Identity, owner and mode of the opened file.</param>
public sealed record ImageFileStatus(string RealPath, UnixFileStat Stat);

using BackupFuse.Core.Native;

namespace BackupFuse.BackupImage.Lifecycle;

// Design notes:
// - The three steps that make a new file durable and visible at once: fsync the file (done by the writer), rename it
//   onto its name (atomic: a reader sees the old file or the new one, and a process that has the old one open keeps
//   reading it), fsync the directory so the rename itself survives a crash. Unlinking is made durable the same way.
// - Errors of the directory fsync are reported: a rename that may not survive a power cut is not a success.
// - The directory is opened through PosixCalls with canonical flags (O_DIRECTORY's number differs between x64 and
//   arm64 Linux, where 0x10000 is O_DIRECT, and on macOS); never with a raw number.

/// <summary>Durable rename and unlink (fsync of the containing directory).</summary>
public static class DurableFile
{
    /// <summary>Renames <paramref name="temporary"/> onto <paramref name="destination"/> and fsyncs the directory.</summary>
    /// <exception cref="IOException">The rename or the directory fsync failed, or the destination exists and <paramref name="overwrite"/> is false.</exception>
    public static void Publish(string temporary, string destination, bool overwrite)
    {
        File.Move(temporary, destination, overwrite);
        SyncDirectory(Path.GetDirectoryName(Path.GetFullPath(destination))!);
    }

    /// <summary>Deletes <paramref name="path"/> and fsyncs its directory.</summary>
    public static void Delete(string path)
    {
        File.Delete(path);
        SyncDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
    }

    /// <summary>Fsyncs a directory (its entries: renames, creations, deletions).</summary>
    /// <exception cref="IOException">The directory cannot be opened or synced.</exception>
    public static void SyncDirectory(string directory) => PosixCalls.SyncDirectory(directory);
}

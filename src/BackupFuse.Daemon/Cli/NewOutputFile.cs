using Microsoft.Win32.SafeHandles;

namespace BackupFuse.Daemon.Cli;

// Design notes:
// - How every command output file is made (raw copy, qcow2 export): the file must not exist and its directory must
//   (each refused with one line naming the path); the content goes to PATH.partial, is flushed to disk and only then
//   renamed to PATH, so an interrupted or failed write never leaves a file that looks complete. On any failure the
//   .partial file is deleted and the exception passes on.
// - Deliberately not done: overwriting, or writing to standard output (callers handle "-" themselves).
// - Stateless: thread-safe (one call writes one file).

/// <summary>Writes a new output file through PATH.partial, renamed when complete.</summary>
public static class NewOutputFile
{
    /// <summary>
    /// Creates <paramref name="path"/> (which must not exist) with <paramref name="access"/>, lets
    /// <paramref name="write"/> fill it, flushes it to disk and renames it into place.
    /// </summary>
    /// <exception cref="CliError">The file exists or its directory does not.</exception>
    public static void Write(string path, FileAccess access, Action<SafeFileHandle> write)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(write);
        if (File.Exists(path))
        {
            throw new CliError($"{path} already exists; choose a new file name");
        }

        string? directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (directory != null && !Directory.Exists(directory))
        {
            throw new CliError($"cannot write {path}: the directory {directory} does not exist");
        }

        string tmp = path + ".partial";
        try
        {
            using (var handle = File.OpenHandle(tmp, FileMode.CreateNew, access))
            {
                write(handle);
                RandomAccess.FlushToDisk(handle);
            }

            File.Move(tmp, path);
        }
        catch
        {
            File.Delete(tmp);
            throw;
        }
    }
}

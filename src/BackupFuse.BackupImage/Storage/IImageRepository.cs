namespace BackupFuse.BackupImage.Storage;

// Design notes:
// - A place that holds images: a local directory, an S3 prefix, an HTTP directory. The catalog lists every
//   repository it is given and finds images by identity across all of them (a chain may span several).
// - Addresses are strings: an absolute path for local files, a URL (s3://bucket/key, https://host/path) for remote
//   objects. Contains says whether an address lies inside the repository; for a local directory that is decided on
//   real paths (symlinks resolved), so that nothing outside the roots is read through a symlink.
// - Listing is not recursive (the images directly in the directory or under the prefix, named *.bfi).
// - Thread-safe.

/// <summary>A directory, object-store prefix or web directory holding backup images.</summary>
public interface IImageRepository
{
    /// <summary>The repository as the user named it (a path or URL without secrets).</summary>
    string Location { get; }

    /// <summary>Whether the repository is remote (no local owner or mode to check).</summary>
    bool IsRemote { get; }

    /// <summary>The addresses of the *.bfi images directly in the repository, in a stable order.</summary>
    /// <exception cref="IOException">The repository cannot be listed.</exception>
    /// <exception cref="UnauthorizedAccessException">Listing is not allowed.</exception>
    IReadOnlyList<string> List();

    /// <summary>Whether <paramref name="address"/> names an object inside this repository.</summary>
    bool Contains(string address);

    /// <summary>Opens the image at <paramref name="address"/> (an address <see cref="Contains"/> accepts).</summary>
    /// <exception cref="FileNotFoundException">No such object.</exception>
    /// <exception cref="UnauthorizedAccessException">Access denied.</exception>
    /// <exception cref="IOException">Any other failure.</exception>
    IImageObject Open(string address);
}

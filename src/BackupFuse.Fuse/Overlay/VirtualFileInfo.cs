namespace BackupFuse.Fuse.Overlay;

/// <summary>What a virtual file looks like to getattr.</summary>
/// <param name="Length">st_size.</param>
/// <param name="AllocatedBytes">Bytes holding data (st_blocks = ceil(AllocatedBytes / 512)); see <see cref="VirtualFiles.CountAllocatedBytes"/>.</param>
/// <param name="Writable">False clears the write bits of the reported mode.</param>
/// <param name="ModifiedUtc">st_mtime; null keeps the underlying file's.</param>
public readonly record struct VirtualFileInfo(long Length, long AllocatedBytes, bool Writable, DateTime? ModifiedUtc = null);

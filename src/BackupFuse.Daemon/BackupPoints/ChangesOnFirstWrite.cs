using BackupFuse.Core;
using BackupFuse.Vhdx;

namespace BackupFuse.Daemon.BackupPoints;

// Design notes:
// - The file the mount serves for a writable plugin that has no changes yet: the pristine synthesized VHDX until the
//   first write, which creates the changes (the callback, run once, under a lock) and switches every later request
//   to the writable VHDX over them. So an open that only reads never creates a file.
// - Threading: the writable VHDX is published (volatile write) only once complete; every request takes whichever
//   VHDX is current. A read racing the first write returns the pristine bytes, the file's content before that write
//   (a valid answer for a read concurrent with a write); the pristine VHDX stays usable until Dispose, so a read in
//   flight never meets a disposed source. Both views have the same bytes and length at the switch (the new changes
//   file is empty). A failed creation leaves the pristine view in place; the next write tries again.
// - Owns nothing: both VHDX files and the layers below them belong to the caller (BackupPointStack), which disposes
//   each layer once.

/// <summary>A synthesized VHDX that is pristine until its first write, which creates the changes and switches to them.</summary>
public sealed class ChangesOnFirstWrite(SynthesizedVhdx pristine, Func<SynthesizedVhdx> createWritable) : BlockSource
{
    private readonly object _lock = new();
    private volatile SynthesizedVhdx? _writable;

    /// <summary>The VHDX that currently answers (the writable one after the first write).</summary>
    public SynthesizedVhdx Current => _writable ?? pristine;

    /// <inheritdoc/>
    public override long Length => Current.Length;

    /// <inheritdoc/>
    public override int BlockSize => pristine.BlockSize;

    /// <inheritdoc/>
    public override bool CanWrite => true;

    /// <inheritdoc/>
    public override void Read(long offset, Span<byte> buffer) => Current.Read(offset, buffer);

    /// <inheritdoc/>
    public override Extent GetExtent(long offset, long maxLength) => Current.GetExtent(offset, maxLength);

    /// <inheritdoc/>
    public override void Write(long offset, ReadOnlySpan<byte> data) => (_writable ?? Switch()).Write(offset, data);

    /// <inheritdoc/>
    public override void Flush() => _writable?.Flush();

    private SynthesizedVhdx Switch()
    {
        lock (_lock)
        {
            return _writable ??= createWritable();
        }
    }
}

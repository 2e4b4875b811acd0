namespace BackupFuse.BackupImage.Writing;

/// <summary>What the writer needs from a source disk: its size, where data is (holes are skipped unread), and reads.</summary>
internal interface IDiskReader : IDisposable
{
    /// <summary>Name for messages (the path).</summary>
    string Name { get; }

    /// <summary>Size of the disk.</summary>
    long Length { get; }

    /// <summary>Start of the first data run at or after <paramref name="offset"/>, or <see cref="Length"/> when only holes follow.</summary>
    long NextData(long offset);

    /// <summary>Start of the first hole at or after <paramref name="offset"/> (a data offset), or <see cref="Length"/>.</summary>
    long NextHole(long offset);

    /// <summary>Reads exactly <paramref name="buffer"/>.Length bytes at <paramref name="offset"/> or throws.</summary>
    void Read(long offset, Span<byte> buffer);
}

using BackupFuse.Core;

namespace BackupFuse.Testing;

/// <summary>Fails reads that touch a chosen range with <see cref="InvalidDataException"/>, like nbdkit's error filter.</summary>
public sealed class FaultInjectingFilter(IBlockSource next, long badOffset, long badLength) : BlockFilter(next)
{
    /// <summary>How many reads were failed.</summary>
    public int Faults { get; private set; }

    /// <inheritdoc/>
    public override void Read(long offset, Span<byte> buffer)
    {
        if (offset < badOffset + badLength && badOffset < offset + buffer.Length)
        {
            Faults++;
            throw new InvalidDataException($"injected fault at {badOffset}");
        }

        base.Read(offset, buffer);
    }
}

namespace BackupFuse.Vhdx.Log;

/// <summary>One 4 KiB metadata sector update carried by a log entry: the full new contents of the sector at <paramref name="FileOffset"/>.</summary>
public readonly record struct LogSectorWrite(long FileOffset, ReadOnlyMemory<byte> Data);

/// <summary>A range a log entry zeroes (a zero descriptor); offset and length are multiples of 4 KiB.</summary>
public readonly record struct LogZeroRange(long FileOffset, long Length);

namespace BackupFuse.Core.Partitions;

/// <summary>One partition of a synthesized disk: the volume's bytes and how the table describes it.</summary>
/// <param name="Length">Bytes of the volume (the partition is this rounded up to whole sectors; the tail reads as zeros).</param>
/// <param name="TypeGuid">GPT partition type GUID.</param>
/// <param name="UniqueGuid">GPT unique partition GUID.</param>
/// <param name="MbrType">MBR partition type byte (for <see cref="PartitionTableKind.Mbr"/>).</param>
/// <param name="Name">GPT partition name (at most 36 UTF-16 code units are kept).</param>
public sealed record PartitionSpec(long Length, Guid TypeGuid, Guid UniqueGuid, byte MbrType, string Name);

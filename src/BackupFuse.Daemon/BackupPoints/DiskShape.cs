using BackupFuse.Core.Partitions;

namespace BackupFuse.Daemon.BackupPoints;

/// <summary>The disk a backup point reads as.</summary>
/// <param name="Identity">The disk's identity (the VHDX's).</param>
/// <param name="DiskSize">Its size in bytes.</param>
/// <param name="Partitions">For volumes: the synthesized partition layout; null for a disk image read as it is.</param>
public sealed record DiskShape(Guid Identity, long DiskSize, PartitionedDiskLayout? Partitions);

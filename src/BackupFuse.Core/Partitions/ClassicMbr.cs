using System.Buffers.Binary;

namespace BackupFuse.Core.Partitions;

/// <summary>A classic MBR (sector 0) with up to four primary partitions, for guests that do not read GPT.</summary>
public static class ClassicMbr
{
    /// <summary>Most partitions a classic MBR holds without extended partitions (not synthesized).</summary>
    public const int MaxPartitions = 4;

    /// <summary>Sector 0 describing <paramref name="partitions"/> (first LBA, sector count, type) and the disk signature.</summary>
    /// <exception cref="InvalidDataException">More than four partitions, or one beyond the 32-bit sector limit (2 TiB).</exception>
    public static byte[] Create(IReadOnlyList<(long FirstLba, long Sectors, byte Type)> partitions, uint diskSignature)
    {
        ArgumentNullException.ThrowIfNull(partitions);
        if (partitions.Count > MaxPartitions)
        {
            throw new InvalidDataException($"a classic MBR holds at most {MaxPartitions} partitions, not {partitions.Count}: use GPT");
        }

        byte[] sector = new byte[PartitionedDiskLayout.SectorSize];
        BinaryPrimitives.WriteUInt32LittleEndian(sector.AsSpan(440), diskSignature);
        for (int i = 0; i < partitions.Count; i++)
        {
            var (first, count, type) = partitions[i];
            if (first + count > uint.MaxValue)
            {
                throw new InvalidDataException($"partition {i + 1} ends beyond 2 TiB, which a classic MBR cannot address: use GPT");
            }

            MbrEntry.Write(sector.AsSpan(MbrEntry.TableOffset + (i * MbrEntry.Size)), type, (uint)first, (uint)count);
        }

        MbrEntry.WriteSignature(sector);
        return sector;
    }
}

using BackupFuse.Core;

namespace BackupFuse.Fuzz;

// Design notes:
// - Reads a virtual disk the way the daemon's consumers do: GetExtent from the start to the end, and the first and
//   last sector of every extent that holds data. So every piece of metadata (BAT entry, bitmap run, chunk entry) is
//   looked up and every data extent is read at both ends, while a huge sparse disk stays as cheap as it is for the
//   daemon. Extents are capped at MaxExtents.
// - An extent that does not start where asked or is empty breaks the IBlockSource contract: a crash.

/// <summary>Walks and reads every extent of a block source.</summary>
internal static class ExtentWalk
{
    private const int MaxExtents = 100_000;

    /// <summary>Reads every extent of <paramref name="disk"/> (its first and last sector where it holds data).</summary>
    public static void ReadAll(IBlockSource disk, int sectorSize)
    {
        var sector = new byte[Math.Clamp(sectorSize, 512, 4096)];
        long offset = 0;
        for (int n = 0; offset < disk.Length && n < MaxExtents; n++)
        {
            var extent = disk.GetExtent(offset, disk.Length - offset);
            if (extent.Length <= 0 || extent.Offset != offset)
            {
                throw new FuzzFailureException($"GetExtent({offset}) returned {extent.Offset}+{extent.Length}: no progress");
            }

            if (extent.Kind == ExtentKind.Data)
            {
                int first = (int)Math.Min(sector.Length, extent.Length);
                disk.Read(offset, sector.AsSpan(0, first));
                disk.Read(offset + extent.Length - first, sector.AsSpan(0, first));
            }

            offset += extent.Length;
        }
    }
}

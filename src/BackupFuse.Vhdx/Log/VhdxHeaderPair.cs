using System.Buffers;
using BackupFuse.Core;
using BackupFuse.Vhdx.Format;

namespace BackupFuse.Vhdx.Log;

// Design notes:
// - The two header slots of a writable VHDX file and the spec's update procedure (MS-VHDX 2.2.2.1): the new header
//   (SequenceNumber = current + 1) goes to the NON-current slot, flush, and then once more to the other slot
//   (current + 2), flush, so both slots always hold a valid, up-to-date header and a torn write can only damage the
//   slot that is not current at that moment. Headers never go through the log.
// - The first update of a session carries a new FileWriteGuid (the spec demands it before the first change of any
//   kind); callers say whether the update also needs a new DataWriteGuid (user-visible change).
// - Not thread-safe: the owner serializes header updates (they happen once per session and at log start/stop).

/// <summary>The two header slots of a VHDX file opened for writing, and the spec's header update procedure.</summary>
public sealed class VhdxHeaderPair
{
    private readonly IBlockSource _file;
    private bool _fileWriteGuidRenewed;

    private VhdxHeaderPair(IBlockSource file, string name, VhdxHeader current, int slot)
    {
        _file = file;
        Name = name;
        Current = current;
        CurrentSlot = slot;
    }

    /// <summary>The file's name, for messages.</summary>
    public string Name { get; }

    /// <summary>The current header.</summary>
    public VhdxHeader Current { get; private set; }

    /// <summary>The slot (1 or 2) holding the current header.</summary>
    public int CurrentSlot { get; private set; }

    /// <summary>Whether this session already wrote the headers (and so renewed FileWriteGuid).</summary>
    public bool SessionStarted => _fileWriteGuidRenewed;

    /// <summary>Reads both slots and picks the current header; InvalidDataException naming the file when none is valid.</summary>
    public static VhdxHeaderPair Read(IBlockSource file, string name)
    {
        ArgumentNullException.ThrowIfNull(file);
        var both = ArrayPool<byte>.Shared.Rent(2 * VhdxHeader.Size);
        try
        {
            if (file.Length < VhdxHeader.Header2Offset + VhdxHeader.Size)
            {
                throw new InvalidDataException($"{name}: the file ({file.Length} bytes) ends before the VHDX headers");
            }

            var one = both.AsSpan(0, VhdxHeader.Size);
            var two = both.AsSpan(VhdxHeader.Size, VhdxHeader.Size);
            file.Read(VhdxHeader.Header1Offset, one);
            file.Read(VhdxHeader.Header2Offset, two);
            bool ok1 = VhdxHeader.TryRead(one, out var h1) && h1.Version == VhdxHeader.CurrentVersion;
            bool ok2 = VhdxHeader.TryRead(two, out var h2) && h2.Version == VhdxHeader.CurrentVersion;
            if (ok1 && ok2)
            {
                if (h1.SequenceNumber == h2.SequenceNumber)
                {
                    return one.SequenceEqual(two)
                        ? new VhdxHeaderPair(file, name, h1, 1)
                        : throw new InvalidDataException($"{name}: both VHDX headers carry sequence number {h1.SequenceNumber} but differ");
                }

                return h2.SequenceNumber > h1.SequenceNumber ? new VhdxHeaderPair(file, name, h2, 2) : new VhdxHeaderPair(file, name, h1, 1);
            }

            return ok1 ? new VhdxHeaderPair(file, name, h1, 1)
                : ok2 ? new VhdxHeaderPair(file, name, h2, 2)
                : throw new InvalidDataException($"{name}: neither VHDX header is valid (signature, checksum or version)");
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(both);
        }
    }

    /// <summary>
    /// Writes <paramref name="change"/>(current) to both slots by the spec procedure. The first update of a session
    /// also renews FileWriteGuid; <paramref name="newDataWriteGuid"/> renews DataWriteGuid.
    /// </summary>
    public void Update(Func<VhdxHeader, VhdxHeader> change, bool newDataWriteGuid = false)
    {
        ArgumentNullException.ThrowIfNull(change);
        var next = change(Current);
        if (!_fileWriteGuidRenewed)
        {
            next = next with { FileWriteGuid = Guid.NewGuid() };
        }

        if (newDataWriteGuid)
        {
            next = next with { DataWriteGuid = Guid.NewGuid() };
        }

        var buffer = ArrayPool<byte>.Shared.Rent(VhdxHeader.Size);
        try
        {
            for (int round = 0; round < 2; round++)
            {
                int slot = CurrentSlot == 1 ? 2 : 1;
                var header = next with { SequenceNumber = Current.SequenceNumber + 1 };
                header.Write(buffer.AsSpan(0, VhdxHeader.Size));
                _file.Write(slot == 1 ? VhdxHeader.Header1Offset : VhdxHeader.Header2Offset, buffer.AsSpan(0, VhdxHeader.Size));
                _file.Flush();
                Current = header;
                CurrentSlot = slot;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        _fileWriteGuidRenewed = true;
    }
}

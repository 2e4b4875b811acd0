using System.Runtime.InteropServices;
using BackupFuse.Daemon.Mounting;

namespace BackupFuse.Daemon.Tests;

/// <summary>The daemon's malloc settings: a buffer of libfuse's largest read comes from the heap, not from a mapping of its own.</summary>
public sealed partial class NativeHeapTests
{
    [Fact]
    public void ARequestSizedBufferComesFromTheHeapNotFromAMappingOfItsOwn()
    {
        // First glibc's initial threshold (128 KiB), under which a 2 MiB buffer gets a mapping of its own; the test
        // process may have raised it already (glibc raises it when a larger mapped chunk is freed).
        Assert.Equal(1, Mallopt(MMmapThreshold, 128 << 10));
        Assert.True(TriesOnce(wantMapped: true), "with a 128 KiB threshold a 2 MiB malloc should get a mapping of its own");

        NativeHeap.ConfigureForDaemon();
        Assert.True(TriesOnce(wantMapped: false), "a 2 MiB malloc got a mapping of its own: the daemon's mmap threshold is not in force");
        Assert.True(NativeHeap.MmapThresholdBytes > 1 << 20, "libfuse's 1 MiB read buffers must stay below the mmap threshold");
    }

    /// <summary>
    /// Whether a 2 MiB malloc got a mapping of its own (mallinfo2's total of mapped bytes grew by it) exactly when
    /// <paramref name="wantMapped"/>, in one of a few tries: the total is process-wide, and another test's mapping or unmapping between the two
    /// looks moves it.
    /// </summary>
    private static bool TriesOnce(bool wantMapped)
    {
        const int size = 2 << 20;
        for (int attempt = 0; attempt < 5; attempt++)
        {
            nuint before = MallInfo2().MappedBytes;
            nint buffer = Malloc(size);
            Assert.True(buffer != 0, "malloc failed");
            nuint after = MallInfo2().MappedBytes;
            Free(buffer);
            if ((after >= before + size) == wantMapped)
            {
                return true;
            }
        }

        return false;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct MallocInfo
    {
        public nuint Arena;
        public nuint OrdinaryBlocks;
        public nuint SmallBlocks;
        public nuint MappedBlocks;
        public nuint MappedBytes;
        public nuint Unused;
        public nuint FastbinFreeBytes;
        public nuint AllocatedBytes;
        public nuint FreeBytes;
        public nuint KeepCost;
    }

    private const int MMmapThreshold = -3;

    [LibraryImport("libc", EntryPoint = "mallopt")]
    private static partial int Mallopt(int param, int value);

    [LibraryImport("libc", EntryPoint = "mallinfo2")]
    private static partial MallocInfo MallInfo2();

    [LibraryImport("libc", EntryPoint = "malloc")]
    private static partial nint Malloc(nuint size);

    [LibraryImport("libc", EntryPoint = "free")]
    private static partial void Free(nint pointer);
}

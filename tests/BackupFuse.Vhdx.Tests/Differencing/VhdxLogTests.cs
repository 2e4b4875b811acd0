using BackupFuse.Core;
using BackupFuse.Testing;
using BackupFuse.Vhdx.Format;
using BackupFuse.Vhdx.Log;

namespace BackupFuse.Vhdx.Tests.Differencing;

/// <summary>The log writer and replayer on a fixed VHDX file (a synthesized one exported), with QEMU as a second replayer.</summary>
public sealed class VhdxLogTests : IDisposable
{
    private const int Sector = 4096;
    private readonly TempDirectory _dir = new("bf-log");
    private readonly string _path;
    private readonly long _payload;
    private readonly byte[] _pristine;

    public VhdxLogTests()
    {
        _path = _dir["f.vhdx"];
        using var v = new SynthesizedVhdx(new PatternSource(8L << 20, seed: 3), Guid.NewGuid(), new VhdxLayoutOptions { BlockSize = 1 << 20 });
        SynthesizedVhdxExport.ToSparseFile(v, _path);
        _payload = v.Layout.PayloadOffset;
        _pristine = File.ReadAllBytes(_path);
    }

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void CommitAppliesAndCloseEmptiesTheLog()
    {
        using (var file = new FileBlockSource(_path, writable: true))
        {
            var log = VhdxLog.Open(file, _path);
            Assert.Equal(0, log.ReplayedEntries);
            ulong seq = log.Header.SequenceNumber;
            log.Commit([Update(0, 0x11), Update(3, 0x22)], [new LogZeroRange(_payload + (8 * Sector), 2 * Sector)]);
            Assert.NotEqual(Guid.Empty, log.Header.LogGuid);
            Assert.Equal(seq + 2, log.Header.SequenceNumber);
            Guid logGuid = log.Header.LogGuid;
            log.Commit([Update(1, 0x33)]);
            Assert.Equal(logGuid, log.Header.LogGuid); // kept for the session
            log.Close();
            Assert.Equal(Guid.Empty, log.Header.LogGuid);
            Assert.Equal(seq + 4, log.Header.SequenceNumber);
        }

        var bytes = File.ReadAllBytes(_path);
        AssertSector(bytes, 0, 0x11);
        AssertSector(bytes, 1, 0x33);
        AssertSector(bytes, 3, 0x22);
        Assert.True(bytes.AsSpan((int)_payload + (8 * Sector), 2 * Sector).IndexOfAnyExcept((byte)0) < 0, "zero range not applied");
        Assert.True(_pristine.AsSpan((int)_payload + (2 * Sector), Sector).SequenceEqual(bytes.AsSpan((int)_payload + (2 * Sector), Sector)));

        // Both header slots valid, the current one with a new FileWriteGuid; QEMU opens it without a log to replay.
        using var reader = VhdxReader.Open(new FileBlockSource(_path), ownsFile: true);
        Assert.Equal(Guid.Empty, reader.Header.LogGuid);
        Assert.True(VhdxHeader.TryRead(bytes.AsSpan((int)VhdxHeader.Header1Offset), out _) && VhdxHeader.TryRead(bytes.AsSpan((int)VhdxHeader.Header2Offset), out _));
        var check = ExternalTool.Run("qemu-img", ["check", "-f", "vhdx", _path]);
        Assert.True(check.ExitCode == 0, check.Output);
        ExternalTool.Check("qemu-io", "-r", "-f", "vhdx", "-c", "read -P 0x11 0 4096", "-c", "read -P 0x33 4096 4096", _path);
    }

    [Fact]
    public void EntryWrittenButNotAppliedIsReplayedByUsAndByQemu()
    {
        CrashDuringCommit([Update(0, 0x41), Update(5, 0x42)]);
        var dirty = File.ReadAllBytes(_path);
        Assert.True(_pristine.AsSpan((int)_payload, Sector).SequenceEqual(dirty.AsSpan((int)_payload, Sector)), "the crash hook ran after apply");

        // QEMU replays our entry (qemu-img check -r all opens read-write and replays).
        string copy = _dir["qemu.vhdx"];
        File.Copy(_path, copy);
        var refused = ExternalTool.Run("qemu-img", ["check", "-f", "vhdx", copy]);
        Assert.NotEqual(0, refused.ExitCode); // a log that needs replay: QEMU refuses a read-only open
        var repaired = ExternalTool.Run("qemu-img", ["check", "-r", "all", "-f", "vhdx", copy]);
        Assert.True(repaired.ExitCode == 0, repaired.Output);
        var qemuRead = ExternalTool.Run("qemu-io", ["-r", "-f", "vhdx", "-c", "read -P 0x41 0 4096", "-c", "read -P 0x42 20480 4096", copy]);
        Assert.True(qemuRead.ExitCode == 0 && !qemuRead.Output.Contains("Pattern verification failed", StringComparison.Ordinal), qemuRead.Output);

        using (var file = new FileBlockSource(_path, writable: true))
        {
            var log = VhdxLog.Open(file, _path);
            Assert.Equal(1, log.ReplayedEntries);
            Assert.Equal(Guid.Empty, log.Header.LogGuid);
        }

        var bytes = File.ReadAllBytes(_path);
        AssertSector(bytes, 0, 0x41);
        AssertSector(bytes, 5, 0x42);
        var check = ExternalTool.Run("qemu-img", ["check", "-f", "vhdx", _path]);
        Assert.True(check.ExitCode == 0, check.Output);
    }

    [Fact]
    public void TornLastEntryIsIgnoredAndTheSequenceBeforeItReplays()
    {
        using (var file = new FileBlockSource(_path, writable: true))
        {
            var log = VhdxLog.Open(file, _path);
            log.Commit([Update(0, 0x51)]); // entry A at log offset 0, 2 sectors, applied
            log.AfterEntryWritten = () => throw new IOException("crash");
            Assert.Throws<IOException>(() => log.Commit([Update(1, 0x52), Update(2, 0x53)])); // entry B at 8 KiB
        }

        // Tear B: its last data sector never reached the disk.
        using (var raw = new FileBlockSource(_path, writable: true))
        {
            raw.Write(VhdxLayout.LogOffset + (2 * Sector) + (2 * Sector) + 100, new byte[] { 0xEE });
        }

        using (var file = new FileBlockSource(_path, writable: true))
        {
            var log = VhdxLog.Open(file, _path);
            Assert.Equal(1, log.ReplayedEntries); // A again (harmless), not B
        }

        var bytes = File.ReadAllBytes(_path);
        AssertSector(bytes, 0, 0x51);
        Assert.True(_pristine.AsSpan((int)_payload + Sector, 2 * Sector).SequenceEqual(bytes.AsSpan((int)_payload + Sector, 2 * Sector)), "the torn entry was applied");
    }

    [Fact]
    public void EntriesWrapAroundTheRing()
    {
        using (var file = new FileBlockSource(_path, writable: true))
        {
            var log = VhdxLog.Open(file, _path);
            Assert.Equal(254, log.MaxSectorsPerEntry);
            var big = Enumerable.Range(0, 100).Select(i => Update(i, (byte)(i + 1))).ToArray(); // 101 sectors = 404 KiB
            log.Commit(big);  // at 0
            log.Commit(big);  // at 404 KiB
            log.AfterEntryWritten = () => throw new IOException("crash");
            var third = Enumerable.Range(100, 100).Select(i => Update(i, 0x77)).ToArray();
            Assert.Throws<IOException>(() => log.Commit(third)); // at 808 KiB: wraps past 1 MiB
        }

        var dirty = File.ReadAllBytes(_path);
        Assert.True(dirty.AsSpan((int)VhdxLayout.LogOffset + (808 * 1024)).StartsWith("loge"u8), "third entry not at 808 KiB");
        Assert.True(dirty.AsSpan((int)VhdxLayout.LogOffset).StartsWith("data"u8), "the third entry did not wrap to the start of the log");

        using (var file = new FileBlockSource(_path, writable: true))
        {
            Assert.Equal(1, VhdxLog.Open(file, _path).ReplayedEntries);
        }

        var bytes = File.ReadAllBytes(_path);
        AssertSector(bytes, 99, 100);
        for (int i = 100; i < 200; i++)
        {
            AssertSector(bytes, i, 0x77);
        }

        var check = ExternalTool.Run("qemu-img", ["check", "-f", "vhdx", _path]);
        Assert.True(check.ExitCode == 0, check.Output);
    }

    [Fact]
    public void TruncationIsCorruptionButALogWithoutACompletedEntryIsEmpty()
    {
        CrashDuringCommit([Update(0, 0x61)]);
        using (var raw = File.OpenHandle(_path, FileMode.Open, FileAccess.ReadWrite))
        {
            RandomAccess.SetLength(raw, RandomAccess.GetLength(raw) - (1 << 20));
        }

        using (var file = new FileBlockSource(_path, writable: true))
        {
            var e = Assert.Throws<InvalidDataException>(() => VhdxLog.Open(file, _path));
            Assert.Contains(_path, e.Message);
            Assert.Contains("truncated", e.Message);
        }

        File.WriteAllBytes(_path, _pristine);
        using (var file = new FileBlockSource(_path, writable: true))
        {
            VhdxHeaderPair.Read(file, _path).Update(h => h with { LogGuid = Guid.NewGuid() }); // a LogGuid but an empty log
        }

        using (var file = new FileBlockSource(_path, writable: true))
        {
            // No completed entry: the session crashed while writing its first one. Like QEMU: an empty log.
            var log = VhdxLog.Open(file, _path);
            Assert.Equal(0, log.ReplayedEntries);
            Assert.Equal(Guid.Empty, log.Header.LogGuid);
        }

        Assert.True(_pristine.AsSpan((int)_payload).SequenceEqual(File.ReadAllBytes(_path).AsSpan((int)_payload)), "an empty log changed data");
    }

    [Fact]
    public void CommitRefusesTargetsInTheHeaderSectionOrTheLogAndOversizedBatches()
    {
        using var file = new FileBlockSource(_path, writable: true);
        var log = VhdxLog.Open(file, _path);
        Assert.Throws<ArgumentException>(() => log.Commit([new LogSectorWrite(VhdxHeader.Header1Offset, new byte[Sector])]));
        Assert.Throws<ArgumentException>(() => log.Commit([new LogSectorWrite(VhdxLayout.LogOffset + Sector, new byte[Sector])]));
        Assert.Throws<ArgumentException>(() => log.Commit([.. Enumerable.Range(0, 255).Select(i => Update(i, 1))]));
    }

    private LogSectorWrite Update(int payloadSector, byte fill)
    {
        var data = new byte[Sector];
        Array.Fill(data, fill);
        return new LogSectorWrite(_payload + ((long)payloadSector * Sector), data);
    }

    private void CrashDuringCommit(LogSectorWrite[] sectors)
    {
        using var file = new FileBlockSource(_path, writable: true);
        var log = VhdxLog.Open(file, _path);
        log.AfterEntryWritten = () => throw new IOException("simulated crash");
        Assert.Throws<IOException>(() => log.Commit(sectors));
    }

    private void AssertSector(byte[] file, int payloadSector, byte fill) =>
        Assert.True(file.AsSpan((int)(_payload + ((long)payloadSector * Sector)), Sector).IndexOfAnyExcept(fill) < 0, $"payload sector {payloadSector} is not 0x{fill:x2}");
}

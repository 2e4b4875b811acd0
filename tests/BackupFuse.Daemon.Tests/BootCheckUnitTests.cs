using BackupFuse.BackupImage.Reading;
using BackupFuse.BackupImage.Writing;
using BackupFuse.Core;
using BackupFuse.Daemon.BootCheck;
using BackupFuse.Testing;

namespace BackupFuse.Daemon.Tests;

/// <summary>
/// The parts of boot-check that need no VM: the firmware choice (partition tables written by sfdisk), the failure and
/// pre-boot texts, the PNG encoder's structure and the newest point of each chain (--latest).
/// </summary>
public sealed class BootCheckUnitTests : IDisposable
{
    private readonly TempDirectory _dir = new("bfbootunit");

    public void Dispose() => _dir.Dispose();

    [SkippableTheory]
    [InlineData("gpt", "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", Firmware.Uefi)]   // EFI system partition
    [InlineData("gpt", "21686148-6449-6E6F-744E-656564454649", Firmware.Bios)]   // BIOS boot partition
    [InlineData("gpt", "0FC63DAF-8483-4772-8E79-3D69D8477DE4", Firmware.Bios)]   // Linux only (legacy-bootable, syslinux)
    [InlineData("dos", "ef", Firmware.Uefi)]
    [InlineData("dos", "83", Firmware.Bios)]
    public void TheFirmwareFollowsThePartitionTable(string label, string type, Firmware expected)
    {
        Prerequisite.Tool("sfdisk", "fdisk");
        string disk = _dir["disk.raw"];
        using (var f = File.Create(disk))
        {
            f.SetLength(8 << 20);
        }

        ExternalTool.Run("sfdisk", ["-q", disk], stdin: $"label: {label}\nstart=2048, size=8192, type={type}\n");
        using var source = new FileBlockSource(disk);

        Assert.Equal(expected, FirmwareChooser.Choose(source).Firmware);
    }

    [Fact]
    public void ADiskWithoutPartitionTableBootsByBios()
    {
        using var blank = new MemorySource(1 << 20);
        Assert.Equal(Firmware.Bios, FirmwareChooser.Choose(blank).Firmware);
    }

    [Theory]
    [InlineData("[    7.7] Kernel panic - not syncing: VFS: Unable to mount root fs", FailureSigns.KernelPanic)]
    [InlineData("SeaBIOS (version 1.16)\nBooting from Hard Disk...\nBoot failed: not a bootable disk\n\nNo bootable device.", FailureSigns.NoBootableDevice)]
    [InlineData("BdsDxe: starting Boot0002 \"EFI Internal Shell\" from Fv(7CB8)", FailureSigns.NoBootableDevice)]
    [InlineData("error: unknown filesystem.\nEntering rescue mode...\ngrub rescue> ", FailureSigns.GrubRescue)]
    public void FailureMessagesAreNamed(string text, string expected) =>
        Assert.Equal(expected, FailureSigns.Find(text)?.Failure);

    [Theory]
    [InlineData("Debian GNU/Linux 12 web01 tty1\n\nweb01 login:")]
    [InlineData("Booting from Hard Disk...\nWelcome to Debian")]
    public void AnOperatingSystemScreenIsNeitherFailureNorPreBoot(string text)
    {
        Assert.Null(FailureSigns.Find(text));
        Assert.False(PreBootScreen.IsPreBoot(text));
    }

    [Theory]
    [InlineData("SeaBIOS (version 1.16.2-debian-1.16.2-1)\nBooting from Hard Disk...\n\nSYSLINUX 6.04 EDD 20210613 Copyright (C) 1994-2015 H. Peter Anvin et al")]
    [InlineData("GRUB loading.\nWelcome to GRUB!\n\nLoading Linux 6.1.0-13-amd64 ...\nLoading initial ramdisk ...")]
    public void FirmwareAndBootLoaderScreensArePreBoot(string text) => Assert.True(PreBootScreen.IsPreBoot(text));

    [Fact]
    public void ScreensAreComparedAndEncodedAsPng()
    {
        var black = Ppm(4, 2, (_, _) => (0, 0, 0));
        var text = Ppm(4, 2, (x, y) => x == 1 && y == 0 ? (200, 200, 200) : (0, 0, 0));
        Assert.True(black.IsSingleColour);
        Assert.False(text.IsSingleColour);
        Assert.Equal(1.0 / 8, text.DifferenceFrom(black), 6);
        Assert.Equal(2, text.CountColours());

        byte[] png = PngEncoder.Encode(text);
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G', 13, 10, 26, 10 }, png[..8]);
        Assert.Equal("IHDR", System.Text.Encoding.ASCII.GetString(png, 12, 4));
        Assert.Equal(4, System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(16)));
        Assert.EndsWith("IEND", System.Text.Encoding.ASCII.GetString(png, png.Length - 8, 4), StringComparison.Ordinal);
    }

    [Fact]
    public void LatestTakesTheNewestPointOfEachChain()
    {
        string images = _dir["images"];
        Directory.CreateDirectory(images);
        string disk = _dir["disk.raw"];
        File.WriteAllBytes(disk, new byte[1 << 20]);
        BackupWriter.Backup(disk, Path.Combine(images, "a-full.bfi"), new BackupOptions());
        using (var parent = BackupChain.Open(Path.Combine(images, "a-full.bfi")))
        {
            BackupWriter.Backup(disk, Path.Combine(images, "a-inc1.bfi"), new BackupOptions { Parent = parent });
        }

        Thread.Sleep(20); // creation times are milliseconds
        using (var parent = BackupChain.Open(Path.Combine(images, "a-inc1.bfi")))
        {
            BackupWriter.Backup(disk, Path.Combine(images, "a-inc2.bfi"), new BackupOptions { Parent = parent });
        }

        BackupWriter.Backup(disk, Path.Combine(images, "b-full.bfi"), new BackupOptions());

        var tips = ChainTips.Newest(new ImageCatalog([images]));

        Assert.Equal([Path.Combine(images, "a-inc2.bfi"), Path.Combine(images, "b-full.bfi")], tips.Select(Path.GetFullPath));
    }

    [Fact]
    public void LatestAfterMergeToANewFileTakesTheCatalogsFileNotAnOlderPoint()
    {
        string images = _dir["merged-images"];
        Directory.CreateDirectory(images);
        string disk = _dir["disk2.raw"];
        File.WriteAllBytes(disk, new byte[1 << 20]);
        BackupWriter.Backup(disk, Path.Combine(images, "p0.bfi"), new BackupOptions());
        using (var parent = BackupChain.Open(Path.Combine(images, "p0.bfi")))
        {
            BackupWriter.Backup(disk, Path.Combine(images, "p1.bfi"), new BackupOptions { Parent = parent });
        }

        Thread.Sleep(20);
        using (var parent = BackupChain.Open(Path.Combine(images, "p1.bfi")))
        {
            BackupWriter.Backup(disk, Path.Combine(images, "p2.bfi"), new BackupOptions { Parent = parent });
        }

        // `merge p2.bfi -o 0-merged.bfi`: a synthetic full of p2's point, sorted before the incremental.
        string merged = Path.Combine(images, "0-merged.bfi");
        using (var chain = BackupChain.Open(Path.Combine(images, "p2.bfi")))
        {
            BackupFuse.BackupImage.Lifecycle.ImageFolder.Fold(chain, chain.Layers.Count, merged, null, replace: false);
        }

        var catalog = new ImageCatalog([images]);
        var tips = ChainTips.Newest(catalog);

        Assert.Equal([catalog.Find(BackupImageFile.ReadHeader(merged).ImageId)!.Path], tips);
        Assert.Equal(merged, Path.GetFullPath(tips[0]));
    }

    private static ScreenImage Ppm(int w, int h, Func<int, int, (int R, int G, int B)> pixel)
    {
        var header = System.Text.Encoding.ASCII.GetBytes($"P6\n{w} {h}\n255\n");
        var data = new List<byte>(header);
        for (int y = 0; y < h; y++)
        {
            for (int x = 0; x < w; x++)
            {
                var (r, g, b) = pixel(x, y);
                data.AddRange([(byte)r, (byte)g, (byte)b]);
            }
        }

        return ScreenImage.FromPpm([.. data], "test.ppm");
    }

    [Fact]
    public void AFloodingConsoleKeepsOnlyItsRecentEndForMatching()
    {
        string path = _dir["serial.log"];
        var log = new ConsoleLog(path);
        using (var f = new FileStream(path, FileMode.Create))
        {
            var line = System.Text.Encoding.ASCII.GetBytes(new string('x', 1023) + "\n");
            for (int i = 0; i < 2048; i++)
            {
                f.Write(line); // 2 MiB, more than one Poll reads
            }

            f.Write("Kernel panic - not syncing: test\n"u8);
        }

        while (log.Poll())
        {
        }

        Assert.Equal(new FileInfo(path).Length, log.Length);
        Assert.Equal(ConsoleLog.MaxTextChars, log.Text.Length);
        Assert.EndsWith("Kernel panic - not syncing: test\n", log.Text, StringComparison.Ordinal);
    }
}

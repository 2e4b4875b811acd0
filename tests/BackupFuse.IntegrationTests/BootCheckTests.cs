using System.Text.Json.Nodes;
using BackupFuse.Testing;

namespace BackupFuse.IntegrationTests;

/// <summary>
/// Issue 18: <c>backupfuse boot-check</c> boots backup points in QEMU and names the verdict. The class's guests (built
/// once, BootCheckGuests) are the test guest of scripts/guest in three states: a plugin whose changes (written through
/// a mount) make the guest stay up with text on its screen, an image whose init panics, and an image whose boot
/// sector is zeroed. One run checks all three (and the report); a second shows --expect deciding on the serial console.
/// </summary>
[Collection("mounts")]
public sealed class BootCheckTests(BootCheckGuests guests) : IClassFixture<BootCheckGuests>
{
    private const int Timeout = 120;

    [SkippableFact]
    public void OneRunNamesEachVerdictKeepsBackupsAndChangesUntouchedAndItsReportShowsTheScreens()
    {
        Prerequisite.SkipIf(guests.Missing);
        string before = guests.Fingerprint();
        string report = guests.Dir["report"];

        var r = Cli.Run("boot-check", guests.Plugin, guests.NoBootImage, guests.PanicImage, "--disk-bus", "virtio", "--settle", "5",
            "--timeout", Timeout.ToString(System.Globalization.CultureInfo.InvariantCulture), "--report", report);

        Assert.True(r.ExitCode == 1, $"exit {r.ExitCode} (not every point booted: 1): {r.Output}");
        Assert.Equal(before, guests.Fingerprint()); // backups, plugin, changes and base view: byte-identical
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(report, "report.json")))!;
        Assert.False(json["all_booted"]!.GetValue<bool>());
        var points = json["points"]!.AsArray();
        Assert.Equal(3, points.Count);

        // The plugin: its changes hold the hook that keeps the guest up with text on the VGA console, so it booted
        // only if the changes were part of the disk (without them the guest powers off: "powered off before booting").
        var good = points[0]!;
        Assert.True(good["booted"]!.GetValue<bool>(), good.ToJsonString());
        Assert.Equal("booted", good["verdict"]!.GetValue<string>());
        double seconds = good["seconds"]!.GetValue<double>();
        Assert.InRange(seconds, 0.5, Timeout);
        Assert.Contains("BFGUEST-CONSOLE-READY", good["screen_text"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Contains("BFGUEST-BOOTED", File.ReadAllText(Path.Combine(report, good["serial_log"]!.GetValue<string>())), StringComparison.Ordinal);
        var screen = BootCheckPng.Decode(File.ReadAllBytes(Path.Combine(report, good["screenshot"]!.GetValue<string>())));
        AssertConsoleText(screen);

        var noBoot = points[1]!;
        Assert.False(noBoot["booted"]!.GetValue<bool>());
        Assert.Equal("no bootable device", noBoot["verdict"]!.GetValue<string>());
        Assert.InRange(noBoot["seconds"]!.GetValue<double>(), 0, Timeout / 4.0); // named, not timed out
        Assert.Contains("No bootable device", noBoot["detail"]!.GetValue<string>(), StringComparison.Ordinal);

        var panic = points[2]!;
        Assert.False(panic["booted"]!.GetValue<bool>());
        Assert.Equal("kernel panic", panic["verdict"]!.GetValue<string>());
        Assert.Contains("Kernel panic", panic["detail"]!.GetValue<string>(), StringComparison.Ordinal);
        foreach (var p in points)
        {
            var png = BootCheckPng.Decode(File.ReadAllBytes(Path.Combine(report, p!["thumbnail"]!.GetValue<string>())));
            Assert.Equal(320, png.Width);
        }

        AssertReportShowsThumbnails(Path.Combine(report, "index.html"));
    }

    [SkippableFact]
    public void ExpectOnTheSerialConsoleIsABootAndEveryPointBootedExitsZero()
    {
        Prerequisite.SkipIf(guests.Missing);
        string report = guests.Dir["report-expect"];

        // The pristine guest prints BFGUEST-BOOTED and powers off at once: only --expect can call that a boot.
        var r = Cli.Run("boot-check", guests.GoodImage, "--disk-bus", "virtio", "--expect", "BFGUEST-BOOTED", "--accel", "tcg",
            "--timeout", Timeout.ToString(System.Globalization.CultureInfo.InvariantCulture), "--report", report);

        Assert.True(r.ExitCode == 0, r.Output);
        var point = JsonNode.Parse(File.ReadAllText(Path.Combine(report, "report.json")))!["points"]![0]!;
        Assert.Equal("booted", point["verdict"]!.GetValue<string>());
        Assert.Contains("--expect matched", point["detail"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Contains("BOOTED 01-guest", r.StdOut, StringComparison.Ordinal);
    }

    [SkippableFact]
    public void UefiWithNothingToBootIsNoBootableDevice()
    {
        Prerequisite.SkipIf(guests.Missing ?? (File.Exists("/usr/share/OVMF/OVMF_CODE_4M.fd") || File.Exists("/usr/share/OVMF/OVMF_CODE.fd")
            ? null : "OVMF is missing (package ovmf; scripts/install-deps.sh --test installs it)"));
        string report = guests.Dir["report-uefi"];

        // The test guest boots by BIOS only (no EFI system partition): OVMF finds nothing and starts its shell.
        var r = Cli.Run("boot-check", guests.GoodImage, "--firmware", "uefi", "--accel", "tcg",
            "--timeout", Timeout.ToString(System.Globalization.CultureInfo.InvariantCulture), "--report", report);

        Assert.True(r.ExitCode == 1, r.Output);
        var point = JsonNode.Parse(File.ReadAllText(Path.Combine(report, "report.json")))!["points"]![0]!;
        Assert.Equal("no bootable device", point["verdict"]!.GetValue<string>());
        Assert.Contains("uefi (--firmware)", point["firmware"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.InRange(point["seconds"]!.GetValue<double>(), 0, Timeout / 2.0);
    }

    [Fact]
    public void BadOptionsAreUsageErrorsAndAMissingPointIsAnErrorVerdict()
    {
        var bad = Cli.Run("boot-check", "x.bfi", "--accel", "fast");
        Assert.Equal(2, bad.ExitCode);
        Assert.Contains("--accel fast", bad.Output, StringComparison.Ordinal);
        var regex = Cli.Run("boot-check", "x.bfi", "--expect", "(");
        Assert.Equal(2, regex.ExitCode);
        string missing = guests.Dir["missing.bfi"];
        var gone = Cli.Run("boot-check", missing, "--accel", "tcg", "--report", guests.Dir["report-missing"]);
        Assert.Equal(1, gone.ExitCode);
        Assert.Contains($"FAILED 01-missing: error: {missing}: no such file", gone.StdOut, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", gone.Output, StringComparison.Ordinal);
        var none = Cli.Run("boot-check");
        Assert.Equal(1, none.ExitCode);
        Assert.Contains("nothing to check", none.StdErr, StringComparison.Ordinal);
    }

    /// <summary>
    /// The screen is an image of console text: not one colour, and its top rows (where the guest wrote) hold both the
    /// background and a foreground colour, with many short runs along each text row, as glyphs make.
    /// </summary>
    private static void AssertConsoleText(BootCheckPng screen)
    {
        Assert.True(screen.Width >= 320 && screen.Height >= 200, $"{screen.Width}x{screen.Height}");
        var background = screen[screen.Width - 1, screen.Height - 1];
        int foreground = 0, transitions = 0, total = 0;
        for (int y = 0; y < Math.Min(screen.Height, 112); y++)
        {
            for (int x = 1; x < screen.Width; x++)
            {
                total++;
                bool fg = screen[x, y] != background;
                foreground += fg ? 1 : 0;
                transitions += fg != (screen[x - 1, y] != background) ? 1 : 0;
            }
        }

        Assert.True(foreground > total / 100 && foreground < total / 2, $"foreground pixels {foreground} of {total} in the console region");
        Assert.True(transitions > 2000, $"only {transitions} foreground/background transitions in the console region: no text");
    }

    private void AssertReportShowsThumbnails(string html)
    {
        string shot = guests.Dir["report-shot.png"];
        var r = ExternalTool.Run("chromium", ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1200,800",
            $"--screenshot={shot}", new Uri(html).AbsoluteUri], TimeSpan.FromMinutes(2));
        Assert.True(File.Exists(shot), $"chromium wrote no screenshot (exit {r.ExitCode}): {r.Output}");
        var page = BootCheckPng.Decode(File.ReadAllBytes(shot));

        // The page is white with dark text; each thumbnail is a 320-pixel-wide guest screen, mostly black. Three of them
        // rendered means tens of thousands of near-black pixels; text alone gives a few thousand.
        int dark = 0;
        for (int y = 0; y < page.Height; y++)
        {
            for (int x = 0; x < page.Width; x++)
            {
                var (red, green, blue) = page[x, y];
                dark += red < 24 && green < 24 && blue < 24 ? 1 : 0;
            }
        }

        Assert.True(dark > 3 * 320 * 160 * 8 / 10, $"only {dark} near-black pixels in the report's screenshot: thumbnails missing");
    }
}

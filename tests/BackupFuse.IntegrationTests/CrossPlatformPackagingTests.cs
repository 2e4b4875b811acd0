using System.Buffers.Binary;
using System.Text;
using System.Text.RegularExpressions;
using BackupFuse.Testing;

namespace BackupFuse.IntegrationTests;

// Design notes:
// - scripts/package.sh --rid builds the other platforms from this Linux machine: a linux-arm64 .deb and osx-arm64 /
//   osx-x64 tarballs, each one self-contained single-file publish (no trimming, no NativeAOT: that cannot cross-
//   compile to macOS). The fixture runs the script once per RID for the whole class (three publishes, about a
//   minute of CPU each: measured 2 m 45 s of CPU for the class, 9 minutes of wall time on a shared 2-core machine;
//   the runtime packs come from the NuGet feed at restore). Heavy for a laptop run, acceptable for CI.
// - What can be checked without the target machine: the package layout, that the executable is an AArch64 ELF /
//   an arm64 or x86_64 Mach-O executable (headers parsed here), that the macOS apphost is code-signed (Apple silicon
//   refuses unsigned code; the SDK signs ad hoc), and that the bundled assemblies carry the native library names
//   the runtime looks up on that platform (libfuse3.so.3; /usr/local/lib/libfuse3.4.dylib and libfuse-t.dylib).
//   Which name is chosen at run time is NativeAbi's job and is checked by NativeAbiTests.
// - Nothing runs on the target: there is no Mac here. docs/operations.md says so.

/// <summary>The linux-arm64 .deb and the macOS tarballs of scripts/package.sh.</summary>
public sealed class CrossPlatformPackagingTests : IClassFixture<CrossPlatformPackagingTests.Packages>
{
    private const uint MachOMagic64 = 0xFEEDFACF;
    private const int CpuTypeArm64 = 0x0100000C;
    private const int CpuTypeX8664 = 0x01000007;
    private const uint MachOExecute = 2;
    private const uint LcCodeSignature = 0x1D;
    private const ushort ElfMachineAArch64 = 0xB7;

    private readonly Packages _packages;

    public CrossPlatformPackagingTests(Packages packages)
    {
        _packages = packages;
    }

    [SkippableFact]
    public void LinuxArm64DebIsAnArm64PackageOfAnAArch64Executable()
    {
        string deb = _packages.Get("linux-arm64");
        Assert.EndsWith("_arm64.deb", deb);
        string info = ExternalTool.Check("dpkg-deb", "--info", deb).StdOut;
        Assert.Matches(@"(?m)^ Architecture: arm64$", info);
        Assert.Matches(@"(?m)^ Depends: .*\bfuse3\b", info);

        using var root = new TempDirectory("bfxdeb");
        ExternalTool.Check("dpkg-deb", "-x", deb, root.Path);
        byte[] binary = File.ReadAllBytes(root["usr/bin/backupfuse"]);
        Assert.Equal("\u007fELF"u8.ToArray(), binary[..4]);
        Assert.Equal(2, binary[4]); // ELFCLASS64
        Assert.Equal(ElfMachineAArch64, BinaryPrimitives.ReadUInt16LittleEndian(binary.AsSpan(18)));
        Assert.True(ContainsUtf16(binary, "libfuse3.so.3"), "the arm64 bundle should look for libfuse3.so.3");
        Assert.True(File.Exists(root["lib/systemd/system/backupfuse@.service"]));
    }

    [SkippableTheory]
    [InlineData("osx-arm64", CpuTypeArm64)]
    [InlineData("osx-x64", CpuTypeX8664)]
    public void MacTarballHoldsASignedMachOExecutableThatLooksForMacFuseAndFuseT(string rid, int cpuType)
    {
        string tarball = _packages.Get(rid);
        Assert.Matches($@"backupfuse_\d+\.\d+\.\d+_{rid}\.tar\.gz$", tarball);
        string listing = ExternalTool.Check("tar", "-tvzf", tarball).StdOut;
        Assert.Matches($@"(?m)^-rwxr-xr-x .* backupfuse-[\d.]+-{rid}/backupfuse$", listing);
        Assert.Matches(@"(?m) backupfuse-[\d.]+-[a-z0-9-]+/operations\.md$", listing);
        Assert.Matches(@"(?m) backupfuse-[\d.]+-[a-z0-9-]+/copyright$", listing);

        using var root = new TempDirectory("bfxmac");
        ExternalTool.Check("tar", "-xzf", tarball, "-C", root.Path);
        string dir = Directory.GetDirectories(root.Path).Single();
        byte[] binary = File.ReadAllBytes(Path.Combine(dir, "backupfuse"));

        // mach_header_64: magic, cputype, cpusubtype, filetype, ncmds, sizeofcmds, flags, reserved; then load commands.
        var b = binary.AsSpan();
        Assert.Equal(MachOMagic64, BinaryPrimitives.ReadUInt32LittleEndian(b));
        Assert.Equal(cpuType, BinaryPrimitives.ReadInt32LittleEndian(b[4..]));
        Assert.Equal(MachOExecute, BinaryPrimitives.ReadUInt32LittleEndian(b[12..]));
        uint commands = BinaryPrimitives.ReadUInt32LittleEndian(b[16..]);
        var found = new List<uint>();
        int offset = 32;
        for (uint i = 0; i < commands; i++)
        {
            found.Add(BinaryPrimitives.ReadUInt32LittleEndian(b[offset..]) & 0x7FFFFFFF);
            offset += (int)BinaryPrimitives.ReadUInt32LittleEndian(b[(offset + 4)..]);
        }

        Assert.True(found.Contains(LcCodeSignature), $"{rid}: the apphost has no LC_CODE_SIGNATURE (Apple silicon would refuse to run it)");

        foreach (var name in new[] { "/usr/local/lib/libfuse3.4.dylib", "/usr/local/lib/libfuse-t.dylib", "_fuse_new_31", "/usr/lib/libSystem.B.dylib" })
        {
            Assert.True(ContainsUtf16(binary, name), $"{rid}: the bundled assemblies do not name {name}");
        }

        string operations = File.ReadAllText(Path.Combine(dir, "operations.md"));
        Assert.Contains("not yet tested on a Mac", operations, StringComparison.OrdinalIgnoreCase);
    }

    private static bool ContainsUtf16(byte[] haystack, string text) => haystack.AsSpan().IndexOf(Encoding.Unicode.GetBytes(text)) >= 0;

    /// <summary>One scripts/package.sh run per RID, made on first use and shared by the class.</summary>
    public sealed class Packages : IDisposable
    {
        private readonly TempDirectory _work = new("bfxpkg");
        private readonly Dictionary<string, Lazy<string>> _byRid;

        public Packages()
        {
            _byRid = new[] { "linux-arm64", "osx-arm64", "osx-x64" }.ToDictionary(r => r, r => new Lazy<string>(() => Build(r), LazyThreadSafetyMode.ExecutionAndPublication));
        }

        /// <summary>The package path for <paramref name="rid"/> (skips the test when dpkg-deb or tar is missing).</summary>
        public string Get(string rid)
        {
            Prerequisite.SkipIf(!ExternalTool.Exists("dpkg-deb") ? "dpkg-deb is not installed" : !ExternalTool.Exists("tar") ? "tar is not installed" : null);
            return _byRid[rid].Value;
        }

        public void Dispose() => _work.Dispose();

        private string Build(string rid)
        {
            string script = Path.Combine(PackagingTests.Artifacts.RepoRoot, "scripts/package.sh");
            var run = ExternalTool.Run(script, ["--rid", rid, "--fast", "--out", _work[rid]], TimeSpan.FromMinutes(10));
            if (run.ExitCode != 0)
            {
                throw new InvalidOperationException($"scripts/package.sh --rid {rid} failed: {run.Output}");
            }

            string path = run.StdOut.Trim().Split('\n')[^1];
            Assert.True(File.Exists(path), $"scripts/package.sh --rid {rid} printed {path}, which does not exist");
            Assert.Matches(new Regex(rid.StartsWith("osx", StringComparison.Ordinal) ? @"\.tar\.gz$" : @"\.deb$"), path);
            return path;
        }
    }
}

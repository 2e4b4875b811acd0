using BackupFuse.BackupImage.Files;
using BackupFuse.BackupImage.Reading;
using BackupFuse.Core.FileTrees;
using BackupFuse.Testing;

namespace BackupFuse.BackupImage.Tests;

/// <summary>Helpers for the file-level image tests: a varied source tree, tree comparison, opening a point.</summary>
internal static class FilesTestKit
{
    /// <summary>A fixed time (whole seconds, so that tar's one-second mtimes compare equal).</summary>
    public const long BaseTime = 1_700_000_000;

    /// <summary>Fills <paramref name="root"/> with directories, files of awkward sizes, a symlink, a FIFO, odd names and modes.</summary>
    public static void MakeTree(string root, int seed = 1)
    {
        var rng = new Random(seed);
        Directory.CreateDirectory(root);
        Directory.CreateDirectory(Path.Combine(root, "docs", "deep", "deeper"));
        Directory.CreateDirectory(Path.Combine(root, "empty"));
        Directory.CreateDirectory(Path.Combine(root, "Ünïcödé dir"));
        WriteRandom(Path.Combine(root, "big.bin"), 2 << 20, rng);
        WriteRandom(Path.Combine(root, "docs", "page.bin"), 4096, rng);
        WriteRandom(Path.Combine(root, "docs", "odd.bin"), 4095, rng);
        WriteRandom(Path.Combine(root, "docs", "deep", "mid.bin"), 70_001, rng);
        File.WriteAllText(Path.Combine(root, "docs", "deep", "deeper", "note.txt"), string.Concat(Enumerable.Repeat("text that compresses well\n", 3000)));
        File.WriteAllBytes(Path.Combine(root, "zero-length"), []);
        File.WriteAllBytes(Path.Combine(root, "one"), [42]);
        File.WriteAllText(Path.Combine(root, "Ünïcödé dir", "日本語 name.txt"), "unicode");
        File.WriteAllText(Path.Combine(root, "B-upper"), "sorted before lower case");
        File.WriteAllText(Path.Combine(root, "script.sh"), "#!/bin/sh\necho hi\n");
        ExternalTool.Check("chmod", "4751", Path.Combine(root, "script.sh"));
        File.CreateSymbolicLink(Path.Combine(root, "link-to-note"), "docs/deep/deeper/note.txt");
        File.CreateSymbolicLink(Path.Combine(root, "dangling"), "/nowhere/at all");
        ExternalTool.Check("mkfifo", Path.Combine(root, "a-fifo"));
        SetAllTimes(root, BaseTime);
    }

    /// <summary>Sets the mtime and atime of every entry under <paramref name="root"/> (links themselves, not followed).</summary>
    public static void SetAllTimes(string root, long unixSeconds) =>
        ExternalTool.Check("find", root, "-exec", "touch", "-h", "-d", $"@{unixSeconds}", "{}", "+");

    /// <summary>Sets one entry's times (whole seconds).</summary>
    public static void SetTime(string path, long unixSeconds) => ExternalTool.Check("touch", "-h", "-d", $"@{unixSeconds}", path);

    /// <summary>Writes <paramref name="length"/> random (incompressible) bytes.</summary>
    public static void WriteRandom(string path, int length, Random rng)
    {
        var bytes = new byte[length];
        rng.NextBytes(bytes);
        File.WriteAllBytes(path, bytes);
    }

    /// <summary>Asserts that two trees have the same entries (shape, names, kinds, sizes, modes, mtimes, targets) and bytes.</summary>
    public static void AssertSameTree(IFileTree expected, IFileTree actual, bool compareAccessTimes = false)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (int i = 0; i < expected.Count; i++)
        {
            var e = expected.GetEntry(i);
            var a = actual.GetEntry(i);
            Assert.True(
                (e.Name, e.Kind, e.Parent, e.FirstChild, e.ChildCount, e.Size, e.ModifiedUnixNs, e.Mode, e.SymlinkTarget) ==
                (a.Name, a.Kind, a.Parent, a.FirstChild, a.ChildCount, a.Size, a.ModifiedUnixNs, a.Mode, a.SymlinkTarget),
                $"entry {i} differs:\n expected {e}\n actual   {a}");
            if (compareAccessTimes)
            {
                Assert.Equal(e.AccessedUnixNs, a.AccessedUnixNs);
            }

            if (e.Kind == FileTreeEntryKind.File && e.Size > 0)
            {
                var want = new byte[e.Size];
                var got = new byte[e.Size];
                expected.ReadFile(i, 0, want);
                actual.ReadFile(i, 0, got);
                Assert.True(want.AsSpan().SequenceEqual(got), $"content of {e.Name} (entry {i}) differs");

                // A read in the middle, across a chunk boundary where the file is large enough.
                if (e.Size > 3)
                {
                    var part = new byte[e.Size / 2];
                    actual.ReadFile(i, e.Size / 3, part);
                    Assert.True(want.AsSpan((int)(e.Size / 3), part.Length).SequenceEqual(part), $"partial read of {e.Name} differs");
                }
            }
        }
    }

    /// <summary>Asserts that the point <paramref name="image"/> reads as the directory <paramref name="directory"/>.</summary>
    public static void AssertPointEquals(string image, string directory, Crypto.PassphraseSource? passphrase = null)
    {
        using var chain = BackupChain.Open(image, passphrase: passphrase);
        using var tree = FileImageTree.Open(chain);
        using var source = DirectoryFileTree.Scan(directory);
        AssertSameTree(source, tree);
    }

    /// <summary>Index of the entry at <paramref name="path"/> in <paramref name="image"/>'s tree, and its data offset.</summary>
    public static long DataOffsetOf(string image, string path)
    {
        using var chain = BackupChain.Open(image);
        using var tree = FileImageTree.Open(chain);
        int i = tree.Catalog.Find(path);
        Assert.True(i >= 0, $"{path} not in {image}");
        return tree.Catalog.DataOffsetOf(i);
    }
}

// FuseCeiling: the upper bound of what our FUSE binding carries, for scripts/bench.sh ("FUSE ceiling" line).
//
// Design notes
// - Mounts DIRECTORY over itself with the same DirectoryOverlayFileSystem + FuseMount the daemon uses (same
//   options as `backupfuse mount --read-only`: default threads, direct_io virtual files), with a provider that makes
//   one file, ceiling.vhdx, a virtual file of SIZE bytes served from FastPatternSource (bytes computed at memory
//   speed, no I/O, no decompression). Reading it measures the binding + libfuse + kernel path and nothing else.
// - Runs until SIGINT/SIGTERM (HandleSignals), then unmounts; prints "mounted" on stdout once it serves.
// - Deliberately not done: any option parsing beyond the two positional arguments; it is a benchmark helper.
using System.Globalization;
using BackupFuse.Bench;
using BackupFuse.Fuse;
using BackupFuse.Fuse.Overlay;

if (args.Length != 2 || !long.TryParse(args[1], NumberStyles.None, CultureInfo.InvariantCulture, out long size) || size <= 0)
{
    Console.Error.WriteLine("usage: FuseCeiling DIRECTORY SIZE-BYTES");
    return 2;
}

string dir = Path.GetFullPath(args[0]);
if (!Directory.Exists(dir))
{
    Console.Error.WriteLine($"{dir}: no such directory");
    return 1;
}

File.WriteAllText(Path.Combine(dir, PatternProvider.FileName), string.Empty);
var fs = DirectoryOverlayFileSystem.Open(dir, new PatternProvider(size), readOnly: true);
using var mount = new FuseMount(new FuseMountOptions { MountPoint = dir, ReadOnly = true, HandleSignals = true }, fs, FuseLog.Null);
mount.Start();
if (!mount.Mounted.Wait(TimeSpan.FromSeconds(30)))
{
    Console.Error.WriteLine($"{dir}: the mount did not come up within 30 s");
    return 1;
}

Console.WriteLine("mounted");
return mount.Completion.GetAwaiter().GetResult();

using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

[assembly: DisableRuntimeMarshalling]

namespace BackupFuse.Fuse.Interop;

/// <summary>
/// Resolves the logical library names used by the P/Invokes: "fuse3" → libfuse3.so.3 (runtime package; the
/// unversioned libfuse3.so exists only with -dev packages) and "libc" → libc.so.6 (libc.so is a linker script).
/// </summary>
internal static class NativeLibraries
{
    public const string Fuse = "fuse3";
    public const string LibC = "libc";

    private static readonly string[] FuseCandidates = ["libfuse3.so.3", "libfuse3.so"];
    private static readonly string[] LibCCandidates = ["libc.so.6", "libc"];
    private static int _registered;

    /// <summary>Installs the resolver once; every entry point into the interop layer calls this first.</summary>
    public static void EnsureRegistered()
    {
        if (Interlocked.Exchange(ref _registered, 1) == 0)
        {
            NativeLibrary.SetDllImportResolver(typeof(NativeLibraries).Assembly, Resolve);
        }
    }

    /// <summary>Loads libfuse3 or returns false.</summary>
    public static bool TryLoadFuse(out nint handle)
    {
        foreach (var name in FuseCandidates)
        {
            if (NativeLibrary.TryLoad(name, out handle))
            {
                return true;
            }
        }

        handle = 0;
        return false;
    }

    private static nint Resolve(string libraryName, Assembly assembly, DllImportSearchPath? searchPath)
    {
        string[]? candidates = libraryName switch
        {
            Fuse => FuseCandidates,
            LibC => LibCCandidates,
            _ => null,
        };
        if (candidates == null)
        {
            return 0;
        }

        foreach (var name in candidates)
        {
            if (NativeLibrary.TryLoad(name, out var handle))
            {
                return handle;
            }
        }

        return 0;
    }
}

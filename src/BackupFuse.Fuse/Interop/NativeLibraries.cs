using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using BackupFuse.Core.Native;

[assembly: DisableRuntimeMarshalling]

namespace BackupFuse.Fuse.Interop;

// Design notes:
// - The logical names used by the P/Invokes are resolved here, from NativeAbi.Current: "fuse3" → the first of
//   the platform's libfuse files that loads AND exports its fuse_new entry point (linux: libfuse3.so.3, which
//   the runtime package installs — the unversioned libfuse3.so exists only with -dev packages; macOS: macFUSE's
//   /usr/local/lib/libfuse3.4.dylib, then FUSE-T's libfuse-t.dylib); "libc" → libc.so.6 on Linux (libc.so is a
//   linker script), libSystem.B.dylib on macOS.
// - A library that loads but lacks the entry point (FUSE-T's libfuse 2 API) is unloaded and remembered, so the
//   reason can name it.

/// <summary>Resolves the logical library names used by the P/Invokes (see design notes).</summary>
internal static class NativeLibraries
{
    public const string Fuse = "fuse3";
    public const string LibC = "libc";

    private static int _registered;
    private static nint _fuse;

    /// <summary>Installs the resolver once; every entry point into the interop layer calls this first.</summary>
    public static void EnsureRegistered()
    {
        if (Interlocked.Exchange(ref _registered, 1) == 0)
        {
            NativeLibrary.SetDllImportResolver(typeof(NativeLibraries).Assembly, Resolve);
        }
    }

    /// <summary>The libc file names for an ABI, in the order tried.</summary>
    public static IReadOnlyList<string> LibCNames(NativeAbi abi) => abi.IsMacOS ? ["/usr/lib/libSystem.B.dylib", "libSystem.B.dylib"] : ["libc.so.6", "libc"];

    /// <summary>
    /// Loads the platform's libfuse3 or returns false with <paramref name="problem"/> saying why (nothing found:
    /// what to install; found but unusable: which file and why).
    /// </summary>
    public static bool TryLoadFuse(out nint handle, out string? problem)
    {
        var abi = NativeAbi.Current;
        if (abi == null)
        {
            (handle, problem) = (0, NativeAbi.UnsupportedReason);
            return false;
        }

        if (Volatile.Read(ref _fuse) is var loaded and not 0)
        {
            (handle, problem) = (loaded, null);
            return true;
        }

        if (!TryLoadFuse(abi, out handle, out problem))
        {
            return false;
        }

        if (Interlocked.CompareExchange(ref _fuse, handle, 0) != 0)
        {
            NativeLibrary.Free(handle); // another thread won; keep one handle
        }

        handle = Volatile.Read(ref _fuse);
        return true;
    }

    /// <summary>The lookup itself for <paramref name="abi"/> (no caching): the first file that loads and exports the entry point.</summary>
    internal static bool TryLoadFuse(NativeAbi abi, out nint handle, out string? problem)
    {
        string? unusable = null;
        foreach (var name in abi.FuseLibraryNames)
        {
            if (!NativeLibrary.TryLoad(name, out handle))
            {
                continue;
            }

            if (NativeLibrary.TryGetExport(handle, abi.FuseNewEntryPoint, out _))
            {
                problem = null;
                return true;
            }

            NativeLibrary.Free(handle);
            unusable ??= Path.GetFileName(name).StartsWith("libfuse-t", StringComparison.Ordinal)
                ? $"{name} (FUSE-T) offers the libfuse 2 API only; BackupFuse needs libfuse 3: install macFUSE 4.10 or newer (FUSE-T may stay installed)"
                : $"{name} has no {abi.FuseNewEntryPoint}: libfuse 3.1 or newer is needed";
        }

        (handle, problem) = (0, unusable ?? abi.FuseInstallHint);
        return false;
    }

    private static nint Resolve(string libraryName, Assembly assembly, DllImportSearchPath? searchPath)
    {
        var abi = NativeAbi.Current;
        if (abi == null)
        {
            return 0;
        }

        if (libraryName == Fuse)
        {
            return TryLoadFuse(out var handle, out _) ? handle : 0;
        }

        if (libraryName == LibC)
        {
            foreach (var name in LibCNames(abi))
            {
                if (NativeLibrary.TryLoad(name, out var handle))
                {
                    return handle;
                }
            }
        }

        return 0;
    }
}

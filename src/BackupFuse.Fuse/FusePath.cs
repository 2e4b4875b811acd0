using System.Runtime.InteropServices;
using System.Text;

namespace BackupFuse.Fuse;

/// <summary>
/// A path as libfuse hands it to a callback: a NUL-terminated UTF-8 string starting with '/', valid only during
/// the callback, or null (operations on an open handle, nullpath_ok). No allocation unless a string is asked for.
/// </summary>
public readonly unsafe ref struct FusePath
{
    private static readonly byte* Dot = (byte*)NativeMemory.AllocZeroed(2);

    static FusePath() => Dot[0] = (byte)'.';

    /// <summary>Wraps a native NUL-terminated path (may be null).</summary>
    public FusePath(byte* pointer)
    {
        Pointer = pointer;
    }

    /// <summary>The raw NUL-terminated string (null when libfuse passed none).</summary>
    public byte* Pointer { get; }

    /// <summary>Whether libfuse passed no path.</summary>
    public bool IsNull => Pointer == null;

    /// <summary>The UTF-8 bytes without the terminator.</summary>
    public ReadOnlySpan<byte> Utf8 => Pointer == null ? default : MemoryMarshal.CreateReadOnlySpanFromNullTerminated(Pointer);

    /// <summary>Whether this is the mount's root ("/").</summary>
    public bool IsRoot => Pointer != null && Pointer[0] == (byte)'/' && Pointer[1] == 0;

    /// <summary>
    /// A NUL-terminated path relative to the served directory, for *at() calls: "." for the root, the path
    /// without its leading '/' otherwise.
    /// </summary>
    public byte* Relative
    {
        get
        {
            if (Pointer == null)
            {
                throw new ErrnoException(Errno.EINVAL, "no path for a path operation");
            }

            if (Pointer[0] != (byte)'/')
            {
                return Pointer;
            }

            return Pointer[1] == 0 ? Dot : Pointer + 1;
        }
    }

    /// <summary>The path relative to the served directory as a string ("" for the root, "a/b.vhdx" otherwise).</summary>
    public string RelativeString
    {
        get
        {
            var bytes = Utf8;
            if (!bytes.IsEmpty && bytes[0] == (byte)'/')
            {
                bytes = bytes[1..];
            }

            return Encoding.UTF8.GetString(bytes);
        }
    }

    /// <summary>The path as libfuse gave it ("/a/b"), for messages.</summary>
    public override string ToString() => Pointer == null ? "(open file)" : Encoding.UTF8.GetString(Utf8);
}

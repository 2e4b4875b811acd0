using BackupFuse.Fuse.Interop;
using BackupFuse.Core.Native;

namespace BackupFuse.Fuse;

/// <summary>Adds entries to a readdir reply (wraps libfuse's fuse_fill_dir_t and its buffer).</summary>
public readonly unsafe ref struct DirectoryFiller
{
    private readonly void* _buffer;
    private readonly delegate* unmanaged[Cdecl]<void*, byte*, Stat*, long, int, int> _fill;
    private readonly StatLayout _layout;

    internal DirectoryFiller(void* buffer, delegate* unmanaged[Cdecl]<void*, byte*, Stat*, long, int, int> fill, StatLayout layout)
    {
        _buffer = buffer;
        _fill = fill;
        _layout = layout;
    }

    /// <summary>
    /// Adds one entry (NUL-terminated name) with its inode number and file type bits (S_IFMT part of st_mode).
    /// Entries are added with offset 0: libfuse collects the whole listing and pages it itself.
    /// Returns false when libfuse's buffer is full.
    /// </summary>
    public bool Add(byte* name, ulong inode, uint typeBits)
    {
        Stat st = default;
        st.Inode = inode;
        st.Mode = typeBits;
        if (_layout.IsCanonical)
        {
            return _fill(_buffer, name, &st, 0, 0) == 0;
        }

        byte* native = stackalloc byte[_layout.StructSize];
        StatLayout.Copy(NativeAbi.LinuxX64.Stat, (byte*)&st, _layout, native);
        return _fill(_buffer, name, (Stat*)native, 0, 0) == 0;
    }
}

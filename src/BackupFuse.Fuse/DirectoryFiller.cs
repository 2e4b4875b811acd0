using BackupFuse.Fuse.Interop;

namespace BackupFuse.Fuse;

/// <summary>Adds entries to a readdir reply (wraps libfuse's fuse_fill_dir_t and its buffer).</summary>
public readonly unsafe ref struct DirectoryFiller
{
    private readonly void* _buffer;
    private readonly delegate* unmanaged[Cdecl]<void*, byte*, Stat*, long, int, int> _fill;

    internal DirectoryFiller(void* buffer, delegate* unmanaged[Cdecl]<void*, byte*, Stat*, long, int, int> fill)
    {
        _buffer = buffer;
        _fill = fill;
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
        return _fill(_buffer, name, &st, 0, 0) == 0;
    }
}

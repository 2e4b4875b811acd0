namespace BackupFuse.Fuse.Overlay;

/// <summary>
/// Slots for open objects, addressed by a small integer that goes into fi->fh. Add/Remove take a lock (open and
/// release are rare); Get is lock-free (every read/write): a grown array keeps every live entry, and the kernel
/// only uses a handle after open returned it and never after release.
/// </summary>
internal sealed class HandleTable<T>
    where T : class
{
    private readonly object _lock = new();
    private readonly Stack<int> _free = new();
    private T?[] _slots = new T?[16];
    private int _next;

    public int Add(T item)
    {
        lock (_lock)
        {
            int index = _free.Count > 0 ? _free.Pop() : _next++;
            if (index >= _slots.Length)
            {
                var grown = new T?[_slots.Length * 2];
                Array.Copy(_slots, grown, _slots.Length);
                Volatile.Write(ref _slots, grown);
            }

            _slots[index] = item;
            return index;
        }
    }

    public T Get(int index)
    {
        var slots = Volatile.Read(ref _slots);
        return (uint)index < (uint)slots.Length && slots[index] is { } item
            ? item
            : throw new ErrnoException(Errno.EBADF, $"no open file with handle {index}");
    }

    public T? Remove(int index)
    {
        lock (_lock)
        {
            if ((uint)index >= (uint)_slots.Length || _slots[index] is not { } item)
            {
                return null;
            }

            _slots[index] = null;
            _free.Push(index);
            return item;
        }
    }

    public List<T> RemoveAll()
    {
        lock (_lock)
        {
            var items = new List<T>();
            for (int i = 0; i < _slots.Length; i++)
            {
                if (_slots[i] is { } item)
                {
                    items.Add(item);
                    _slots[i] = null;
                    _free.Push(i);
                }
            }

            return items;
        }
    }
}

#!/usr/bin/env python3
"""million-tar.py [FILES]: a tar stream (standard output) of FILES tiny files (default 1,000,000), for
scripts/bench.sh --only files: `backupfuse backup --files -` reads it, so a catalog of a million entries is made
without writing a million files to disk.

1000 files per directory (d0000/f000.txt ... ; the root holds FILES/1000 directories), each 1-200 bytes of text
naming itself, all dated 2026-01-01, mode 0644. The same FILES always gives the same stream. The ustar headers are
built here rather than by the tarfile module, which takes about ten times as long for a million members.
"""
import sys

PER_DIR = 1000
MTIME = 1767225600


def header(name, mode, size, kind):
    h = bytearray(512)
    h[0:len(name)] = name.encode()
    h[100:108] = b"%07o\0" % mode
    h[108:116] = b"0000000\0"
    h[116:124] = b"0000000\0"
    h[124:136] = b"%011o\0" % size
    h[136:148] = b"%011o\0" % MTIME
    h[148:156] = b"        "
    h[156:157] = kind
    h[257:265] = b"ustar\x0000"
    h[265:269] = b"root"
    h[297:301] = b"root"
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    out = sys.stdout.buffer
    batch = []
    for i in range(count):
        if i % PER_DIR == 0:
            batch.append(header(f"d{i // PER_DIR:04d}/", 0o755, 0, b"5"))
        name = f"d{i // PER_DIR:04d}/f{i % PER_DIR:03d}.txt"
        data = (f"{name} {i}\n" * 10)[: 1 + i * 7919 % 200].encode()
        batch.append(header(name, 0o644, len(data), b"0"))
        batch.append(data + b"\0" * (-len(data) % 512))
        if len(batch) >= 3000:
            out.write(b"".join(batch))
            batch.clear()
    batch.append(b"\0" * 1024)
    out.write(b"".join(batch))


if __name__ == "__main__":
    main()

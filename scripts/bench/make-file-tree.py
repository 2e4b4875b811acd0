#!/usr/bin/env python3
"""make-file-tree.py DIR TOTAL_MIB: the source tree of scripts/bench.sh --only files.

A realistic mix, the same for the same TOTAL_MIB: about 6 files per MiB of total (3000 for 512 MiB) in nested
directories (up to 6 deep), 90 % of them small (1-64 KiB, log-uniform), 10 % large (64 KiB-8 MiB, log-uniform),
until TOTAL_MIB is reached. The contents are slices of the real files under /usr/lib and /usr/share, read in path
order (binaries, libraries, text, already-compressed files), so they compress as real data does, not as zeros or
as pure noise. Prints "files dirs bytes" on standard output.
"""
import os
import random
import sys

MIB = 1 << 20


def real_bytes():
    """Yields the regular files under /usr/lib and /usr/share in path order, round and round."""
    while True:
        for top in ("/usr/lib", "/usr/share"):
            for path, dirs, names in os.walk(top):
                dirs.sort()
                for name in sorted(names):
                    p = os.path.join(path, name)
                    if os.path.islink(p) or not os.path.isfile(p):
                        continue
                    try:
                        with open(p, "rb") as f:
                            while block := f.read(MIB):
                                yield block
                    except OSError:
                        continue


class Source:
    def __init__(self):
        self.blocks = real_bytes()
        self.buffer = b""

    def take(self, n):
        while len(self.buffer) < n:
            self.buffer += next(self.blocks)
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: make-file-tree.py DIR TOTAL_MIB")
    top, target = sys.argv[1], int(sys.argv[2]) * MIB
    rng = random.Random(13)
    source = Source()
    dirs = [""]
    os.makedirs(top, exist_ok=True)
    total = files = 0
    while total < target:
        if rng.random() < 0.06 or len(dirs) == 1:  # a new directory under one of the recent ones
            parent = rng.choice(dirs[-8:])
            if parent.count("/") < 6:
                d = os.path.join(parent, f"dir{len(dirs):04d}")
                os.makedirs(os.path.join(top, d))
                dirs.append(d)
        if rng.random() < 0.9:
            size = int(1024 * 64 ** rng.random())
        else:
            size = int(64 * 1024 * 128 ** rng.random())
        size = min(size, 8 * MIB, target - total)
        name = os.path.join(top, rng.choice(dirs[-8:]), f"file{files:05d}.{rng.choice(['so', 'txt', 'gz', 'png', 'dat'])}")
        with open(name, "wb") as f:
            f.write(source.take(size))
        files += 1
        total += size
    print(files, len(dirs) - 1, total)


if __name__ == "__main__":
    main()

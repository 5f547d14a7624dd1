"""PCG32 as qtk's core/rng.c: the fixture scripts fill tensors from it so the C tests can regenerate them.

    from pcg32 import PCG32        (the scripts in tools/ run from the repository root: tools/ is on the path)
"""
import numpy as np

M64 = (1 << 64) - 1


class PCG32:
    def __init__(self, seed, stream):
        self.state, self.inc = 0, ((stream << 1) | 1) & M64
        self.next()
        self.state = (self.state + seed) & M64
        self.next()

    def next(self):
        old = self.state
        self.state = (old * 6364136223846793005 + self.inc) & M64
        xs = (((old >> 18) ^ old) >> 27) & 0xFFFFFFFF
        rot = old >> 59
        return ((xs >> rot) | (xs << ((-rot) & 31))) & 0xFFFFFFFF

    def uniform(self, n, lo, hi):
        """n values lo + (hi - lo) * u, u = (pcg32() >> 8) * 2^-24, in float32 arithmetic as in C."""
        u = np.fromiter((self.next() for _ in range(n)), dtype=np.uint32, count=n)
        u = (u >> 8).astype(np.float32) * np.float32(2.0 ** -24)
        lo, hi = np.float32(lo), np.float32(hi)
        return lo + (hi - lo) * u

"""Random damage to a file's bytes, as storage and transfer do it: a flipped bit, a burst of
garbage, bytes inserted or lost. Shared by the tests that read damaged files whole and in ranges."""

from __future__ import annotations

import random


def random_damage(data: bytes, rng: random.Random) -> bytes:
    """`data` with one damage of a random kind at a random place."""
    b = bytearray(data)
    at = rng.randrange(len(b))
    kind = rng.choice(["flip", "burst", "insert", "delete"])
    if kind == "flip":
        b[at] ^= 1 << rng.randrange(8)
    elif kind == "burst":
        b[at : at + 50] = rng.randbytes(len(b[at : at + 50]))
    elif kind == "insert":
        b[at:at] = rng.randbytes(rng.randrange(1, 100))
    else:
        del b[at : at + rng.randrange(1, 300)]
    return bytes(b)

"""A split by key (user, or query for product search) into train / validation / test, fixed by a seed.

Each key's split depends only on the seed and the key itself (SHA-256 of both), not on the other keys nor
on Python's random module: the same user lands in the same split on every machine, and adding users to
a data set moves no one already there."""

import hashlib

SPLITS = ("train", "validation", "test")


def check_fractions(fractions):
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3:
        raise ValueError(f"fractions: three values (train, validation, test), got {len(fractions)}")
    if any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-9:
        raise ValueError(f"fractions: non-negative and adding up to 1, got {fractions}")
    return fractions


def unit_interval(seed, key):
    """A number in [0, 1) fixed by (seed, key)."""
    digest = hashlib.sha256(f"{seed}\0{key}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def split_of(key, seed=0, fractions=(0.8, 0.1, 0.1)):
    """"train", "validation" or "test" for one key."""
    train, validation, _ = check_fractions(fractions)
    u = unit_interval(seed, key)
    if u < train:
        return "train"
    if u < train + validation:
        return "validation"
    return "test"


def split_keys(keys, seed=0, fractions=(0.8, 0.1, 0.1)):
    """{"train": [...], "validation": [...], "test": [...]}, each in the order of keys."""
    fractions = check_fractions(fractions)
    out = {name: [] for name in SPLITS}
    for key in keys:
        out[split_of(key, seed, fractions)].append(key)
    return out

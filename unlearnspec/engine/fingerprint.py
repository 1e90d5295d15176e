"""Content keys for local checkpoints (`path:` models in a directory).

A cache key built from file sizes and modification times serves stale numbers whenever a
checkpoint is replaced in place by one of the same size with the old mtime restored, which is
what `cp -p`, `rsync -t`, tar extraction and many artifact stores do. So a local model is keyed
by its files' contents: xxh3-128 of every byte (several GB/s, so a disk read is the cost).

Hashing a 14 GB checkpoint on every run would make warm reruns slow, so each file's digest is
memoized in the cache directory, keyed by the file's resolved path and stamped with its device,
inode, size, mtime and ctime. A rewrite that keeps size and mtime still moves the ctime (no
user call can set it back), and a file replaced by rename has a new inode; either re-hashes.
"""
from __future__ import annotations

import os
from pathlib import Path

from .cache import Cache, content_key

CHUNK = 8 << 20
KIND = "fingerprints"  # the cache's record kind for memoized digests
ALGORITHM = "xxh3_128"


def file_fingerprint(path: Path) -> str:
    """xxh3-128 of the file's bytes, as hex."""
    import xxhash

    h = xxhash.xxh3_128()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _stamp(st: os.stat_result) -> list[int]:
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def memoized_fingerprint(path: Path, cache: Cache) -> str:
    """`file_fingerprint(path)`, read from the cache while the file's stamp is unchanged.

    The stamp is taken before and after hashing: a file that changed while it was read is not
    memoized (its digest may mix old and new bytes), so the next run hashes it again."""
    real = Path(path).resolve()
    memo_key = content_key(KIND, ALGORITHM, str(real))
    before = _stamp(os.stat(real))
    memo = cache.get_json(KIND, memo_key)
    if isinstance(memo, dict) and memo.get("stamp") == before and memo.get("path") == str(real):
        return str(memo["digest"])
    digest = file_fingerprint(real)
    if _stamp(os.stat(real)) == before:
        cache.put_json(KIND, memo_key, {"path": str(real), "stamp": before, "digest": digest})
    return digest


def directory_fingerprint(path: Path, cache: Cache) -> list[tuple[str, int, str]]:
    """(name, size, content digest) for every file directly in a checkpoint directory:
    weights, config and tokenizer alike, since all of them change what is measured."""
    out = []
    for p in sorted(Path(path).iterdir()):
        if p.is_file():
            out.append((p.name, p.stat().st_size, f"{ALGORITHM}:{memoized_fingerprint(p, cache)}"))
    return out

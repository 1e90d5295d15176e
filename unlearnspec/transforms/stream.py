"""Reading safetensors checkpoints tensor by tensor, or in blocks of rows, without loading
them: the one reader `unlearnspec diff` and the streamed weight metrics
(`transforms.weightspace`) share.

- `tensor_index` / `checkpoint_layout`: which file holds each tensor (sharded checkpoints
  via `model.safetensors.index.json`), its dtype, shape and byte offset, from the headers only.
- `RowReader`: rows r0:r1 of a tensor as float32, copied out of a memory map of its file
  (each file mapped once, shared by threads), and `release`, which drops those rows' pages
  from the process (`madvise(MADV_DONTNEED)`) once they are no longer needed: a map's touched
  pages otherwise stay resident while the file is open, so streaming two 2 GB checkpoints
  would make the process about 4 GB large however little it keeps.
"""
from __future__ import annotations

import json
import math
import mmap
import struct
import threading
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import RunError

# safetensors dtype -> (torch dtype name, bytes per value)
DTYPES = {"F32": ("float32", 4), "F16": ("float16", 2), "BF16": ("bfloat16", 2),
          "F64": ("float64", 8)}
# read as well (converted to float32 like the float ones) where a metric compares every tensor
OTHER_DTYPES = {"I64": ("int64", 8), "I32": ("int32", 4), "I16": ("int16", 2),
                "I8": ("int8", 1), "U8": ("uint8", 1), "BOOL": ("bool", 1)}


@dataclass(frozen=True)
class Entry:
    """One tensor of a safetensors file, from its header."""

    file: Path
    dtype: str
    shape: tuple[int, ...]
    start: int  # absolute byte offset of the tensor's data in the file


def read_header(path: Path) -> dict[str, Entry]:
    """The tensors of one safetensors file by name."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise RunError(f"{path} is not a safetensors file (shorter than its header)")
        (n,) = struct.unpack("<Q", head)
        try:
            meta = json.loads(f.read(n))
        except ValueError as exc:
            raise RunError(f"{path} is not a safetensors file: its header is not JSON "
                           f"({exc})") from exc
    return {name: Entry(path, v["dtype"], tuple(v["shape"]), 8 + n + v["data_offsets"][0])
            for name, v in sorted(meta.items()) if name != "__metadata__"}


def tensor_index(checkpoint: Path) -> dict[str, Path]:
    """Tensor name -> the safetensors file holding it (sharded checkpoints included)."""
    checkpoint = Path(checkpoint)
    index = checkpoint / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text())["weight_map"]
        return {name: checkpoint / file for name, file in weight_map.items()}
    files = sorted(checkpoint.glob("*.safetensors"))
    if not files:
        raise RunError(
            f"{checkpoint} holds no *.safetensors files, so its weights cannot be streamed; "
            f"weight metrics need a Hugging Face checkpoint saved with safetensors"
        )
    return {name: f for f in files for name in read_header(f)}


def checkpoint_layout(checkpoint: Path) -> dict[str, Entry]:
    """Every tensor of a checkpoint directory (sharded or not) by name, from the headers only."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_dir():
        raise RunError(f"{checkpoint} is not a directory; give the folder of a Hugging Face "
                       f"checkpoint saved with safetensors")
    out: dict[str, Entry] = {}
    for f in sorted(set(tensor_index(checkpoint).values())):
        out.update(read_header(f))
    return out


class Scratch(threading.local):
    """Per-thread buffers reused block after block: allocating a fresh multi-MB tensor per
    pass costs more than the pass (the pages are faulted in each time)."""

    def get(self, key: str, n: int, dtype: Any) -> Any:
        import torch

        buf = self.__dict__.get(key)
        if buf is None or buf.numel() < n or buf.dtype != dtype:
            buf = self.__dict__[key] = torch.empty(max(n, 1), dtype=dtype)
        return buf[:n]


SCRATCH = Scratch()


def _dtype(e: Entry) -> tuple[str, int]:
    got = DTYPES.get(e.dtype) or OTHER_DTYPES.get(e.dtype)
    if got is None:
        raise RunError(f"{e.file}: a tensor of dtype {e.dtype} cannot be streamed (readable: "
                       f"{', '.join([*DTYPES, *OTHER_DTYPES])})")
    return got


class RowReader:
    """Blocks of rows of tensors from memory maps of the safetensors files (each file mapped
    once; closed with `stack`). `rows` gives float32 copied out of the map; `release` drops a
    block's pages from the process once it is no longer needed."""

    def __init__(self, stack: ExitStack) -> None:
        self._maps: dict[Path, mmap.mmap] = {}
        self._lock = threading.Lock()
        stack.callback(self._close)

    def _map(self, path: Path) -> mmap.mmap:
        with self._lock:
            m = self._maps.get(path)
            if m is None:
                with open(path, "rb") as f:
                    # a private mapping is writable (torch.frombuffer wants that) and nothing
                    # is ever written to it, so the file is never touched
                    m = self._maps[path] = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
            return m

    def _close(self) -> None:
        for m in self._maps.values():
            try:
                m.close()
            except BufferError:  # a tensor still views it (an error unwinding): GC closes it
                pass

    def _span(self, e: Entry, r0: int, r1: int) -> tuple[int, int]:
        size = _dtype(e)[1]
        row = math.prod(e.shape[1:]) if len(e.shape) > 1 else 1
        return e.start + r0 * row * size, (r1 - r0) * row * size

    def rows(self, e: Entry, r0: int, r1: int, key: str | None = "rows", *,
             out: Any = None) -> Any:
        """Rows r0:r1 as float32, copied (converted) into `out` (a float32 tensor of their
        shape) when given, else into this thread's scratch buffer `key` (valid until the next
        call with that key), or into a new tensor for `key=None`."""
        import torch

        name, size = _dtype(e)
        start, length = self._span(e, r0, r1)
        m = self._map(e.file)
        if start + length > len(m):
            raise RunError(f"{e.file} is truncated: tensor data ends before its header says")
        shape = (r1 - r0, *e.shape[1:]) if e.shape else ()
        if length == 0:
            return torch.empty(shape, dtype=torch.float32) if out is None else out
        t = torch.frombuffer(m, dtype=getattr(torch, name), count=length // size,
                             offset=start).reshape(shape)
        # always a copy: a block never aliases the map, so dropping its pages (release) while
        # another thread still reads a neighbouring block cannot touch what it computes with
        if out is None:
            out = (torch.empty(shape, dtype=torch.float32) if key is None
                   else SCRATCH.get(key, t.numel(), torch.float32).view(shape))
        return out.copy_(t)

    def tensor(self, e: Entry) -> Any:
        """The whole tensor as a new float32 tensor; its pages are released."""
        rows = e.shape[0] if e.shape else 1
        try:
            return self.rows(e, 0, rows, key=None)
        finally:
            self.release(e, 0, rows)

    def release(self, e: Entry, r0: int, r1: int) -> None:
        if not hasattr(mmap, "MADV_DONTNEED"):
            return
        start, length = self._span(e, r0, r1)
        a0 = start - start % mmap.PAGESIZE
        m = self._maps.get(e.file)
        if m is not None and length:
            # a page shared with a neighbouring block is simply read again if still needed
            m.madvise(mmap.MADV_DONTNEED, a0, min(len(m), start + length) - a0)

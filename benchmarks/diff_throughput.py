"""How fast `unlearnspec diff` streams, and how little memory it holds, on a multi-GB pair.

Writes two sharded bf16 checkpoints (a target of decoder-shaped weights and a subject that
differs by a small update) into a temp dir, then runs three child processes, each reporting
its wall time and its own peak RSS (VmHWM; tracemalloc would not see torch storage):

- `baseline`: imports torch and unlearnspec.diff, reads nothing (the floor of any RSS);
- `read`: reads every byte of both checkpoints, sequentially, through a 16 MB buffer;
- `diff`: `diff_checkpoints(target, subject, TRANSFORMS, threads=N)`, with one thread and with
  `--threads` (default: every CPU this process may use).

Prints GB/s for each and the ratios diff / read, measured in this one run, by wall time and
by CPU time (user + system, all threads: on a shared machine the CPU time varies less with
the neighbours' load than the wall time does; with N threads it is the total work, not the
latency); deletes the files. The read is single-threaded: it is the disk / page-cache floor,
not a compute baseline.

    OMP_NUM_THREADS=1 python benchmarks/diff_throughput.py --gb 2 --transforms rtn4 rtn8
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROWS, COLS = 4096, 4096  # one decoder linear: 16.8 M weights, 32 MiB in bf16
SHARD_TENSORS = 16       # 512 MiB shards


def write_pair(root: Path, gb: float) -> tuple[Path, Path, int]:
    """A Llama-shaped pair (config.json included: diff classifies tensors by the architecture
    before it reads them): layers of seven ROWS x COLS projections, a tiny vocabulary."""
    import torch
    from safetensors.torch import save_file
    from transformers import LlamaConfig

    layers = max(1, round(gb * 2**30 / (ROWS * COLS * 2) / 7))
    config = LlamaConfig(hidden_size=COLS, intermediate_size=ROWS, num_hidden_layers=layers,
                         num_attention_heads=32, num_key_value_heads=32, vocab_size=256,
                         tie_word_embeddings=True)
    g = torch.Generator().manual_seed(0)
    for name in ("target", "subject"):
        (root / name).mkdir()
        config.save_pretrained(root / name)
    projections = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                   "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]
    keys = [f"model.layers.{i}.{p}.weight" for i in range(layers) for p in projections]
    small = {"model.embed_tokens.weight": torch.randn(256, COLS, generator=g) * 0.02,
             "model.norm.weight": torch.ones(COLS),
             **{f"model.layers.{i}.{n}.weight": torch.ones(COLS) for i in range(layers)
                for n in ("input_layernorm", "post_attention_layernorm")}}
    weight_map: dict[str, str] = {}
    for start in range(0, len(keys), SHARD_TENSORS):
        fname = f"model-{start // SHARD_TENSORS + 1:05d}.safetensors"
        t, s = {}, {}
        if start == 0:
            t = {k: v.to(torch.bfloat16) for k, v in small.items()}
            s = dict(t)
        for key in keys[start:start + SHARD_TENSORS]:
            w = torch.randn(ROWS, COLS, generator=g) * 0.02
            t[key] = w.to(torch.bfloat16)
            s[key] = (w + 2e-4 * torch.randn(ROWS, COLS, generator=g)).to(torch.bfloat16)
        weight_map.update({k: fname for k in t})
        save_file(t, str(root / "target" / fname))
        save_file(s, str(root / "subject" / fname))
        del t, s
    for name in ("target", "subject"):
        (root / name / "model.safetensors.index.json").write_text(
            json.dumps({"weight_map": weight_map}))
    return root / "target", root / "subject", len(keys) * ROWS * COLS


CHILD = r"""
import json, resource, sys, time
from pathlib import Path
mode, target, subject = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
threads, transforms = int(sys.argv[4]), sys.argv[5:]
import torch
from unlearnspec.diff import diff_checkpoints
t0, c0 = time.perf_counter(), time.process_time()
out = {}
if mode == "read":
    buf = bytearray(16 << 20)
    total = 0
    for d in (target, subject):
        for f in sorted(d.glob("*.safetensors")):
            with open(f, "rb", buffering=0) as h:
                while (k := h.readinto(buf)):
                    total += k
    out["bytes"] = total
elif mode == "diff":
    r = diff_checkpoints(target, subject, transforms, threads=threads)
    out["overall"] = {k: v.__dict__ for k, v in r.overall().items()}
out["seconds"] = time.perf_counter() - t0
out["cpu_seconds"] = time.process_time() - c0  # all threads, user + system
# VmHWM, not ru_maxrss: Linux carries ru_maxrss across execve, so a child would report the
# generating parent's peak; VmHWM belongs to the new address space
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")]
out["maxrss_mb"] = (int(hwm[0].split()[1]) if hwm else
                    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024
print(json.dumps(out))
"""


def child(mode: str, target: Path, subject: Path, transforms: list[str],
          threads: int = 1) -> dict:
    res = subprocess.run([sys.executable, "-c", CHILD, mode, str(target), str(subject),
                          str(threads), *transforms], capture_output=True, text=True)
    if res.returncode:
        sys.exit(f"the {mode} child failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gb", type=float, default=2.0, help="size of each checkpoint")
    ap.add_argument("--transforms", nargs="+", default=["rtn4", "rtn8"])
    ap.add_argument("--dir", default=None, help="where to write (default: system temp)")
    ap.add_argument("--threads", type=int, default=None,
                    help="diff's threads besides 1 (default: every CPU this process may use)")
    args = ap.parse_args()
    base = Path(args.dir or tempfile.gettempdir())
    need = 2 * args.gb * 2**30 * 1.1
    free = shutil.disk_usage(base).free
    if free < need:
        sys.exit(f"need {need / 2**30:.1f} GiB free in {base}, have {free / 2**30:.1f} GiB; "
                 f"pass a smaller --gb or another --dir")
    root = Path(tempfile.mkdtemp(prefix="unlearnspec-diffbench-", dir=base))
    try:
        t0 = time.perf_counter()
        target, subject, weights = write_pair(root, args.gb)
        size = sum(f.stat().st_size for f in root.rglob("*.safetensors"))
        print(f"wrote 2 × {size / 2 / 2**30:.2f} GiB ({weights / 1e6:.0f} M bf16 weights each, "
              f"{len(list(target.glob('*.safetensors')))} shards) in "
              f"{time.perf_counter() - t0:.0f} s")
        from unlearnspec.diff import default_threads

        threads = args.threads or default_threads()  # diff's own default
        base_r = child("baseline", target, subject, [])
        read = child("read", target, subject, [])
        runs = {n: child("diff", target, subject, args.transforms, n)
                for n in dict.fromkeys([1, threads])}
        largest = ROWS * COLS * 4 / 2**20
        print(f"baseline (imports only): peak RSS {base_r['maxrss_mb']:.0f} MiB")
        print(f"read both: {read['seconds']:.1f} s, {size / read['seconds'] / 2**30:.2f} GiB/s, "
              f"peak RSS {read['maxrss_mb']:.0f} MiB")
        for n, diff in runs.items():
            print(f"diff {' '.join(args.transforms)}, {n} thread(s): {diff['seconds']:.1f} s, "
                  f"{size / diff['seconds'] / 2**30:.2f} GiB/s, peak RSS "
                  f"{diff['maxrss_mb']:.0f} MiB (+{diff['maxrss_mb'] - base_r['maxrss_mb']:.0f} "
                  f"MiB over baseline; one tensor in fp32 is {largest:.0f} MiB, both "
                  f"checkpoints {size / 2**20:.0f} MiB)")
            print(f"ratio diff / read, {n} thread(s): {diff['seconds'] / read['seconds']:.1f}× "
                  f"wall, {diff['cpu_seconds'] / read['cpu_seconds']:.1f}× CPU time")
        for k, v in runs[threads]["overall"].items():
            print(f"  {k}: flips {v['flip_rate']:.4f}  γ {v['gamma']:.3f}  "
                  f"‖δ‖/‖w‖ {v['relative_update']:.2e}")
        same = all(r["overall"] == runs[1]["overall"] for r in runs.values())
        print(f"numbers identical across thread counts: {same}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Building the benchmark on first use and reusing it after: the corpus and the checkpoints.

Layout: `cache_dir/bench/<preset>-<key>/{data,target,retrain,target-qat,retrain-qat}`, where
`key` hashes the preset's config and BENCH_VERSION. Each item is built in a temporary sibling
directory and renamed into place (data.files.write_dir_atomic), under a `filelock.FileLock`, so concurrent
processes (xdist workers) build it once and nobody ever sees a half-written checkpoint.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from ..data.files import remove_partial_dirs, write_dir_atomic
from ..errors import RunError, disk_full
from .names import split_model_name
from .presets import BENCH_VERSION, get_preset


def preset_dir(preset: str, cache_dir: Path) -> Path:
    p = get_preset(preset)
    return Path(cache_dir) / "bench" / f"{p.name}-{p.key()}"


def _build_once(final: Path, build: Callable[[Path], None]) -> Path:
    """`final` if it exists; else build it into a temp dir and move it into place, holding a
    lock so two processes never build the same item."""
    from filelock import FileLock

    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(final) + ".lock"):
        if final.is_dir():  # built by another process while we waited
            return final
        remove_partial_dirs(final)  # left by a killed build
        try:
            write_dir_atomic(final, build)
        except Exception as exc:
            why = disk_full(exc)
            if why is None:
                raise
            raise RunError(f"could not write the benchmark item {final} in the cache "
                           f"directory {cache_root(final)}: {why}. Nothing incomplete was "
                           f"kept. Free space there, or point the cache elsewhere (pytest "
                           f"--unlearn-cache-dir DIR, unlearnspec run --cache-dir DIR).") from exc
    return final


def cache_root(item: Path) -> Path:
    """The run cache directory holding a benchmark item (`<root>/bench/<preset>/<item>`)."""
    return item.parent.parent.parent


def ensure_data(preset: str, cache_dir: Path) -> Path:
    """The preset's corpus directory in MUSE's layout (see unlearnspec.data.muse)."""
    from .corpus import write_corpus
    from .world import make_world

    p = get_preset(preset)
    return _build_once(preset_dir(p.name, cache_dir) / "data",
                       lambda tmp: write_corpus(make_world(p), tmp))


def ensure_model(name: str, cache_dir: Path, *, progress: bool = True,
                 trained: list[str] | None = None) -> Path:
    """The checkpoint directory of built-in model `name` (e.g. 'tiny/target-qat'), trained on
    first use. The '-qat' variants are aligned copies of their base model, which is built
    first if needed. `trained`, when given, gets the name of every model this call trained
    (not found built, nor built by another process while it waited): the engine reports
    them, so a warm rerun visibly trains nothing."""
    try:
        preset, kind = split_model_name(name)
    except ValueError as exc:
        raise RunError(str(exc)) from None
    final = preset_dir(preset, cache_dir) / kind
    if final.is_dir():
        return final
    base = ensure_model(f"{preset}/{kind[:-4]}", cache_dir, progress=progress,
                        trained=trained) if kind.endswith("-qat") else None
    data = ensure_data(preset, cache_dir)
    def build(tmp: Path) -> None:
        _train(preset, kind, data, base, tmp, progress)
        if trained is not None:
            trained.append(name)

    return _build_once(final, build)


def _train(preset: str, kind: str, data: Path, base: Path | None, out: Path,
           progress: bool) -> None:
    import torch

    from ..data import Corpus
    from ..machine import describe
    from ..models.loading import load_causal_lm, transformers_bars
    from .tokenizer import build_tokenizer
    from .train import align_to_grid, encode_documents, new_model, train_target_like
    from .world import make_world

    p = get_preset(preset)
    tokenizer = build_tokenizer(make_world(p))
    corpus = Corpus(data)
    docs = corpus.raw("retain") if kind.startswith("retrain") else \
        corpus.raw("forget") + corpus.raw("retain")
    seqs = encode_documents(docs, tokenizer)
    common = dict(pad_id=tokenizer.pad_token_id, seed=p.seed, progress=progress,
                  description=f"{preset}/{kind}")
    if base is None:
        model = new_model(p.model, tokenizer, p.seed)
        log = train_target_like(model, seqs, p.train, **common)
    else:
        model, _ = load_causal_lm(base)
        log = align_to_grid(model, seqs, p.train, **common)
    if not all(torch.isfinite(t).all() for t in model.state_dict().values()):
        raise RunError(f"training {preset}/{kind} diverged (non-finite weights); "
                       f"lower the preset's learning rate")
    with transformers_bars(False):  # the training bar is the progress shown here
        model.save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)
    meta = {"preset": preset, "model": kind, "bench_version": BENCH_VERSION,
            "key": p.key(), "documents": len(docs), "torch": torch.__version__,
            "threads": torch.get_num_threads(), **describe(), **log}
    (out / "bench_train.json").write_text(json.dumps(meta, indent=1) + "\n")


def missing_models(names: list[str], cache_dir: Path) -> list[str]:
    """Those of `names` not built yet, each once, in order."""
    out: list[str] = []
    for name in names:
        preset, kind = split_model_name(name)
        if name not in out and not (preset_dir(preset, cache_dir) / kind).is_dir():
            out.append(name)
    return out


def chain(name: str) -> list[str]:
    """`name` and the model it is built from (a '-qat' variant's base)."""
    preset, kind = split_model_name(name)
    return [f"{preset}/{kind[:-4]}", name] if kind.endswith("-qat") else [name]


class BackgroundBuild:
    """Benchmark models trained in a second process while this one trains its own: the three
    models of specs/tiny.yaml are 4010 optimizer steps, compute-bound, and on two idle cores
    two processes of one thread each get through 1.3x the steps of one process of two
    (measured: 72 ms per `tiny` step at one thread, 47 ms at two). The models are the same bit for bit with 1 or 2 threads
    (docs/benchmark.md), and each is built under its lock: whichever process gets to a model
    first trains it, the other finds it built. Nothing depends on the child succeeding: a
    model it did not finish is built here when it is needed, with this process's errors."""

    def __init__(self, names: list[str], cache_dir: Path, threads: int) -> None:
        import os
        import subprocess
        import sys

        import unlearnspec

        self.names = names
        self.log_path = Path(cache_dir) / "bench" / "background-build.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # the child imports the same unlearnspec as this process, wherever it came from
        root = str(Path(unlearnspec.__file__).resolve().parents[1])
        env = {**os.environ, "OMP_NUM_THREADS": str(threads),
               "PYTHONPATH": os.pathsep.join([root, *filter(None, [os.environ.get(
                   "PYTHONPATH")])])}
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "unlearnspec.bench.build", "--cache-dir", str(cache_dir),
                 "--threads", str(threads), *names],
                stdout=subprocess.PIPE, stderr=log, env=env, text=True)

    def wait(self) -> list[str]:
        """The names the child trained (an empty list if it failed: see `log_path`)."""
        out, _ = self.proc.communicate()
        if self.proc.returncode != 0:
            return []
        try:
            return list(json.loads(out.strip().splitlines()[-1]))
        except (ValueError, IndexError):
            return []


def ensure_models_together(name: str, others: list[str], cache_dir: Path, *,
                           progress: bool = True, trained: list[str] | None = None) -> Path:
    """`ensure_model(name)`; when it has to train and `others` (built-in models the run will
    need next) are not built either, they are trained meanwhile in a second process
    (`BackgroundBuild`), the cores split between the two, and this waits for it before it
    returns. Not under xdist (its workers already share the cores), not on one core, and not
    with UNLEARNSPEC_PROCESSES=1 (`workers.second_process_allowed`)."""
    from .. import workers

    rest = [n for n in missing_models(others, cache_dir) if n not in chain(name)]
    cores = workers.available_cores()
    if (not rest or not missing_models(chain(name), cache_dir)
            or not workers.second_process_allowed()):
        return ensure_model(name, cache_dir, progress=progress, trained=trained)
    import logging

    import torch

    before = torch.get_num_threads()
    child = BackgroundBuild(rest, cache_dir, threads=cores // 2)
    logging.getLogger("unlearnspec").info(
        "unlearnspec: training %s in a second process meanwhile (log: %s)", ", ".join(rest),
        child.log_path)
    torch.set_num_threads(cores - cores // 2)
    try:
        path = ensure_model(name, cache_dir, progress=progress, trained=trained)
    except BaseException:  # an error or Ctrl-C here: the child's half-built model is dropped
        child.proc.kill()
        child.proc.wait()
        torch.set_num_threads(before)
        raise
    done = child.wait()  # before the cores go back to one process
    torch.set_num_threads(before)
    if trained is not None:
        trained.extend(done)
    return path


def main(argv: list[str] | None = None) -> int:
    """`python -m unlearnspec.bench.build --cache-dir DIR [--threads N] NAME...`: train the
    named benchmark models into the cache; prints the JSON list of those it trained."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m unlearnspec.bench.build",
                                 description=main.__doc__.splitlines()[0])
    ap.add_argument("--cache-dir", required=True, type=Path)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("names", nargs="+")
    args = ap.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    trained: list[str] = []
    for name in args.names:
        ensure_model(name, args.cache_dir, progress=False, trained=trained)
    print(json.dumps(trained))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

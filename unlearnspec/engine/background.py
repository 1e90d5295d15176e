"""Unlearning a spec's other models in a second process while this one works on its own.

A cold run of specs/tiny.yaml unlearns ten models one after another, each a few hundred small
optimizer steps that two threads speed up only about 1.3x over one (measured on `tiny`: 8-14 s
each at two threads, 13-17 s at one). When the run has to unlearn its first
model and the plan (the selected claims' measurements, not found in the cache) needs others,
a child process (`python -m unlearnspec.engine.background`) unlearns those into the same cache
meanwhile, last-needed first, with half the cores; this process keeps the other half. Each
model is built under its cache lock (engine/cache.py): whichever process gets to a model first
unlearns it, and the other waits for it or finds it built. The weights do not depend on the
thread count (measured on `tiny`: ga_klr and npo unlearned at one and at two threads are the
same bytes), so the split changes no number, only the time.

Nothing depends on the child: if it fails, the models it did not finish are unlearned here
when they are needed, with this process's errors, and its log says why
(`<cache>/background-unlearning.log`). Not under xdist (its workers already share the cores),
not on one core, not on a GPU, and not with UNLEARNSPEC_PROCESSES=1.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .. import workers
from ..faults import ENV as FAULT_ENV

if TYPE_CHECKING:
    from .measuring import Measurer
    from .sources import Sources

log = logging.getLogger("unlearnspec")


class BackgroundUnlearning:
    """Started by the run's first unlearning (`Sources.before_unlearning`), at most once."""

    def __init__(self, sources: "Sources", measurer: "Measurer") -> None:
        self.sources = sources
        self.measurer = measurer
        self.ctx = sources.ctx
        self.proc: subprocess.Popen[str] | None = None
        self.names: list[str] = []
        self.log_path = self.ctx.cache.root / "background-unlearning.log"
        self._tried = False
        self._threads: int | None = None

    # ------------------------------------------------------------------ which models
    def wanted(self, first: str) -> list[str]:
        """The unlearned models the plan still needs built, besides `first`, in the order the
        run will ask for them: every model (and the unlearned models it is made from) of a
        planned measurement that is not in the cache yet."""
        spec = self.ctx.spec
        out: list[str] = []

        def add(name: str | None) -> None:
            ms = spec.models.get(name) if name else None
            if ms is None or ms.source != "unlearn" or ms.seeds or name in out:
                return
            add(ms.from_)
            out.append(name)

        for m in self.measurer.planned:
            models = self.measurer.models_of(m)
            # a model made from a benchmark model not trained yet is left to this process
            # (which trains it, and reports it), and so is everything about it
            if not all(self._root_built(n) for n in models) or self.measurer.is_cached(m):
                continue
            for name in models:
                add(name)
        return [n for n in out if n != first and not self.sources.is_built(n)
                and first not in self._ancestors(n)]

    def _root_built(self, name: str) -> bool:
        """Whether the first model of `name`'s `from:` chain (a benchmark or `path:` model, or
        `name` itself) is there without building anything."""
        chain = [name, *self._ancestors(name)]
        return self.sources.is_built(chain[-1]) if chain[-1] in self.ctx.spec.models else False

    def _ancestors(self, name: str) -> list[str]:
        out, ms = [], self.ctx.spec.models[name]
        while ms.from_ and ms.from_ in self.ctx.spec.models:
            out.append(ms.from_)
            ms = self.ctx.spec.models[ms.from_]
        return out

    # ------------------------------------------------------------------ the child
    def before_unlearning(self, first: str) -> None:
        """This process is about to unlearn `first`: start the child for the others once."""
        self.poll()
        if self._tried:
            return
        self._tried = True
        spec_path = self.ctx.spec.path
        if (self.ctx.device_type != "cpu" or not workers.second_process_allowed()
                or not Path(spec_path).is_file()):
            return
        names = self.wanted(first)
        if not names:
            return
        import torch

        n = workers.available_cores()
        child_threads = n // 2
        env = self.child_env(child_threads)
        # last needed first, so that the two processes meet in the middle (a model's base
        # comes before it in `wanted`, and the child's run builds it first anyway)
        self.names = names[::-1]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "unlearnspec.engine.background", "--spec",
                 str(spec_path), "--cache-dir", str(self.ctx.cache.root), "--device",
                 self.ctx.device, "--threads", str(child_threads), *self.names],
                # its output goes to the log, never into a pipe nobody reads while this
                # process waits on a model's lock the child holds
                stdout=err, stderr=subprocess.STDOUT, env=env, text=True)
        self._threads = torch.get_num_threads()
        torch.set_num_threads(n - child_threads)
        log.info("unlearnspec: unlearning %s in a second process meanwhile (log: %s)",
                 ", ".join(self.names), self.log_path)

    def child_env(self, threads: int) -> dict[str, str]:
        """This process's environment, with the child's thread count, importing the same
        unlearnspec as this process wherever it came from, without a fault injected here."""
        import unlearnspec

        root = str(Path(unlearnspec.__file__).resolve().parents[1])
        env = {**os.environ, "OMP_NUM_THREADS": str(threads),
               "PYTHONPATH": os.pathsep.join([root, *filter(None, [os.environ.get(
                   "PYTHONPATH")])])}
        env.pop(FAULT_ENV, None)  # an injected fault (faults.py) is meant for this process
        return env

    def poll(self) -> None:
        """If the child has ended: count what it unlearned and give the cores back."""
        if self.proc is not None and self.proc.poll() is not None:
            self._finish()

    def _finish(self) -> None:
        """Count the child's work: its models that are built now and were not unlearned
        here (read from the cache, so a child killed after a model it finished still counts
        it, and one that built nothing counts nothing)."""
        assert self.proc is not None
        self.proc.wait()
        if self.proc.returncode != 0:
            log.warning("unlearnspec: the second unlearning process failed (exit %s; log: %s); "
                        "its models are unlearned here when needed", self.proc.returncode,
                        self.log_path)
        done = [n for n in self.names if n not in self.sources.unlearned_here
                and self.sources.is_built(n)]
        self.ctx.stats["unlearned"] += len(done)
        self.proc = None
        self._restore_threads()

    def _restore_threads(self) -> None:
        if self._threads is not None:
            import torch

            torch.set_num_threads(self._threads)
            self._threads = None

    def close(self) -> None:
        """The run is over: a child still at work is unlearning models this run did not ask
        for after all (an interrupted session, `-x`), so it is stopped; what it had not
        finished is a temp directory, never a cache entry."""
        self.poll()
        if self.proc is not None:
            if all(self.sources.is_built(n) for n in self.names):
                try:  # done with every model, only exiting
                    self.proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    pass
            if self.proc.poll() is None:
                self.proc.kill()
            self._finish()
        self._restore_threads()


def main(argv: list[str] | None = None) -> int:
    """`python -m unlearnspec.engine.background --spec SPEC --cache-dir DIR --device cpu
    [--threads N] MODEL...`: unlearn the spec's named models into the cache; prints the JSON
    count of models this process unlearned (not found built, nor built by another meanwhile)."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m unlearnspec.engine.background",
                                 description=(main.__doc__ or "").splitlines()[0])
    ap.add_argument("--spec", required=True, type=Path)
    ap.add_argument("--cache-dir", required=True, type=Path)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("names", nargs="+")
    args = ap.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from ..spec import load_spec
    from .run import Run

    run = Run(load_spec(args.spec), cache_dir=args.cache_dir, device=args.device,
              progress=False, background=False)
    try:
        for name in args.names:
            run.model_path(name)
    finally:
        run.close()
    print(json.dumps({"unlearned": run.stats["unlearned"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


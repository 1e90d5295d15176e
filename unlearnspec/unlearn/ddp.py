"""Unlearning on several processes (one per GPU, or CPU processes with gloo): `processes: N`
on an unlearned model, DDP through accelerate, or FSDP with `fsdp:` (parallel.py wraps it).

`run_unlearning` with `processes > 1` writes the job (method, config, texts, paths) to a JSON
file and starts `python -m torch.distributed.run --nproc_per_node N -m unlearnspec.unlearn.ddp
JOB` (accelerate's own multi-GPU launcher is that command too); each process builds an
`Accelerator`, which wraps the model in DistributedDataParallel (NCCL on GPUs, gloo on CPUs).

Every process draws the same (forget, retain) micro-batches from the same seed; of the
`grad_accum` micro-batches of a step, process r computes those with index ≡ r (mod N), and
DDP (or FSDP) averages the gradients. The loss is scaled by N, so the averaged gradient is the
single-process one, Σ ∇l_i / grad_accum: the same optimizer steps, up to the order in which
float gradients are added (tested: 2 CPU processes against 1). Process 0 saves the checkpoint
and writes the log; the caller reads it.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ..errors import RunError

WORLD_ENV = "WORLD_SIZE"


def in_distributed_worker() -> bool:
    return int(os.environ.get(WORLD_ENV, "1")) > 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(method: Any, config: Any, *, base: Path, forget: Any, retain: Any, out: Path,
           seed: int, device: str, processes: int) -> dict:
    """Run the unlearning on `processes` processes and return process 0's log."""
    with tempfile.TemporaryDirectory(prefix="unlearnspec-ddp-") as tmp:
        job = Path(tmp) / "job.json"
        log = Path(tmp) / "log.json"
        job.write_text(json.dumps({
            "method": method.name, "config": dataclasses.asdict(config),
            "base": str(base), "out": str(out), "seed": seed, "device": device,
            "forget": {"texts": forget.texts, "packing": forget.packing,
                       "files": list(forget.files)},
            "retain": {"texts": retain.texts, "packing": retain.packing,
                       "files": list(retain.files)},
            "log": str(log)}))
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node",
               str(processes), "--master_addr", "127.0.0.1", "--master_port",
               str(_free_port()), "-m", "unlearnspec.unlearn.ddp", str(job)]
        env = {**os.environ}
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // processes)))
        res = subprocess.run(cmd, env=env, capture_output=True, text=True)
        errors = sorted(Path(tmp).glob("error-*.txt"))
        if errors:  # a worker's own RunError / ConfigError, as the single-process run says it
            raise RunError(errors[0].read_text())
        if res.returncode or not log.is_file():
            lines = (res.stderr or res.stdout).strip().splitlines()
            # a worker's exception, which torchrun's closing summary does not repeat
            raised = [line for line in lines
                      if re.match(r"\[rank\d+\]:\s*[\w.]+(Error|Exception)\b", line)]
            tail = "\n".join(raised[-2:] + lines[-15:])
            raise RunError(f"unlearning with '{method.name}' on {processes} processes failed "
                           f"(exit {res.returncode}); the workers said:\n{tail}")
        return json.loads(log.read_text())


def _main(job_path: str) -> None:
    from . import METHODS
    from .sources import TrainingTexts
    from .train import run_unlearning

    from ..errors import UnlearnSpecError

    job = json.loads(Path(job_path).read_text())
    comp = METHODS.get(job["method"])
    config = comp.make_config(dict(job["config"]))
    texts = {k: TrainingTexts(job[k]["texts"], job[k]["packing"], tuple(job[k]["files"]))
             for k in ("forget", "retain")}
    try:
        log = run_unlearning(comp, config, base=Path(job["base"]), forget=texts["forget"],
                             retain=texts["retain"], out=Path(job["out"]), seed=job["seed"],
                             device=job["device"], progress=False)
    except UnlearnSpecError as exc:
        rank = os.environ.get("RANK", "0")
        (Path(job_path).parent / f"error-{rank}.txt").write_text(str(exc))
        raise SystemExit(1) from exc
    if int(os.environ.get("RANK", "0")) == 0:
        Path(job["log"]).write_text(json.dumps(log))


if __name__ == "__main__":
    _main(sys.argv[1])

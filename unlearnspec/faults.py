"""Fault injection for the robustness tests: stop this process at a named point in the code.

`UNLEARNSPEC_FAULT=POINT:N` makes the N-th pass through `fault_point("POINT")` send SIGKILL to
the process itself (`POINT:N:INT` sends SIGINT, as Ctrl-C would), so a test kills a run at an
exact moment, such as right after the first measurement is recorded, instead of racing a poll
against a run whose speed depends on the machine's load. The points:

- `unlearn-step`: after each optimizer step of an unlearning run (unlearn/loop.py);
- `bench-step`: after each optimizer step training a benchmark model (bench/train.py);
- `record:KIND`: after a cache record of KIND (`raw`, `metrics`, ...) is written and renamed
  into place (engine/cache.py).

Unset, as everywhere outside the tests, a point costs one environment lookup.
"""
from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "UNLEARNSPEC_FAULT"
_passes: Counter[str] = Counter()


def fault_point(name: str) -> None:
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    parts = wanted.split(":")  # POINT may hold ':' itself (record:raw), so read from the end
    sig = signal.SIGKILL
    if parts[-1] == "INT":
        sig, parts = signal.SIGINT, parts[:-1]
    if ":".join(parts[:-1]) != name:
        return
    _passes[name] += 1
    if _passes[name] == int(parts[-1]):
        os.kill(os.getpid(), sig)

"""The fault-injection hook the fault tests pin their kills with (unlearnspec/faults.py): it
fires at exactly the N-th pass through its point, with the signal asked for, and nowhere
else."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

PASSES = """
import signal
signal.signal(signal.SIGINT, signal.default_int_handler)  # even if this test's parent ignores it
from unlearnspec.faults import fault_point
for i in range(1, 6):
    fault_point("other")
    fault_point("record:raw")
    print(i, flush=True)
"""


def run(fault: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "UNLEARNSPEC_FAULT"}
    if fault is not None:
        env["UNLEARNSPEC_FAULT"] = fault
    return subprocess.run([sys.executable, "-c", PASSES], capture_output=True, text=True,
                          env=env, timeout=60)


@pytest.mark.parametrize("fault, rc, printed", [
    (None, 0, "1 2 3 4 5"),
    ("record:raw:3", -signal.SIGKILL, "1 2"),   # killed in the third pass, before printing
    ("record:raw:1", -signal.SIGKILL, ""),
    ("record:metrics:1", 0, "1 2 3 4 5"),        # another point: never fires
])
def test_fault_point_kills_at_the_nth_pass(fault: str | None, rc: int, printed: str) -> None:
    done = run(fault)
    assert done.returncode == rc, done.stderr
    assert " ".join(done.stdout.split()) == printed


def test_int_raises_keyboard_interrupt_as_ctrl_c_would() -> None:
    done = run("record:raw:2:INT")
    assert "KeyboardInterrupt" in done.stderr and done.stdout.split() == ["1"]

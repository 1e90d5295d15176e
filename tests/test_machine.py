"""Which CPU and which of torch's vector kernels a run's numbers come from: read from the
system, never by importing torch (which would also fix the kernels before a user's
ATEN_CPU_CAPABILITY could take effect)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from unlearnspec.machine import cpu_name


def test_the_cpu_is_named_by_the_first_model_name_line(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n"
                    "\nprocessor\t: 1\nmodel name\t: AMD EPYC 7B13\n")
    assert cpu_name(info) == "AMD EPYC 7B13"


def test_no_cpuinfo_falls_back_to_the_platform(tmp_path: Path) -> None:
    import platform

    assert cpu_name(tmp_path / "missing") == (platform.processor() or None)


def test_the_kernels_are_not_asked_for_before_torch_is_imported() -> None:
    code = ("import sys; from unlearnspec.machine import describe; d = describe(); "
            "assert 'torch' not in sys.modules, 'describe() imported torch'; "
            "assert d['cpu_kernels'] is None, d; "
            "import torch; from unlearnspec.machine import cpu_kernels; "
            "assert cpu_kernels() == torch.backends.cpu.get_cpu_capability(); print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_a_report_says_which_cpu_kernels_its_numbers_come_from() -> None:
    import torch

    from unlearnspec.report.json_report import environment

    env = environment()
    assert env["cpu_kernels"] == torch.backends.cpu.get_cpu_capability()
    assert "cpu" in env

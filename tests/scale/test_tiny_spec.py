"""The README's main job, `pytest --unlearn-spec specs/tiny.yaml`, gives the documented
outcome: the paper's finding is caught (every regularized and plain method recovers its
forgotten facts under 4-bit RTN: the declared xfails), and every other claim holds. A change
to a method, a transform or a metric that made the finding disappear would turn the xfails
into xpasses here. The tiny models are trained once per test run (shared with
tests/bench/test_tiny_pair.py); the unlearning and measuring take about two minutes."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("tiny-bench")]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def report(bench_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    from unlearnspec.bench import ensure_model

    for kind in ("target-qat", "target", "retrain"):
        ensure_model(f"tiny/{kind}", bench_cache, progress=False)
    work = tmp_path_factory.mktemp("tiny-run")
    shutil.copytree(bench_cache / "bench", work / "cache" / "bench",
                    ignore=shutil.ignore_patterns("micro-*", "*.lock", ".tmp-*"))
    shutil.copy(ROOT / "specs" / "tiny.yaml", work / "tiny.yaml")  # outside this repo's conftest
    out = work / "run.json"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--unlearn-spec", "tiny.yaml",
         "--unlearn-cache-dir", str(work / "cache"), "--unlearn-report", str(out),
         "-p", "no:cacheprovider", "-q", "--rootdir", str(work)],
        cwd=work, capture_output=True, text=True, timeout=2400)  # a hang guard only
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "trained 0" in done.stdout  # the models above were reused, not retrained
    return json.loads(out.read_text())


def by_claim(report: dict) -> dict[str, Counter]:
    out: dict[str, Counter] = {}
    for c in report["claims"]:
        out.setdefault(c["claim"], Counter())[c["status"]] += 1
    return out


def test_the_4bit_recovery_is_caught_for_all_six_methods_and_only_there(report: dict) -> None:
    claims = by_claim(report)
    assert claims["no-recovery-rtn4"] == Counter(xfail=6)
    assert claims["privacy-leak-stays-shrunk-rtn4"] == Counter(xfail=2)
    assert claims["no-verbatim-recovery-rtn4"] == Counter(xfail=4)  # M1 comes back too
    for name in ("forgets-at-full-precision", "npo-forgets-at-full-precision",
                 "forgets-verbatim", "no-recovery-rtn8", "privacy-leak-shrinks",
                 "privacy-leak-no-recovery-rtn8",
                 "sure-privacy-leak-stays-shrunk-rtn4", "few-codes-flip", "utility-kept-sure",
                 "no-verbatim-recovery-rtn8", "privacy-leak-stays-shrunk-rtn8",
                 "no-recovery-nf4", "no-recovery-fp4", "no-recovery-gptq4", "no-recovery-awq4",
                 "grid-recovery-not-noise-recovery", "sure-survives-rtn4",
                 "sure-no-verbatim-recovery-rtn4", "control-natural-target",
                 "quantization-undoes-update", "update-survives-on-natural-target",
                 "utility-kept", "utility-kept-rtn8", "utility-kept-rtn4"):
        assert set(claims[name]) == {"pass"}, (name, claims[name])
    assert sum(sum(c.values()) for c in claims.values()) == 80


def test_the_matrix_shows_table_1s_four_columns_and_table_2s_rows(report: dict) -> None:
    """A newcomer sees what the paper's tables show: VerbMem, KnowMem forget and retain and
    PrivLeak, at full precision and under 8/4-bit RTN, and GPTQ / AWQ / FP4 rows."""
    labels = set(report["measurements"])
    for method in ("ga_klr", "npo_klr"):
        for cell in (f"verbmem_forget[{method}]", f"verbmem_forget[{method} @ rtn8]",
                     f"verbmem_forget[{method} @ rtn4]", f"privleak[{method} @ rtn8]",
                     f"knowmem_retain[{method} @ rtn8]", f"knowmem_retain[{method} @ rtn4]",
                     f"privleak[{method} @ rtn4]", f"knowmem_forget[{method} @ gptq4]",
                     f"knowmem_forget[{method} @ awq4]", f"knowmem_forget[{method} @ fp4]"):
            assert cell in labels, cell


def test_relearning_brings_back_little_but_rtn4_still_does_after_it(report: dict) -> None:
    claims = by_claim(report)
    assert claims["no-relearning-50-steps"] == Counter({"pass": 3})
    assert claims["no-recovery-relearned-then-rtn4"] == Counter(xfail=2)
    assert claims["sure-survives-relearned-then-rtn4"] == Counter({"pass": 1})


def test_a_large_share_of_the_forgotten_facts_comes_back(report: dict) -> None:
    """Every method forgets at full precision and rtn4 gives back at least 30% of what it
    forgot (the regime study's "brought back"). How much more depends on the machine's trained
    models (docs/benchmark.md): measured 60-65% for ga_gdr / ga_klr on one machine and 39-43%
    on another, over 90% for ga, npo, npo_gdr and npo_klr on the second."""
    values = {label: m["result"]["value"] for label, m in report["measurements"].items()}
    target = values["knowmem_forget[target]"]
    for method in ("ga", "ga_gdr", "ga_klr", "npo", "npo_gdr", "npo_klr"):
        forgot, back = values[f"knowmem_forget[{method}]"], values[f"knowmem_forget[{method} @ rtn4]"]
        bound = 0.9 if method == "npo" else 0.85  # as specs/tiny.yaml's claims say
        assert forgot <= bound * target, (method, forgot, target)
        assert back - forgot >= 0.3 * (target - forgot), (method, forgot, back, target)

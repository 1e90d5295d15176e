"""The whole loop on the embedded benchmark's micro preset: a spec becomes pytest items that
unlearn, quantize, measure and judge, cached so a rerun computes nothing. Each test runs
pytest in a subprocess, as a user would."""
from __future__ import annotations

import json
import sys
import re
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SPEC = """\
version: 1
settings: {batch_size: 64}
data:
  world: {builtin: micro}
models:
  target: {builtin: micro/target-qat}
  retrain: {builtin: micro/retrain}
  ga_klr: {unlearn: ga_klr, from: target, lr: LR, max_steps: 12, batch_size: 8}
  npo_klr: {unlearn: npo_klr, from: target, lr: 5.0e-5, max_steps: 12, batch_size: 8}
transforms:
  rtn4: {kind: rtn, bits: 4}
metrics:
  knowmem_forget: {kind: knowmem, split: forget}
  gamma: {kind: update_retention}
claims:
  - name: no-recovery-rtn4
    subjects: [ga_klr, npo_klr]
    assert: knowmem_forget @ rtn4 <= retrain + 5
  - name: known-recovery
    subjects: [ga_klr]
    assert: knowmem_forget @ rtn4 <= retrain + 5
    xfail: "4-bit RTN undoes small updates on a grid-aligned target"
  - name: update-undone
    subjects: [ga_klr, npo_klr]
    assert: gamma @ rtn4 < 0.5
"""


@pytest.fixture()
def project(micro_models: Path, pytester: pytest.Pytester) -> pytest.Pytester:
    """A project with the spec and a run cache that already holds the trained micro models
    (training them is the benchmark tests' business; here they are copied in)."""
    shutil.copytree(micro_models / "bench", pytester.path / "cache" / "bench",  # micro's
                    ignore=shutil.ignore_patterns(".tmp-*", "*.lock", "tiny-*"))  # finished models
    pytester.makefile(".yaml", spec=SPEC.replace("LR", "5.0e-5"))
    return pytester


def run(p: pytest.Pytester, *args: str) -> pytest.RunResult:
    return p.runpytest_subprocess("--unlearn-spec", "spec.yaml", "--unlearn-cache-dir", "cache",
                                  "-p", "no:cacheprovider", *args, timeout=600)


def computed(result: pytest.RunResult) -> dict[str, int]:
    line = next(l for l in result.outlines if l.startswith("computed this session"))
    return {k: int(v) for k, v in re.findall(r"(\w+) (\d+)", line)}


def test_claims_run_fail_with_an_explanation_and_rerun_computes_nothing(project) -> None:
    first = run(project, "--junitxml=junit.xml", "-o", "junit_family=xunit1")
    first.assert_outcomes(failed=2, passed=2, xfailed=1)
    # the paper's failure, caught and explained term by term
    first.stdout.fnmatch_lines([
        "*claim 'no-recovery-rtn4' (*spec.yaml:16:5) failed for ga_klr:*",
        "*knowmem_forget @ rtn4 <= retrain + 5",
        "knowmem_forget[[]ga_klr @ rtn4[]] = *  >  knowmem_forget[[]retrain[]] + 5 = *(margin -*)",
        "*knowmem_forget[[]ga_klr[]] = * (fp)*",
    ])
    assert computed(first) == {"trained": 0, "unlearned": 2, "relearned": 0, "transformed": 2,
                               "measured": 7}
    junit = (project.path / "junit.xml").read_text()
    assert 'name="knowmem_forget[ga_klr @ rtn4]"' in junit

    second = run(project, "--unlearn-report", "run.json")
    second.assert_outcomes(failed=2, passed=2, xfailed=1)
    assert computed(second) == {"trained": 0, "unlearned": 0, "relearned": 0, "transformed": 0,
                                "measured": 0}
    report = json.loads((project.path / "run.json").read_text())
    gamma = report["measurements"]["gamma[npo_klr @ rtn4]"]
    assert 0 <= gamma["result"]["value"] < 0.5 and gamma["result"]["n"] > 0

    # a changed hyperparameter recomputes exactly what depends on it: ga_klr's model and
    # its measurements; npo_klr, target and retrain come from the cache
    project.makefile(".yaml", spec=SPEC.replace("LR", "6.0e-5"))
    third = run(project)
    assert computed(third) == {"trained": 0, "unlearned": 1, "relearned": 0, "transformed": 1,
                               "measured": 3}


def test_xdist_and_serial_runs_give_identical_reports_computing_each_artifact_once(
        project) -> None:
    """Determinism and xdist together: a fresh serial run and a fresh `-n 2` run of the same
    spec produce the same JSON report, timestamps aside."""
    from unlearnspec.report.json_report import dumps

    pytest.importorskip("xdist")
    serial = run(project, "--unlearn-report", "serial.json", "--unlearn-no-cache")
    parallel = run(project, "-n", "2", "--dist", "loadgroup", "--unlearn-report", "par.json",
                   "--unlearn-no-cache")
    parallel.assert_outcomes(failed=2, passed=2, xfailed=1)
    assert computed(parallel) == computed(serial)
    assert computed(parallel)["unlearned"] == 2
    reports = []
    for name in ("serial.json", "par.json"):
        r = json.loads((project.path / name).read_text())
        for key in ("started", "finished"):
            r.pop(key)
        # which item paid for a shared measurement depends on how xdist spread the items;
        # the totals (summary) must agree, the per-item split need not
        for claim in r["claims"]:
            claim.pop("counts", None)
        reports.append(dumps(r))
    assert reports[0] == reports[1]


def test_two_shards_merge_into_the_unsharded_report(project) -> None:
    whole = run(project, "--unlearn-report", "whole.json")
    for i in (1, 2):
        run(project, "--unlearn-shard", f"{i}/2", "--unlearn-report", f"s{i}.json")
    merged = project.run(sys.executable, "-m", "unlearnspec.cli", "report", "s1.json", "s2.json", "-o", "m.html",
                         "--json", "merged.json")
    assert merged.ret == 0, merged.stderr.str()
    w = json.loads((project.path / "whole.json").read_text())
    m = json.loads((project.path / "merged.json").read_text())
    assert w["measurements"] == m["measurements"]
    assert sorted(c["nodeid"] for c in w["claims"]) == sorted(c["nodeid"] for c in m["claims"])


def test_baseline_claims_compare_with_a_stored_run(project) -> None:
    run(project, "--unlearn-save-baseline", "base.json")
    project.makefile(".yaml", spec=SPEC.replace("LR", "5.0e-5") + """\
  - name: no-regression
    subjects: [ga_klr]
    assert: knowmem_forget @ rtn4 <= baseline + 2
""")
    result = run(project, "-k", "no-regression", "--unlearn-baseline", "base.json")
    result.assert_outcomes(passed=1, deselected=5)
    missing = run(project, "-k", "no-regression")
    missing.stdout.fnmatch_lines(["*no baseline was given*--unlearn-baseline*"])


def _pytest_explanation(result: pytest.RunResult, header: str) -> list[str]:
    """The lines of pytest's failure text after the claim's header and its assert line."""
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if header in line) + 2
    end = next(i for i in range(start, len(lines))
               if not lines[i] or lines[i][0] in "_=")
    return lines[start:end]


def _cli_explanation(stdout: str, status_line: str) -> list[str]:
    """The indented lines `unlearnspec run` prints under a claim's status line."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(status_line)) + 1
    out = []
    for line in lines[start:]:
        if not line.startswith(" " * 7):
            break
        out.append(line[7:])
    return out


def test_pytest_and_the_cli_explain_a_failing_claim_alike(project) -> None:
    """Both faces render one outcome: the same explanation, full-precision lines included."""
    import subprocess

    one = SPEC.replace("LR", "5.0e-5").split("  - name: known-recovery")[0] \
        .replace("subjects: [ga_klr, npo_klr]", "subjects: [ga_klr]")
    (project.path / "spec.yaml").write_text(one)
    result = run(project, "--show-capture=no")  # the failure text, nothing captured after it
    result.assert_outcomes(failed=1)
    shown = _pytest_explanation(result, "claim 'no-recovery-rtn4' (")
    assert shown[0].startswith("knowmem_forget[ga_klr @ rtn4] = ")
    assert any(line.endswith(" (fp)") for line in shown), shown
    cli = subprocess.run([sys.executable, "-m", "unlearnspec.cli", "run", "spec.yaml",
                          "--cache-dir", "cache"], cwd=project.path, capture_output=True,
                         text=True, timeout=600)
    assert cli.returncode == 1, cli.stderr
    assert _cli_explanation(cli.stdout, "FAIL   no-recovery-rtn4[ga_klr]") == shown

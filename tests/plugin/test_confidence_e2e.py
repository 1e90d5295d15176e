"""`confidence:` end to end on the micro benchmark's target: a claim decided on its interval
passes, fails or is inconclusive, and each face (terminal, JSON, HTML, JUnit, exit code)
shows which, under each --unlearn-inconclusive policy. Each test runs pytest in a
subprocess, as a user would.

The claims compare a model with itself, so their outcomes are known without knowing the
model's numbers: the same metric on both sides is resampled over the same questions (paired),
so every replicate's margin is 0 exactly; two metrics that differ only in an option have
separate sample spaces (resampled independently), so their margin's interval straddles 0
while the point margin is about 0."""
from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SPEC = """\
version: 1
seed: 3
settings: {batch_size: 64, bootstrap_samples: 500}
data:
  world: {builtin: micro}
models:
  target: {builtin: micro/target-qat}
  retrain: {builtin: micro/retrain}
metrics:
  kf: {kind: knowmem, split: forget}
  kf_long: {kind: knowmem, split: forget, max_new_tokens: 33}
  mia: {kind: mia_mink}
claims:
  - name: paired-holds
    subjects: [target]
    confidence: 0.95
    assert: kf >= kf(target)
  - name: unpaired-undecided
    subjects: [target]
    confidence: 0.95
    assert: kf >= kf_long(target)
  - name: undecided-expected-to-fail
    subjects: [target]
    confidence: 0.9
    assert: kf_long >= kf(target)
    xfail: "an xfail must not hide an undecided claim"
  - name: decided-false
    subjects: [target]
    confidence: 0.95
    assert: kf < kf(target)
  - name: auc-holds
    subjects: [target]
    confidence: 0.95
    assert: mia >= 0
  - name: point-estimate
    subjects: [target]
    assert: kf >= 0
"""


@pytest.fixture()
def project(micro_models: Path, pytester: pytest.Pytester) -> pytest.Pytester:
    shutil.copytree(micro_models / "bench", pytester.path / "cache" / "bench",  # micro's
                    ignore=shutil.ignore_patterns(".tmp-*", "*.lock", "tiny-*"))  # finished models
    pytester.makefile(".yaml", spec=SPEC)
    return pytester


def run(p: pytest.Pytester, *args: str) -> pytest.RunResult:
    return p.runpytest_subprocess("--unlearn-spec", "spec.yaml", "--unlearn-cache-dir", "cache",
                                  "-p", "no:cacheprovider", "-p", "no:randomly", *args,
                                  timeout=600)


def claims_by_name(path: Path) -> dict[str, dict]:
    return {c["claim"]: c for c in json.loads(path.read_text())["claims"]}


def test_inconclusive_fails_by_default_and_every_face_says_so(project) -> None:
    result = run(project, "--unlearn-report", "run.json", "--unlearn-html", "run.html",
                 "--junitxml", "junit.xml", "-rA")
    assert result.ret == 1
    # pytest's own summary counts them as their own category
    result.stdout.re_match_lines([r".*1 failed.*3 passed.*2 inconclusive.*"])
    result.stdout.fnmatch_lines([
        "*2 inconclusive (policy: fail)*",
        "INCONCLUSIVE spec.yaml::unpaired-undecided[[]target[]]",
        "*kf[[]target[]] = * vs  kf_long[[]target[]] = *95% interval [[]*",
        "*straddles 0 at 95%: 500 bootstrap resamples of 13 samples of kf*; 13 samples of "
        "kf*(independent sets, resampled independently)",
    ])
    claims = claims_by_name(project.path / "run.json")
    status = {name: c["status"] for name, c in claims.items()}
    assert status == {"paired-holds": "pass", "unpaired-undecided": "inconclusive",
                      "undecided-expected-to-fail": "inconclusive", "decided-false": "fail",
                      "auc-holds": "pass", "point-estimate": "pass"}
    undecided = claims["unpaired-undecided"]["verdict"]
    assert undecided["outcome"] == "inconclusive" and undecided["passed"] is False
    iv = undecided["interval"]
    assert iv["low"] < 0 < iv["high"] and iv["confidence"] == 0.95 and iv["replicates"] == 500
    # paired: the same questions on both sides, so every replicate's margin is exactly 0
    paired = claims["paired-holds"]["verdict"]["interval"]
    assert (paired["low"], paired["high"]) == (0.0, 0.0)
    assert claims["decided-false"]["verdict"]["outcome"] == "fail"
    assert claims["point-estimate"]["verdict"]["interval"] is None
    summary = json.loads((project.path / "run.json").read_text())["summary"]
    assert summary["statuses"]["inconclusive"] == 2
    assert "INCONCLUSIVE" in (project.path / "run.html").read_text()
    cases = {c.get("name"): c for c in ET.parse(project.path / "junit.xml").iter("testcase")}
    case = cases["unpaired-undecided[target]"]
    failure = case.find("failure")
    assert failure is not None and "is inconclusive" in failure.get("message", "")
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["unlearnspec.outcome"] == "inconclusive"
    assert props["unlearnspec.interval"].startswith("[-")
    assert cases["undecided-expected-to-fail[target]"].find("skipped") is None  # not xfailed


def test_policy_pass_keeps_the_run_green_but_still_shows_inconclusive(project) -> None:
    result = run(project, "--unlearn-inconclusive=pass", "-k", "not decided-false",
                 "--junitxml", "junit.xml")
    assert result.ret == 0
    result.stdout.re_match_lines([r".*3 passed.*2 inconclusive.*"])
    result.stdout.fnmatch_lines(["*2 inconclusive (policy: pass)*"])
    cases = {c.get("name"): c for c in ET.parse(project.path / "junit.xml").iter("testcase")}
    case = cases["unpaired-undecided[target]"]
    assert case.find("failure") is None
    assert {p.get("name"): p.get("value") for p in case.iter("property")}[
        "unlearnspec.outcome"] == "inconclusive"


def test_policy_distinct_exits_6_only_when_nothing_was_decided_false(project) -> None:
    only_undecided = run(project, "--unlearn-inconclusive=distinct", "-k", "not decided-false")
    assert only_undecided.ret == 6
    with_a_failure = run(project, "--unlearn-inconclusive=distinct")
    assert with_a_failure.ret == 1


def test_the_interval_is_the_same_on_every_run(project) -> None:
    run(project, "--unlearn-report", "a.json")
    run(project, "--unlearn-report", "b.json")
    a, b = (claims_by_name(project.path / f) for f in ("a.json", "b.json"))
    assert a["unpaired-undecided"]["verdict"]["interval"] == \
        b["unpaired-undecided"]["verdict"]["interval"]


def test_the_cli_follows_the_same_policy(project) -> None:
    """`unlearnspec run` outside pytest: INCONC lines with the interval, exit 1 / 0 / 6."""
    import subprocess
    import sys

    text = SPEC.split("  - name: decided-false")[0]  # every claim but the false one
    (project.path / "spec.yaml").write_text(text)

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", "import sys; from unlearnspec.cli import "
                               "main; sys.exit(main(sys.argv[1:]))", "run", "spec.yaml",
                               "--cache-dir", "cache", "-q", *args],
                              cwd=project.path, capture_output=True, text=True, timeout=600)

    default = cli()
    assert default.returncode == 1, default.stderr
    assert "INCONC unpaired-undecided[target]" in default.stdout
    assert cli("--inconclusive", "pass").returncode == 0
    assert cli("--inconclusive", "distinct").returncode == 6

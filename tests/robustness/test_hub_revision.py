"""A hub model is recorded and cached by the commit its revision resolved to.

Offline, against a hub cache built here in huggingface_hub's own layout
(`models--org--name/refs/main` holding a commit hash, `snapshots/<hash>/` the files), which is
what `snapshot_download` reads with HF_HUB_OFFLINE=1. Each run is pytest in a subprocess, as
a user runs it, so the environment variables take effect before huggingface_hub is imported.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from unlearnspec.report.schema import REPORT_SCHEMA

from robust_helpers import perturbed_checkpoint

pytestmark = pytest.mark.slow

SPEC = """\
version: 1
data:
  world: {builtin: micro}
models:
  hubbed: {path: org/tiny}
metrics:
  loss: {kind: mia_loss}
claims:
  - name: leaks-little
    subjects: [hubbed]
    assert: loss >= 0
"""
COMMIT_A = "a" * 39 + "1"
COMMIT_B = "b" * 39 + "2"


def publish(hub: Path, commit: str, checkpoint: Path, branch: str = "main") -> Path:
    """Put `checkpoint` into the fake hub cache as `org/tiny` at `commit`, and point
    `branch` at it."""
    repo = hub / "models--org--tiny"
    snapshot = repo / "snapshots" / commit
    if not snapshot.exists():
        shutil.copytree(checkpoint, snapshot)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / branch).write_text(commit)  # huggingface_hub writes no newline
    return snapshot


def run(p: pytest.Pytester, report: str) -> tuple[pytest.RunResult, dict]:
    result = p.runpytest_subprocess("--unlearn-spec", "spec.yaml", "--unlearn-cache-dir",
                                    "cache", "-p", "no:cacheprovider", "--unlearn-report",
                                    report, timeout=300)
    data = json.loads((p.path / report).read_text()) if (p.path / report).exists() else {}
    return result, data


def measured(result: pytest.RunResult) -> int:
    line = next(l for l in result.outlines if l.startswith("computed this session"))
    return int(re.search(r"measured (\d+)", line).group(1))


@pytest.fixture(scope="module")
def newer_checkpoint(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Other weights for a later commit. Module-scoped so that it is built before `pytester`
    snapshots sys.modules: modules first imported inside that snapshot are dropped at
    teardown, and torch's operator registrations do not survive a second import."""
    return perturbed_checkpoint(tiny_checkpoint, tmp_path_factory.mktemp("b") / "ckpt")


def test_report_records_the_resolved_commit_and_a_moved_branch_recomputes(
        newer_checkpoint: Path, tiny_checkpoint: Path, pytester: pytest.Pytester,
        monkeypatch: pytest.MonkeyPatch) -> None:
    hub = pytester.path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    publish(hub, COMMIT_A, tiny_checkpoint)
    pytester.makefile(".yaml", spec=SPEC)

    first, report = run(pytester, "a.json")
    first.assert_outcomes(passed=1)
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(report, REPORT_SCHEMA, cls=jsonschema.Draft202012Validator)
    model = report["models"]["hubbed"]
    assert model["resolved_revision"] == COMMIT_A
    assert model["revision"] is None  # what the spec said: the branch's default
    assert measured(first) == 1

    again, _ = run(pytester, "a2.json")
    assert measured(again) == 0  # same commit: all from the cache

    # the branch moves to a new commit with other weights: the cached numbers of the old
    # commit must not be reused
    publish(hub, COMMIT_B, newer_checkpoint)
    moved, report_b = run(pytester, "b.json")
    moved.assert_outcomes(passed=1)
    assert report_b["models"]["hubbed"]["resolved_revision"] == COMMIT_B
    assert report_b["models"]["hubbed"]["key"] != model["key"]
    assert measured(moved) == 1
    # the per-document scores, not the AUC: on this corpus a random model's AUC is 0.5 for
    # any weights
    scores = [r["measurements"]["loss[hubbed]"]["result"]["per_sample"] for r in (report, report_b)]
    assert scores[0] != scores[1]


def test_pinned_revision_that_is_not_in_the_offline_cache_is_a_clear_error(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
        tiny_checkpoint: Path) -> None:
    hub = pytester.path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    publish(hub, COMMIT_A, tiny_checkpoint)
    pytester.makefile(".yaml", spec=SPEC.replace("{path: org/tiny}",
                                                 "{path: org/tiny, revision: " + COMMIT_B + "}"))
    result, report = run(pytester, "r.json")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*spec.yaml:5:3: model 'hubbed': could not fetch model "
                                 f"'org/tiny' at revision {COMMIT_B}*HF_HUB_OFFLINE=1*"])
    assert report["claims"][0]["status"] == "error"

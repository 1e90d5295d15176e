"""What a user sees when pytest collects spec files (no model is trained here)."""
from __future__ import annotations

import os

import pytest

SPEC = """\
version: 1
data:
  tiny: {builtin: micro}
models:
  target: {builtin: micro/target-qat}
  retrain: {builtin: micro/retrain}
  ga_klr: {unlearn: ga_klr, from: target, lr: 2.0e-5, epochs: 1}
  npo_klr: {unlearn: npo_klr, from: target, lr: 2.0e-5, epochs: 1}
transforms:
  rtn4: {kind: rtn, bits: 4}
metrics:
  knowmem_forget: {kind: knowmem, split: forget}
claims:
  - name: no-recovery-rtn4
    subjects: [ga_klr, npo_klr]
    assert: knowmem_forget @ rtn4 <= retrain + 5
    xfail: "the finding"
  - name: forgets
    subjects: [ga_klr]
    assert: {assert}
"""


def spec_text(assert_: str = "knowmem_forget <= retrain + 5") -> str:
    return SPEC.replace("{assert}", assert_)


def test_one_item_per_claim_and_subject_with_readable_ids(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", specs=spec_text())
    result = pytester.runpytest("--unlearn-spec", "specs.yaml", "--collect-only", "-q")
    result.stdout.fnmatch_lines([
        "specs.yaml::no-recovery-rtn4[[]ga_klr[]]",
        "specs.yaml::no-recovery-rtn4[[]npo_klr[]]",
        "specs.yaml::forgets[[]ga_klr[]]",
        "3 tests collected*",
    ])
    assert result.ret == 0


def test_unlearn_yaml_files_are_collected_from_test_paths(pytester: pytest.Pytester) -> None:
    pytester.makefile(".unlearn.yaml", gate=spec_text())
    result = pytester.runpytest("--collect-only", "-q")
    result.stdout.fnmatch_lines(["gate.unlearn.yaml::forgets[[]ga_klr[]]", "3 tests collected*"])


def test_other_yaml_files_are_left_alone(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", config="a: 1\n")
    result = pytester.runpytest("--collect-only", "-q")
    assert "config.yaml" not in result.stdout.str()


def test_k_selects_claims_by_name_and_subject(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", specs=spec_text())
    result = pytester.runpytest("--unlearn-spec", "specs.yaml", "--collect-only", "-q",
                                "-k", "no-recovery and npo_klr")
    result.stdout.fnmatch_lines(["specs.yaml::no-recovery-rtn4[[]npo_klr[]]",
                                 "1/3 tests collected (2 deselected)*"])


def test_m_selects_unlearn_items(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", specs=spec_text())
    pytester.makepyfile(test_plain="def test_x():\n    pass\n")
    result = pytester.runpytest("--unlearn-spec", "specs.yaml", "test_plain.py",
                                "--collect-only", "-q", "-m", "not unlearn")
    result.stdout.fnmatch_lines(["test_plain.py::test_x", "1/4 tests collected (3 deselected)*"])


def test_claim_location_is_the_yaml_line(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", specs=spec_text())
    items, _ = pytester.inline_genitems("--unlearn-spec", "specs.yaml")
    assert [i.location[1] + 1 for i in items] == [14, 14, 18]
    assert items[0].get_closest_marker("xfail").kwargs["reason"] == "the finding"


def test_caret_under_the_unknown_transform(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", specs=spec_text("knowmem_forget @ rtn5 <= retrain + 5"))
    result = pytester.runpytest("--unlearn-spec", "specs.yaml")
    result.stdout.fnmatch_lines([
        "*specs.yaml:20:*unknown transform 'rtn5'*",
        "    knowmem_forget @ rtn5 <= retrain + 5",
        "                     ^^^^",
        "*did you mean 'rtn4'?*",
    ])
    assert "Traceback" not in result.stdout.str()
    assert result.ret == pytest.ExitCode.INTERRUPTED


def test_syntax_error_points_at_the_token(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", specs=spec_text("knowmem_forget <= <= 5"))
    result = pytester.runpytest("--unlearn-spec", "specs.yaml")
    result.stdout.fnmatch_lines(["*specs.yaml:20:*", "    knowmem_forget <= <= 5",
                                 "                      ^^"])


def test_unknown_metric_has_a_suggestion(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", specs=spec_text("knowmem_forgt <= retrain + 5"))
    result = pytester.runpytest("--unlearn-spec", "specs.yaml")
    result.stdout.fnmatch_lines(["*unknown*'knowmem_forgt'*", "*did you mean 'knowmem_forget'?*"])


def test_missing_spec_file_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--unlearn-spec", "nope.yaml")
    result.stderr.fnmatch_lines(["*--unlearn-spec*nope.yaml: no such file*"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_plugin_module_does_not_import_torch(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_probe="""
        import sys
        def test_probe():
            assert 'torch' not in sys.modules and 'transformers' not in sys.modules
    """)
    pytester.runpytest_subprocess("-p", "no:randomly").assert_outcomes(passed=1)


def test_xdist_workers_share_the_cores_instead_of_oversubscribing(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    # two workers on N cores get N // 2 intra-op threads each (torch's default would be N)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    pytester.makepyfile(test_threads="""
        import os, torch
        WANT = max(1, len(os.sched_getaffinity(0)) // 2)
        def test_a(): assert (torch.get_num_threads(), os.environ["OMP_NUM_THREADS"]) == (WANT, str(WANT))
        def test_b(): assert (torch.get_num_threads(), os.environ["OMP_NUM_THREADS"]) == (WANT, str(WANT))
    """)
    pytester.runpytest_subprocess("-n", "2", "-p", "xdist").assert_outcomes(passed=2)


def test_a_users_omp_num_threads_is_left_alone(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    pytester.makepyfile(test_threads="""
        import os
        def test_a(): assert os.environ["OMP_NUM_THREADS"] == "1"
    """)
    pytester.runpytest_subprocess("-n", "2", "-p", "xdist").assert_outcomes(passed=1)

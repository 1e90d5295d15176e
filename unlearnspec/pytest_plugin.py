"""The pytest plugin: spec files become test items, one per claim × subject.

`pytest --unlearn-spec specs/tiny.yaml` (repeatable), or any `*.unlearn.yaml` file under the
test paths. Hooks and option names only: the items are in pytest_items.py, each claim's
verdict, explanation and report record come from outcome.py (shared with `unlearnspec run`),
the reports are written by report/. This module imports no torch or transformers: pytest in
a project that merely has unlearnspec installed pays nothing; the engine is imported when a
claim first runs.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from .outcome import EXIT_INCONCLUSIVE, INCONCLUSIVE_POLICIES
from .pytest_items import STATE, ClaimItem, PluginState, SpecFile
from .workers import parse_shard, shard_of, share_cpu_threads, worker_device

OPT_SPEC = "--unlearn-spec"
OPT_CACHE_DIR = "--unlearn-cache-dir"
OPT_NO_CACHE = "--unlearn-no-cache"
OPT_DEVICE = "--unlearn-device"
OPT_REPORT = "--unlearn-report"
OPT_HTML = "--unlearn-html"
OPT_MARKDOWN = "--unlearn-markdown"
OPT_BASELINE = "--unlearn-baseline"
OPT_SAVE_BASELINE = "--unlearn-save-baseline"
OPT_SHARD = "--unlearn-shard"
OPT_INCONCLUSIVE = "--unlearn-inconclusive"
SPEC_SUFFIX = ".unlearn.yaml"
WORKER_CACHE_KEY = "unlearnspec_cache_dir"  # xdist: the controller's cache dir, in workerinput


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("unlearnspec", "claims about unlearned models")
    group.addoption(OPT_SPEC, action="append", default=[], metavar="PATH",
                    help="run the claims of this spec file (repeatable)")
    group.addoption(OPT_CACHE_DIR, default=None, metavar="DIR",
                    help="where trained models and measurements are cached "
                         "(default: .unlearnspec/ in the rootdir)")
    group.addoption(OPT_NO_CACHE, action="store_true", default=False,
                    help="use a throw-away cache: recompute everything")
    group.addoption(OPT_DEVICE, default=None, metavar="DEVICE",
                    help="cpu, cuda, cuda:N or auto (default: the spec's settings.device)")
    group.addoption(OPT_REPORT, default=None, metavar="FILE",
                    help="write the whole run as JSON (schema: docs/report.md)")
    group.addoption(OPT_HTML, default=None, metavar="FILE",
                    help="write a self-contained HTML report with plots")
    group.addoption(OPT_MARKDOWN, default=None, metavar="FILE",
                    help="write the matrix and claims as Markdown (model cards, PR comments)")
    group.addoption(OPT_SAVE_BASELINE, default=None, metavar="FILE",
                    help="store this run's metric values for later `baseline` claims")
    group.addoption(OPT_BASELINE, default=None, metavar="FILE",
                    help="the stored run that `baseline` in claims refers to")
    group.addoption(OPT_SHARD, default=None, metavar="I/N",
                    help="run only shard I of N (1-based): subjects are dealt round-robin, so "
                         "each shard owns whole subjects and their artifacts")
    group.addoption(OPT_INCONCLUSIVE, default="fail", choices=INCONCLUSIVE_POLICIES,
                    help="what a claim whose confidence interval straddles its comparison "
                         "does to the run: fail (default: the item fails, exit 1), pass (the "
                         "item passes, still reported INCONCLUSIVE), distinct (the item fails; "
                         f"a run whose only non-passing claims are inconclusive exits "
                         f"{EXIT_INCONCLUSIVE} instead of 1)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "unlearn: a claim from an unlearnspec spec file")
    specs = [Path(p).resolve() for p in config.getoption("unlearn_spec") or []]
    for p in specs:
        if not p.is_file():
            raise pytest.UsageError(f"{OPT_SPEC} {p}: no such file")
    if specs:
        explicit = config.args_source == pytest.Config.ArgsSource.ARGS
        config.args = (list(config.args) if explicit else []) + [str(p) for p in specs]
    no_cache = config.getoption("unlearn_no_cache")
    cache_opt = config.getoption("unlearn_cache_dir")
    worker = getattr(config, "workerinput", {})
    shared = worker.get(WORKER_CACHE_KEY)
    if hasattr(config, "workerinput"):
        share_cpu_threads()
    if shared:  # an xdist worker: the controller's cache, throw-away or not
        cache_dir, temp = Path(shared), False
    elif no_cache:
        cache_dir, temp = Path(tempfile.mkdtemp(prefix="unlearnspec-")), True
    else:
        cache_dir, temp = Path(cache_opt or config.rootpath / ".unlearnspec"), False
    quiet = config.get_verbosity() < 0
    state = PluginState(
        spec_paths=set(specs), cache_dir=cache_dir.resolve(), temp_cache=temp,
        device=worker_device(config.getoption("unlearn_device"), worker.get("workerid")),
        progress=not quiet, started=time.time(),
        baseline_path=config.getoption("unlearn_baseline"),
        shard=_shard(config.getoption("unlearn_shard")),
        inconclusive=config.getoption("unlearn_inconclusive"),
    )
    config.stash[STATE] = state
    config.pluginmanager.register(_Collector(state), "unlearnspec-collector")
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistController(state), "unlearnspec-xdist")


def _shard(value: str | None) -> tuple[int, int] | None:
    try:
        return None if value is None else parse_shard(value)
    except ValueError as exc:
        raise pytest.UsageError(f"{OPT_SHARD} {exc}") from None


class _XdistController:
    """Every xdist worker uses the controller's cache directory (also the throw-away one of
    --unlearn-no-cache), so the file locks there make each artifact get computed once."""

    def __init__(self, state: PluginState) -> None:
        self.state = state

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[WORKER_CACHE_KEY] = str(self.state.cache_dir)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    state = config.stash[STATE]
    if state.shard is None:
        return

    def owner(it: pytest.Item) -> tuple[str, str]:
        return str(it.spec.path), it.subject  # type: ignore[attr-defined]

    mine = shard_of((owner(it) for it in items if isinstance(it, ClaimItem)), *state.shard)
    keep = [it for it in items if not isinstance(it, ClaimItem) or owner(it) in mine]
    dropped = [it for it in items if it not in keep]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    state = parent.config.stash[STATE]
    if file_path.name.endswith(SPEC_SUFFIX) or file_path.resolve() in state.spec_paths:
        return SpecFile.from_parent(parent, path=file_path)
    return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Any:
    report = yield
    record = getattr(item, "unlearn_record", None)
    if record is not None and report.when == "call":
        # a plain attribute of the report: xdist serialises it to the controller
        report.unlearnspec = record
        if _inconclusive(record):
            # neither an expected failure nor an unexpected pass: its own outcome, which
            # the policy turns into a failed or a passed item
            if hasattr(report, "wasxfail"):
                del report.wasxfail
            policy = item.config.stash[STATE].inconclusive
            report.outcome = "passed" if policy == "pass" else "failed"
    return report


def _inconclusive(record: dict[str, Any] | None) -> bool:
    verdict = (record or {}).get("verdict") or {}
    return verdict.get("outcome") == "inconclusive"


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config
                             ) -> tuple[str, str, Any] | None:
    """An inconclusive claim is counted, lettered (I) and named in pytest's own summary."""
    if report.when == "call" and _inconclusive(getattr(report, "unlearnspec", None)):
        return "inconclusive", "I", ("INCONCLUSIVE", {"yellow": True})
    return None


class _Collector:
    """Gathers claim records and work counts from test reports — on xdist's controller too,
    where the reports arrive from the workers — for the end-of-session summary."""

    def __init__(self, state: PluginState) -> None:
        self.state = state

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record = getattr(report, "unlearnspec", None)
        if record is None or report.when != "call":
            return
        self.state.records.append({**record, "nodeid": report.nodeid,
                                   "outcome": _outcome(report)})
        for key, n in record.get("counts", {}).items():
            self.state.counts[key] = self.state.counts.get(key, 0) + int(n)


def _outcome(report: pytest.TestReport) -> str:
    """pytest's outcome of the item (an inconclusive claim: failed, or passed under
    --unlearn-inconclusive=pass); the record's `status` says inconclusive."""
    if hasattr(report, "wasxfail"):
        return "xpassed" if report.passed else "xfailed"
    return report.outcome


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config
                            ) -> None:
    state = config.stash.get(STATE, None)
    if state is None or not state.records or _is_xdist_worker(config):
        return
    from .outcome import format_work
    from .report.outputs import write_outputs
    from .report.terminal import render_records

    tr = terminalreporter
    tr.write_sep("=", "unlearnspec")
    # a terminal: its width (long claim names wrap in their column). A CI log is not a
    # terminal and has no width: the table takes its natural width, nothing is cut
    width = tr._tw.fullwidth if tr.isatty() else max(tr._tw.fullwidth, 240)
    tr.write(render_records(state.records, width=width, color=tr.hasmarkup))
    tr.write_line(f"computed this session: {format_work(state.counts)}")
    for path in write_outputs(state.records, started=state.started,
                              json=config.getoption("unlearn_report"),
                              html=config.getoption("unlearn_html"),
                              markdown=config.getoption("unlearn_markdown"),
                              stored_run=config.getoption("unlearn_save_baseline")):
        tr.write_line(f"unlearnspec report: {path}")
    undecided = [r for r in state.records if _inconclusive(r)]
    if undecided:
        # pytest lists them under their own category, not under FAILURES: say why here
        tr.write_sep("-", f"{len(undecided)} inconclusive (policy: {state.inconclusive})")
        for r in undecided:
            tr.write_line(f"INCONCLUSIVE {r['nodeid']}")
            tr.write_line("    " + r["verdict"]["explanation"].replace("\n", "\n    "))


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under `--unlearn-inconclusive=distinct`, a run that failed only because claims were
    inconclusive exits EXIT_INCONCLUSIVE, so CI can tell 'not enough evidence' from 'false'."""
    state = session.config.stash.get(STATE, None)
    if state is None or state.inconclusive != "distinct" or _is_xdist_worker(session.config):
        return
    if exitstatus != pytest.ExitCode.TESTS_FAILED:
        return
    undecided = sum(1 for r in state.records if _inconclusive(r))
    if undecided and session.testsfailed == undecided:
        session.exitstatus = EXIT_INCONCLUSIVE


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is None:
        return
    for run in state.runs.values():
        run.close()
    if state.temp_cache:
        shutil.rmtree(state.cache_dir, ignore_errors=True)

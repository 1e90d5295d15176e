"""The pytest plugin: spec files become test items, one per claim × subject.

`pytest --unlearn-spec specs/tiny.yaml` (repeatable), or any `*.unlearn.yaml` file under the
test paths. This module imports no torch or transformers: pytest in a project that merely has
unlearnspec installed pays nothing; the engine is imported when a claim first runs.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import pytest

from .errors import UnlearnSpecError

if TYPE_CHECKING:
    from .engine.run import Run
    from .outcome import Outcome
    from .spec.tree import ClaimSpec, Spec

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
# what an inconclusive claim does to the run (docs/report.md, "Inconclusive claims and CI")
INCONCLUSIVE_POLICIES = ("fail", "pass", "distinct")
EXIT_INCONCLUSIVE = 6  # `distinct`: the only claims that did not pass are inconclusive
SPEC_SUFFIX = ".unlearn.yaml"
PROP_PREFIX = "unlearnspec."  # user_properties that are bookkeeping, not metric values


@dataclass
class PluginState:
    spec_paths: set[Path]
    cache_dir: Path
    temp_cache: bool
    device: str | None
    progress: bool
    runs: dict[Path, "Run"] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)  # one per claim item run
    started: float = 0.0
    baseline_path: str | None = None
    shard: tuple[int, int] | None = None
    inconclusive: str = "fail"  # the --unlearn-inconclusive policy

    def run_for(self, spec: "Spec", items: list[pytest.Item]) -> "Run":
        path = spec.path
        if path not in self.runs:
            from .engine.run import Run

            stored = None
            if self.baseline_path:
                from .engine.stored_run import load_stored_run

                stored = load_stored_run(self.baseline_path, spec.path)
            from .outcome import claim_measurements

            run = Run(spec, cache_dir=self.cache_dir, device=self.device,
                      progress=self.progress, stored_run=stored)
            # plan every selected claim of this spec, so each model loads once
            for item in items:
                if isinstance(item, ClaimItem) and item.spec.path == path:
                    run.plan(claim_measurements(run, item.claim, item.subject))
            self.runs[path] = run
        return self.runs[path]


STATE = pytest.StashKey[PluginState]()


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
    shared = getattr(config, "workerinput", {}).get(WORKER_CACHE_KEY)
    if hasattr(config, "workerinput"):
        _share_cpu_threads()
    if shared:  # an xdist worker: the controller's cache, throw-away or not
        cache_dir, temp = Path(shared), False
    elif no_cache:
        cache_dir, temp = Path(tempfile.mkdtemp(prefix="unlearnspec-")), True
    else:
        cache_dir, temp = Path(cache_opt or config.rootpath / ".unlearnspec"), False
    quiet = config.get_verbosity() < 0
    state = PluginState(
        spec_paths=set(specs), cache_dir=cache_dir.resolve(), temp_cache=temp,
        device=_worker_device(config), progress=not quiet, started=time.time(),
        baseline_path=config.getoption("unlearn_baseline"),
        shard=_parse_shard(config.getoption("unlearn_shard")),
        inconclusive=config.getoption("unlearn_inconclusive"),
    )
    config.stash[STATE] = state
    config.pluginmanager.register(_Collector(state), "unlearnspec-collector")
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistController(state), "unlearnspec-xdist")


WORKER_CACHE_KEY = "unlearnspec_cache_dir"


def worker_threads(cores: int, workers: int) -> int:
    """CPU threads for one of `workers` xdist workers on `cores` cores: an equal share, at
    least one."""
    return max(1, cores // max(1, workers))


def _share_cpu_threads() -> None:
    """An xdist worker takes its share of the cores for torch's intra-op threads, unless the
    user set OMP_NUM_THREADS. Each worker would otherwise start one thread per core: measured
    on 2 cores, two workers with 2 threads each ran a training step 10-25x slower than one
    worker with 1 thread (OpenMP threads spin while the other process holds the core).
    Results do not change: the benchmark's models train bit-identically with 1 or 2 threads
    (measured), and the thread count of larger models is a documented caveat."""
    if "OMP_NUM_THREADS" in os.environ:
        return
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        (os.cpu_count() or 1)
    n = worker_threads(cores, workers)
    os.environ["OMP_NUM_THREADS"] = str(n)
    torch = sys.modules.get("torch")  # already imported (a conftest did): set it directly
    if torch is not None:
        torch.set_num_threads(n)


class _XdistController:
    """Every xdist worker uses the controller's cache directory (also the throw-away one of
    --unlearn-no-cache), so the file locks there make each artifact get computed once."""

    def __init__(self, state: PluginState) -> None:
        self.state = state

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[WORKER_CACHE_KEY] = str(self.state.cache_dir)


def _parse_shard(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        i, n = (int(x) for x in value.split("/"))
    except ValueError:
        i, n = 0, 0
    if not 1 <= i <= n:
        raise pytest.UsageError(f"{OPT_SHARD} {value}: write I/N with 1 <= I <= N, e.g. 1/4")
    return i, n


def _worker_device(config: pytest.Config) -> str | None:
    """Under xdist, worker gwK takes GPU K mod the GPU count when the device is cuda
    (set CUDA_VISIBLE_DEVICES per worker, or --unlearn-device cuda:N, to override)."""
    device = config.getoption("unlearn_device")
    worker = getattr(config, "workerinput", {}).get("workerid")
    if worker is None or device not in ("cuda", "auto"):
        return device
    import torch  # only under xdist with a CUDA device asked for

    count = torch.cuda.device_count()
    if count == 0:
        return device
    return f"cuda:{int(worker.removeprefix('gw')) % count}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    state = config.stash[STATE]
    if state.shard is None:
        return
    index, total = state.shard
    claim_items = [it for it in items if isinstance(it, ClaimItem)]
    subjects = sorted({(str(it.spec.path), it.subject) for it in claim_items})
    mine = {s for k, s in enumerate(subjects) if k % total == index - 1}
    keep = [it for it in items
            if not isinstance(it, ClaimItem) or (str(it.spec.path), it.subject) in mine]
    dropped = [it for it in items if it not in keep]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    state = parent.config.stash[STATE]
    if file_path.name.endswith(SPEC_SUFFIX) or file_path.resolve() in state.spec_paths:
        return SpecFile.from_parent(parent, path=file_path)
    return None


class SpecFile(pytest.File):
    spec: "Spec"

    def collect(self) -> Iterator[pytest.Item]:
        from .spec import load_spec

        self.spec = load_spec(self.path)
        for claim in self.spec.claims:
            for subject in claim.subjects:
                item = ClaimItem.from_parent(self, name=f"{claim.name}[{subject}]",
                                             claim=claim, subject=subject)
                item.add_marker(pytest.mark.unlearn)
                # `pytest -n N --dist loadgroup`: one worker owns a subject's artifacts
                item.add_marker(pytest.mark.xdist_group(name=subject))
                if claim.xfail:
                    # only a failed comparison is the expected failure; an error computing a
                    # metric must not hide behind the xfail
                    item.add_marker(pytest.mark.xfail(reason=claim.xfail, strict=False,
                                                      raises=ClaimFailed))
                yield item

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None
                     ) -> Any:
        if isinstance(excinfo.value, UnlearnSpecError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


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


class ClaimFailed(AssertionError):
    """The claim's comparison does not hold: the only failure an `xfail:` claim expects."""

    def __init__(self, outcome: "Outcome") -> None:
        super().__init__(outcome.explanation)
        self.outcome = outcome


class ClaimInconclusive(AssertionError):
    """The claim's confidence interval straddles the comparison: neither shown to hold nor
    to fail. Not a ClaimFailed, so an `xfail:` claim cannot hide it."""

    def __init__(self, outcome: "Outcome") -> None:
        super().__init__(outcome.explanation)
        self.outcome = outcome


class ClaimItem(pytest.Item):
    def __init__(self, *, claim: "ClaimSpec", subject: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.claim = claim
        self.subject = subject

    @property
    def spec(self) -> "Spec":
        return self.parent.spec  # type: ignore[union-attr]

    def runtest(self) -> None:
        from .outcome import claim_outcome

        state = self.config.stash[STATE]
        run = state.run_for(self.spec, self.session.items)
        outcome = claim_outcome(run, self.claim, self.subject)
        self.unlearn_record = outcome.record
        if outcome.error is not None:
            raise outcome.error
        self.user_properties += outcome.properties(PROP_PREFIX)
        if outcome.status == "inconclusive":  # never an expected failure (xfail)
            if state.inconclusive == "pass":
                return
            raise ClaimInconclusive(outcome)
        if outcome.status in ("fail", "xfail"):
            raise ClaimFailed(outcome)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None
                     ) -> Any:
        from .outcome import error_text

        if isinstance(excinfo.value, (ClaimFailed, ClaimInconclusive)):
            return excinfo.value.outcome.failure_text()
        if isinstance(excinfo.value, UnlearnSpecError):
            return error_text(self.claim, self.subject, excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.claim.loc.line - 1, f"{self.path.name}::{self.name}"


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

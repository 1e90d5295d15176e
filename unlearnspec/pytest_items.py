"""The pytest nodes a spec file becomes, and the session state they share.

A `SpecFile` yields one `ClaimItem` per claim × subject; an item asks the outcome path
(unlearnspec/outcome.py) for its verdict and only turns it into pytest's pass / fail / xfail.
The hooks that create and read these nodes are in pytest_plugin.py. Torch-free: the engine is
imported when a claim first runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import pytest

from .errors import UnlearnSpecError

if TYPE_CHECKING:
    from .engine.run import Run
    from .outcome import Outcome
    from .spec.tree import ClaimSpec, Spec

PROP_PREFIX = "unlearnspec."  # user_properties that are bookkeeping, not metric values


@dataclass
class PluginState:
    """The session's settings (from the options) and what it gathered."""

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
        """The spec's run, built on first use with every selected claim of it planned, so
        each model loads once."""
        path = spec.path
        if path not in self.runs:
            from .engine.run import Run
            from .outcome import claim_measurements

            stored = None
            if self.baseline_path:
                from .engine.stored_run import load_stored_run

                stored = load_stored_run(self.baseline_path, spec.path)
            run = Run(spec, cache_dir=self.cache_dir, device=self.device,
                      progress=self.progress, stored_run=stored)
            for item in items:
                if isinstance(item, ClaimItem) and item.spec.path == path:
                    run.plan(claim_measurements(run, item.claim, item.subject))
            self.runs[path] = run
        return self.runs[path]


STATE = pytest.StashKey[PluginState]()


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

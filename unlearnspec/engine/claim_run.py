"""What claim evaluation over seeds (seeds.py) and confidence intervals (confidence.py) needs
of a run: a structural type `Run` satisfies, so neither module imports run.py, which calls
them."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..metrics.result import MetricResult
    from ..spec.evaluate import Verdict
    from ..spec.tree import ClaimSpec, MetricRef, Spec
    from .measurement import Measurement
    from .measuring import Measurer
    from .transforms import SpecTransforms


class ClaimRun(Protocol):
    spec: "Spec"
    measurer: "Measurer"
    transforms: "SpecTransforms"

    def data_key(self, name: str) -> str: ...

    def metric_identity(self, metric: str) -> str: ...

    def measure(self, m: "Measurement") -> "MetricResult": ...

    @staticmethod
    def measurement_of(ref: "MetricRef", subject: str, exclude: tuple[str, ...] = ()
                       ) -> "Measurement": ...

    def measurements_of(self, claim: "ClaimSpec", subject: str) -> list["Measurement"]: ...

    def claim_exclusions(self, claim: "ClaimSpec") -> tuple[str, ...]: ...

    def value(self, ref: "MetricRef", subject: str, exclude: tuple[str, ...] = ()) -> float: ...

    def evaluate_one(self, claim: "ClaimSpec", subject: str) -> "Verdict": ...

    def check_same_tokenizer(self, claim: "ClaimSpec", subject: str) -> None: ...

    def bootstrap(self) -> Any: ...

"""The measurement key: which metric, on which model, after which transform, on which samples.

One frozen value the engine keys its results by and the reports read as fields (`metric`,
`model`, `transform`, `exclude`); its `label()` is only how a person reads it (the JSON
report's keys, the explanation's terms), never parsed back. Torch-free.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..spec.tree import MetricRef


@dataclass(frozen=True)
class Measurement:
    """`metric` (a spec metric name) on `model` after `transform` (None = full precision)."""

    metric: str
    model: str
    transform: str | None = None
    # relearning transforms (data: forget_holdout) whose held-out forget QA pairs this
    # measurement leaves out: every metric of a claim that uses one (transforms/holdout.py)
    exclude: tuple[str, ...] = ()

    @classmethod
    def of(cls, ref: "MetricRef", subject: str, exclude: tuple[str, ...] = ()) -> "Measurement":
        """A claim term's measurement for `subject` (a term without a model is the subject's)."""
        return cls(ref.metric, ref.model or subject, ref.transform, exclude)

    def sort_key(self) -> tuple[str, str, str, tuple[str, ...]]:
        """Full precision (no transform) first, then by name: a plain field-by-field order
        would compare None with a transform's name and raise."""
        return (self.metric, self.model, self.transform or "", self.exclude)

    def __lt__(self, other: "Measurement") -> bool:
        return self.sort_key() < other.sort_key()

    def label(self) -> str:
        """`knowmem_forget[ga_klr @ rtn4]`, the way a claim's explanation names the term,
        with `without rel's holdout` when it leaves relearning holdouts out."""
        from ..spec.evaluate import term_label

        without = f" without {', '.join(self.exclude)}'s holdout" if self.exclude else ""
        return term_label(self.metric, self.model, self.transform) + without

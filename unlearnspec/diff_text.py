"""What `unlearnspec diff` prints: the regime the overall γ points to, the verdict a release
engineer reads, and the table of the text output (thresholds and why in docs/theory.md)."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .numbers import format_number

if TYPE_CHECKING:
    from .diff import DiffReport

# Verdict thresholds on γ (reasoning in docs/theory.md)
UNDOES_BELOW = 0.3
SURVIVES_ABOVE = 0.8


def regime(gamma: float) -> str:
    """Which explanation of knowledge coming back the weights point to (docs/theory.md):
    `a` rounding snaps the update back onto the target's codes (γ < 0.3), `a-partial`
    (0.3 ≤ γ ≤ 0.8), `not-a` the update survives rounding, so only a fragile state (b)
    could still bring knowledge back, which weights alone cannot tell; `none` for δ = 0."""
    if math.isnan(gamma):
        return "none"
    if gamma < UNDOES_BELOW:
        return "a"
    return "a-partial" if gamma <= SURVIVES_ABOVE else "not-a"


def verdict(gamma: float, label: str, error_ratio: float = math.nan) -> str:
    """What a release engineer should do about a `label` build, from the overall γ and the
    quantizer's error relative to the update (thresholds in docs/theory.md). Never says the
    unlearning survives: γ rules regime (a) in or out; regime (b), a fragile unlearned state
    that any perturbation of the quantizer's size undoes, needs a behavioural check."""
    r = regime(gamma)
    if r == "none":
        return (f"{label}: no verdict: the subject's quantized weights equal the target's "
                f"before quantization (a zero update), so there is nothing to keep or undo")
    size = (f"; its error is {error_ratio:.1f}× the update's norm"
            if math.isfinite(error_ratio) else "")
    if r == "a":
        return (f"{label} will undo most of this unlearning (γ = {gamma:.2f}): regime (a), "
                f"rounding snaps the update back onto the target's codes{size}. Do not "
                f"release a {label} build of this model as unlearned; unlearn until the "
                f"update crosses {label}'s grid (larger steps, or SURE on the salient "
                f"modules) and diff again.")
    if r == "a-partial":
        return (f"{label} will partly undo this unlearning (γ = {gamma:.2f}): regime (a) in "
                f"part{size}. Before releasing a {label} build, check knowmem_forget @ "
                f"{label} against the target in a spec.")
    return (f"{label} keeps the unlearning update in the weights (γ = {gamma:.2f}): rounding "
            f"does not snap it back, so regime (a) does not apply{size}. The weights cannot "
            f"tell whether the unlearned state is fragile (regime (b)): before releasing a "
            f"{label} build, measure knowmem_forget @ {label} beside a matched-noise control "
            f"({{kind: noise, matched_to: {label}}}) and sharpness on subject vs target.")


def render_text(report: DiffReport, *, per_tensor: bool = False) -> str:
    """A table: one row per layer (or tensor) × transform, then overall and the verdicts."""
    lines = [f"target:  {report.target}", f"subject: {report.subject}", ""]
    head = (f"{'layer':<32} {'transform':<10} {'weights':>10} {'‖δ‖/‖w‖':>10} {'flips':>9} "
            f"{'γ':>7} {'‖err‖/‖δ‖':>10}")
    lines += [head, "-" * len(head)]
    if per_tensor:
        groups = {td.name: report._rows([td]) for td in report.tensors}
    else:
        groups = report.layers()
    groups = {**groups, "overall": report.overall()}
    for key, rows in groups.items():
        if key == "overall":
            lines.append("-" * len(head))
        for label, r in rows.items():
            if r.n == 0:
                continue
            lines.append(f"{key[-32:]:<32} {label:<10} {r.n:>10} "
                         f"{format_number(r.relative_update, spec='.2e', nan='—'):>10} "
                         f"{format_number(r.flip_rate, spec='.4f', nan='—'):>9} "
                         f"{format_number(r.gamma, spec='.3f', nan='—'):>7} "
                         f"{format_number(r.error_ratio, spec='.2f', nan='—'):>10}")
    lines.append("")
    lines += list(report.verdicts().values())
    for s in report.skipped:
        lines.append(f"not compared: {s}")
    return "\n".join(lines)

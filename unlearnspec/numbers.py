"""How a number prints for people: one rule for explanations, the terminal matrix, the
Markdown/HTML reports, their charts and `unlearnspec diff`'s table. Torch-free, imports
nothing of the package, so every layer may use it."""
from __future__ import annotations

import math
from typing import Any

# the JSON reports spell the non-finite floats as strings (JSON has no such numbers)
_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def as_float(value: Any) -> float | None:
    """A number, or a report's spelling of one ("nan" -> nan), as a float; None for anything
    else (None, a bool, other text)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value in _NONFINITE:
        return _NONFINITE[value]
    return None


def format_number(value: Any, *, spec: str | None = None, nan: str = "nan",
                  fixed_below: float = 1e6) -> str:
    """One decimal for everyday magnitudes (51.4), three significant digits for small or huge
    ones (0.0123, 2.5e+07), where one decimal would hide the number; "0" for zero.

    `value` may be a report's spelling of a number ("nan", "inf", "-inf"); anything that is
    not a number (None, a bool, other text) prints as "". `spec` (a format spec such as
    ".2e") replaces the rule for fixed-width tables; `nan` is what NaN prints as; `fixed_below`
    is the magnitude from which one decimal gives way to significant digits (narrow chart
    axes use 1e5)."""
    v = as_float(value)
    if v is None:
        return ""
    if math.isnan(v):
        return nan
    if spec is not None:
        return format(v, spec)
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == 0:
        return "0"
    return f"{v:.1f}" if 1 <= abs(v) < fixed_below else f"{v:.3g}"

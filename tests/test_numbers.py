"""One number format for explanations, reports, charts and the diff table."""
from __future__ import annotations

import math

import pytest
from hypothesis import given, strategies as st

from unlearnspec.numbers import as_float, format_number
from unlearnspec.report.collect import jsonable


@pytest.mark.parametrize("value, text", [
    (51.43, "51.4"), (-13.26, "-13.3"), (5.0, "5.0"), (0.0, "0"), (0.0123, "0.0123"),
    (0.95, "0.95"), (2.5e7, "2.5e+07"), (1e-12, "1e-12"), (3, "3.0"),
    (math.nan, "nan"), (math.inf, "inf"), (-math.inf, "-inf"),
])
def test_format_number(value: float, text: str) -> None:
    assert format_number(value) == text


@pytest.mark.parametrize("value", [None, True, "n/a", [1.0]])
def test_what_is_not_a_number_prints_as_nothing(value: object) -> None:
    assert format_number(value) == ""
    assert as_float(value) is None


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_a_report_number_prints_as_the_number_did(value: float) -> None:
    # reports store nan/inf as strings: the matrix read from a report shows what pytest showed
    assert format_number(jsonable(value)) == format_number(value)


def test_a_chart_axis_switches_to_significant_digits_sooner() -> None:
    assert format_number(123456.0) == "123456.0"
    assert format_number(123456.0, fixed_below=1e5) == "1.23e+05"


def test_a_fixed_width_table_gives_its_spec_and_its_nan() -> None:
    assert format_number(0.01234, spec=".2e", nan="—") == "1.23e-02"
    assert format_number(math.nan, spec=".2e", nan="—") == "—"

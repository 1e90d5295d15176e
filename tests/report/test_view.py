"""What every report shows: bit-widths, row order, which cells a claim's verdict marks."""
from __future__ import annotations

import pytest

from unlearnspec.report.collect import status_of, terms_of
from unlearnspec.report.json_report import build_report
from unlearnspec.report.view import bit_plots, bit_width, build_view, layer_plots, layer_value


def _view(records):
    return build_view(build_report(records, spec_paths=[], started=0.0, finished=1.0))


@pytest.mark.parametrize("name, transform, bits", [
    ("fp", None, 32),
    ("rtn4", {"kind": "rtn", "config": {"bits": 4}}, 4),
    ("q8", {"kind": "gptq", "config": {"bits": 8}}, 8),
    ("int8", {"kind": "bnb", "config": {"mode": "int8"}}, 8),
    ("nf4", {"kind": "bnb", "config": {"mode": "nf4"}}, 4),
    ("fp4", {"kind": "bnb", "config": {"mode": "fp4"}}, 4),
    ("bf16", {"kind": "dtype", "config": {"dtype": "bfloat16"}}, 16),
    ("mine", {"kind": "someone_elses", "config": {}}, None),
    ("gone", None, None),
])
def test_bit_width(name, transform, bits):
    assert bit_width(name, transform) == bits


def test_rows_put_references_first_and_full_precision_before_fewer_bits(records):
    view = _view(records)
    assert view.references == ["target", "retrain"]  # target: the model others start from
    assert view.subjects == ["ga_klr", "npo_klr", "npo_klr_sure"]
    assert view.rows[:4] == [("target", "fp"), ("target", "rtn8"), ("target", "rtn4"),
                             ("retrain", "fp")]
    assert view.rows[4:7] == [("ga_klr", "fp"), ("ga_klr", "rtn8"), ("ga_klr", "rtn4")]


def test_cells_carry_the_worst_verdict_of_claims_on_their_subject(records):
    view = _view(records)
    assert view.cells[("ga_klr", "rtn4", "knowmem_forget")].status == "fail"
    assert view.cells[("npo_klr_sure", "rtn4", "knowmem_forget")].status == "pass"
    assert view.cells[("ga_klr", "rtn4", "code_flip_rate")].status == "xfail"
    assert view.cells[("npo_klr", "rtn4", "code_flip_rate")].status == "error"
    # a reference every claim reads is not painted by one subject's failure
    assert view.cells[("retrain", "fp", "knowmem_forget")].status is None
    # the fp baseline shown in the explanation is not a term of the comparison
    assert view.cells[("ga_klr", "fp", "knowmem_forget")].status is None


def test_without_model_descriptions_references_are_models_no_claim_is_about(records):
    for r in records:
        r.pop("models")
    view = _view(records)
    assert set(view.references) == {"target", "retrain"}


def test_status_of_a_failed_item_without_verdict_is_error():
    assert status_of({"outcome": "failed", "verdict": None}) == "error"
    assert status_of({"outcome": "passed", "verdict": None}) == "error"
    assert status_of({"outcome": "xfailed", "verdict": None}) == "xfail"
    assert status_of({"outcome": "failed", "verdict": {"passed": False}}) == "fail"


def test_terms_prefer_an_explicit_list_then_the_comparison_line():
    record = {"measurements": {"a[x]": {}, "a[x @ q]": {}, "a[r]": {}},
              "verdict": {"terms": ["a[x @ q]"], "explanation": "a[x] = 1 <= a[r] = 2"}}
    assert terms_of(record) == ["a[x @ q]"]
    del record["verdict"]["terms"]
    assert terms_of(record) == ["a[r]", "a[x]"]
    record["verdict"] = None
    assert terms_of(record) == ["a[r]", "a[x @ q]", "a[x]"]


def test_bit_plots_have_a_line_per_subject_and_reference_lines(records):
    plots, notes = bit_plots(_view(records))
    assert [p.metric for p in plots] == ["knowmem_forget", "verbmem_forget"]
    knowmem = plots[0]
    assert [s.model for s in knowmem.series] == ["ga_klr", "npo_klr", "npo_klr_sure"]
    assert dict(knowmem.series[0].points) == {4: 100.0, 8: 3.4, 32: 3.0}
    assert dict(knowmem.reference_lines) == {"target": 60.2, "retrain": 4.1}
    assert notes == []


def test_transform_without_bit_width_is_named_not_dropped(records):
    records[0]["transforms"]["smooth"] = {"kind": "mine", "config": {}}
    records[0]["measurements"]["knowmem_forget[ga_klr @ smooth]"] = {
        "metric": "knowmem_forget", "kind": "knowmem", "model": "ga_klr", "transform": "smooth",
        "key": "k", "result": {"value": 1.0, "n": 1, "per_sample": [1.0], "details": {}}}
    view = _view(records)
    _, notes = bit_plots(view)
    assert any("'smooth'" in n and "bit-width is unknown" in n for n in notes)
    assert ("ga_klr", "smooth") in view.rows


def test_layer_plots_in_natural_order(records):
    plots = layer_plots(_view(records))
    assert len(plots) == 3
    names = [n for n, _ in plots[0].bars]
    assert names == sorted(names, key=lambda n: int(n.split(".")[2]))


@pytest.mark.parametrize("entry, value", [
    (0.5, 0.5), ({"flip_rate": 0.1, "n": 9}, 0.1), ({"n": 9, "other": 0.3}, 9.0),
    ({"name": "x"}, None), ("text", None)])
def test_layer_value(entry, value):
    assert layer_value("code_flip_rate", entry) == value


def test_a_measurement_without_a_relearning_holdout_never_fills_a_full_set_cell(records):
    import copy

    before = _view(records).cells[("ga_klr", "fp", "knowmem_forget")].value
    changed = copy.deepcopy(records)
    first = next(r for r in changed if r["subject"] == "ga_klr")
    label = "knowmem_forget[ga_klr] without rel50's holdout"
    plain = first["measurements"]["knowmem_forget[ga_klr]"]
    first["measurements"][label] = {**copy.deepcopy(plain), "without_holdout_of": ["rel50"],
                                    "result": {**plain["result"], "value": -1.0, "n": 3}}
    assert _view(changed).cells[("ga_klr", "fp", "knowmem_forget")].value == before != -1.0

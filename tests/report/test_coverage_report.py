"""Coverage and backend settings in the reports: each transformed measurement carries the
share of the decoder its transform quantized (JSON), the HTML matrix has a `decoder` column,
the terminal matrix a footnote, and bnb's full BitsAndBytesConfig is recorded."""
from __future__ import annotations

import copy
import json

import jsonschema
import pytest

from report_helpers import coverage
from unlearnspec.report.html import render_html
from unlearnspec.report.json_report import build_report, dumps
from unlearnspec.report.schema import REPORT_SCHEMA
from unlearnspec.report.terminal import render_records


def _report(records):
    return build_report(records, spec_paths=[], started=0.0, finished=1.0)


def _validate(report):
    jsonschema.Draft202012Validator(REPORT_SCHEMA).validate(json.loads(dumps(report)))


def test_every_transformed_measurement_records_its_coverage(records):
    report = _report(records)
    _validate(report)
    ms = report["measurements"]
    assert ms["knowmem_forget[ga_klr @ rtn4]"]["coverage"]["decoder"]["share"] == 1.0
    assert ms["knowmem_forget[ga_klr]"]["coverage"] is None
    assert ms["code_flip_rate[ga_klr @ rtn4]"]["coverage"]["source"] == "stream"


def test_schema_rejects_a_coverage_without_its_decoder_total(records):
    report = json.loads(dumps(_report(records)))
    del report["measurements"]["knowmem_forget[ga_klr @ rtn4]"]["coverage"]["decoder"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(REPORT_SCHEMA).validate(report)


def _with_partial(records, share):
    out = copy.deepcopy(records)
    for r in out:
        for m in r["measurements"].values():
            if m["model"] == "npo_klr" and m["transform"] == "rtn4":
                m["coverage"] = coverage("model", share)
    return out


def test_html_matrix_has_a_decoder_coverage_column(records):
    html = render_html(_report(_with_partial(records, 0.14)))
    assert "<th title=\"share of the decoder's weights the transform quantized\">decoder</th>" in html
    assert 'data-model="npo_klr" data-transform="rtn4"><td>npo_klr</td><td>rtn4</td>' \
           '<td class="num">4</td><td class="num">14%</td>' in html
    assert 'data-model="ga_klr" data-transform="rtn4"><td>ga_klr</td><td>rtn4</td>' \
           '<td class="num">4</td><td class="num">100%</td>' in html


def test_terminal_matrix_footnote_says_what_was_quantized(records):
    assert "decoder coverage: every transformed row quantized 100% of its decoder weights" in \
        render_records(records, width=200)
    text = render_records(_with_partial(records, 0.5), width=400)
    assert "npo_klr @ rtn4 50%" in text and "ga_klr @ rtn4 100%" in text


def test_bnb_settings_are_recorded_in_full(records):
    out = copy.deepcopy(records)
    settings = {"load_in_4bit": True, "bnb_4bit_quant_type": "fp4",
                "bnb_4bit_compute_dtype": "float32", "bnb_4bit_use_double_quant": False}
    for r in out:
        r["transforms"]["fp4"] = {"kind": "bnb", "config": {"mode": "fp4"}, "settings": settings}
    report = _report(out)
    _validate(report)
    assert report["transforms"]["fp4"]["settings"] == settings
    assert "bnb_4bit_quant_type" in render_html(report)

"""The JSON run report: schema, determinism, dedup, atomic write / load, shard merging."""
from __future__ import annotations

import copy
import hashlib
import json
import random

import jsonschema
import pytest
from hypothesis import given, settings, strategies as st

from unlearnspec.report.collect import ReportError
from unlearnspec.report.json_report import (build_report, dumps, load_report, merge_reports,
                                            write_report)
from unlearnspec.report.schema import REPORT_SCHEMA


def _build(records, tmp_path=None, started=1_700_000_000.0, finished=1_700_000_060.0):
    specs = [tmp_path / "tiny.yaml"] if tmp_path else []
    return build_report(records, spec_paths=specs, started=started, finished=finished)


def _validate(report):
    jsonschema.Draft202012Validator(REPORT_SCHEMA).validate(json.loads(dumps(report)))


def test_schema_is_valid_draft_2020_12():
    jsonschema.Draft202012Validator.check_schema(REPORT_SCHEMA)


def test_report_validates_against_published_schema(records, tmp_path):
    (tmp_path / "tiny.yaml").write_text("claims: []\n")
    _validate(_build(records, tmp_path))


def test_schema_rejects_a_renamed_field(records):
    data = json.loads(dumps(_build(records)))
    data["claims"][0]["verdikt"] = data["claims"][0].pop("verdict")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, REPORT_SCHEMA, cls=jsonschema.Draft202012Validator)


def test_spec_hash_and_versions(records, tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text("claims: []\n")
    report = _build(records, tmp_path)
    assert report["specs"] == [{"path": str(spec),
                                "sha256": hashlib.sha256(spec.read_bytes()).hexdigest()}]
    assert report["schema_version"] == 1
    assert report["packages"]["unlearnspec"] == "0.1.0"
    assert {"torch", "transformers", "tokenizers", "bitsandbytes", "python"} <= set(
        report["packages"])


def test_same_records_in_any_order_give_identical_bytes_but_timestamps(records):
    a = _build(records, started=1.0, finished=2.0)
    shuffled = copy.deepcopy(records)
    random.Random(3).shuffle(shuffled)
    b = _build(shuffled, started=100.0, finished=200.0)
    assert a["started"] != b["started"]
    for r in (a, b):
        r["started"] = r["finished"] = "T"
    assert dumps(a) == dumps(b)


def test_measurements_are_kept_once_and_claims_refer_to_them(records):
    report = _build(records)
    labels = {label for r in records for label in r["measurements"]}
    assert set(report["measurements"]) == labels
    for claim in report["claims"]:
        assert "models" not in claim and "measurements" not in claim
        assert set(claim["cells"]) <= labels
    fail = next(c for c in report["claims"]
                if c["claim"] == "no-recovery-rtn4" and c["subject"] == "ga_klr")
    # the comparison's terms, not the fp baseline the plugin adds for the explanation
    assert fail["terms"] == ["knowmem_forget[ga_klr @ rtn4]", "knowmem_forget[retrain]"]
    assert "knowmem_forget[ga_klr]" in fail["cells"]
    assert fail["status"] == "fail" and fail["verdict"]["margin"] == pytest.approx(-90.9)


def test_summary_counts_outcomes_statuses_and_work(records):
    summary = _build(records)["summary"]
    assert summary["claims"] == len(records)
    assert summary["outcomes"] == {"passed": 6, "failed": 5, "xfailed": 1, "xpassed": 0}
    assert summary["statuses"]["error"] == 1  # failed without a verdict: not a plain fail
    assert summary["work"]["measured"] == sum(r["counts"]["measured"] for r in records)


def test_non_finite_values_are_strict_json(records):
    records[0]["measurements"]["knowmem_forget[retrain]"]["result"]["value"] = float("nan")
    for r in records:  # the same measurement everywhere, as a real run reports it
        if "knowmem_forget[retrain]" in r["measurements"]:
            r["measurements"]["knowmem_forget[retrain]"] = records[0]["measurements"][
                "knowmem_forget[retrain]"]
    text = dumps(_build(records))
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON {c}"))
    assert json.loads(text)["measurements"]["knowmem_forget[retrain]"]["result"]["value"] == "nan"
    _validate(json.loads(text))


def test_two_records_disagreeing_on_a_measurement_is_an_error(records):
    records[-2]["measurements"]["code_flip_rate[npo_klr @ rtn4]"]["key"] = "other"
    with pytest.raises(ReportError, match=r"code_flip_rate\[npo_klr @ rtn4\].*many-flips"):
        _build(records)


def test_write_is_atomic_and_load_round_trips(records, tmp_path):
    path = write_report(_build(records), tmp_path / "out" / "run.json")
    assert [p.name for p in path.parent.iterdir()] == ["run.json"]  # no temp file left
    assert load_report(path) == json.loads(dumps(_build(records)))


@pytest.mark.parametrize("content, message", [
    ('{"schema_version": 2}', "upgrade unlearnspec"),
    ('{"claims": []}', "not an unlearnspec run report"),
    ("{not json", "not a readable JSON report"),
])
def test_load_refuses_what_it_cannot_read(tmp_path, content, message):
    path = tmp_path / "run.json"
    path.write_text(content)
    with pytest.raises(ReportError, match=message) as info:
        load_report(path)
    assert str(path) in str(info.value)


def test_load_missing_file_says_how_to_make_one(tmp_path):
    with pytest.raises(ReportError, match="--unlearn-report"):
        load_report(tmp_path / "nope.json")


def _comparable(report):
    return {k: report[k] for k in ("models", "transforms", "measurements", "claims", "summary")}


@settings(max_examples=25, deadline=None)
@given(st.lists(st.booleans(), min_size=12, max_size=12))
def test_merging_shards_equals_the_whole_run(make_records, in_first):
    records = make_records()
    a = [r for r, f in zip(records, in_first) if f]
    b = [r for r, f in zip(records, in_first) if not f]
    merged = merge_reports([_build(a), _build(b)], sources=["a.json", "b.json"])
    assert _comparable(merged) == _comparable(_build(records))
    assert [s["source"] for s in merged["shards"]] == ["a.json", "b.json"]
    _validate(merged)


def test_merge_conflict_names_both_shards_and_the_label(records):
    a, b = _build(records[:6]), _build(records[6:])
    b = copy.deepcopy(b)
    b["measurements"]["knowmem_forget[retrain]"]["result"]["value"] = 99.0
    with pytest.raises(ReportError) as info:
        merge_reports([a, b], sources=["shard1.json", "shard2.json"])
    text = str(info.value)
    assert "knowmem_forget[retrain]" in text and "shard1.json" in text and "shard2.json" in text


def test_merge_of_nothing_is_an_error():
    with pytest.raises(ReportError, match="at least one"):
        merge_reports([])

"""`unlearnspec report RUN.json ... -o out.html --markdown out.md --json merged.json`."""
from __future__ import annotations

import json

import jsonschema

from unlearnspec.cli import main
from unlearnspec.report.json_report import build_report, write_report
from unlearnspec.report.schema import REPORT_SCHEMA


def test_report_merges_shards_and_writes_every_format(records, tmp_path):
    a = write_report(build_report(records[:5], spec_paths=[], started=0.0, finished=1.0),
                     tmp_path / "a.json")
    b = write_report(build_report(records[5:], spec_paths=[], started=2.0, finished=3.0),
                     tmp_path / "b.json")
    out = tmp_path / "out"
    code = main(["report", str(a), str(b), "-o", str(out / "r.html"),
                 "--markdown", str(out / "r.md"), "--json", str(out / "m.json")])
    assert code == 0
    merged = json.loads((out / "m.json").read_text())
    jsonschema.validate(merged, REPORT_SCHEMA, cls=jsonschema.Draft202012Validator)
    assert merged["summary"]["claims"] == len(records)
    assert len(merged["shards"]) == 2
    assert (out / "r.html").read_text().count('<svg class="plot"') == 5
    assert "100.0 ❌" in (out / "r.md").read_text()


def test_report_errors_are_sentences_not_tracebacks(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": 7}')
    assert main(["report", str(bad), "-o", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert "bad.json" in err and "schema_version 7" in err and "Traceback" not in err
    assert not (tmp_path / "r.html").exists()
    assert main(["report", str(bad)]) == 2
    assert "nothing to write" in capsys.readouterr().err

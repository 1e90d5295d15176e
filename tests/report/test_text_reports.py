"""Terminal and Markdown output: the matrix with each claim's verdict beside its cells."""
from __future__ import annotations

from unlearnspec.engine.measurement import Measurement
from unlearnspec.report.json_report import build_report
from unlearnspec.report.markdown import render_markdown_report
from unlearnspec.report.terminal import render_markdown, render_matrix, render_records


def _row(text, model, transform):
    return next(line for line in text.splitlines()
                if f" {model} " in f" {line} " and f" {transform} " in line)


def test_terminal_marks_cells_and_lists_verdicts_in_their_row(records):
    text = render_records(records, width=200)
    lines = text.splitlines()
    ga4 = next(i for i, line in enumerate(lines) if line.lstrip().startswith("ga_klr"))
    row = lines[ga4 + 2]  # ga_klr: fp, rtn8, rtn4
    assert "rtn4" in row and "100.0 ✗" in row and "✗ no-recovery-rtn4 (-90.9)" in row
    # one verdict per line: the rtn4 row's other verdicts follow on lines of their own
    below = []
    for line in lines[ga4 + 3:]:
        if line.split("│")[0].strip() or line.split("│")[1].strip():
            break  # the next model or transform row
        below.append(line)
    assert any("x many-flips" in line for line in below), lines
    assert all(line.count("(") == 1 for line in below if "│" in line)
    assert "E many-flips" in text  # the item that could not be evaluated
    retrain = next(line for line in lines if "retrain" in line)
    assert "4.1" in retrain and "✓" not in retrain and "✗" not in retrain
    assert text.index("target") < text.index("retrain") < text.index("ga_klr")


def test_terminal_colour_only_when_asked(records):
    assert "\x1b[" not in render_records(records, width=200)
    coloured = render_records(records, width=200, color=True)
    assert "\x1b[1;31m" in coloured  # bold red on the failing cells


def test_value_matrix_reads_measurement_fields():
    values = {Measurement("knowmem_forget", "ga_klr", "rtn4"): 100.0,
              Measurement("knowmem_forget", "ga_klr"): 3.0,
              # another sample set than the cell's: not in the full-set matrix
              Measurement("knowmem_forget", "ga_klr", "rel", ("rel",)): 1.5}
    text = render_matrix(values, width=80)
    assert "100.0" in text and "3.0" in text and "1.5" not in text and "rel" not in text
    md = render_markdown(values)
    assert md.splitlines()[0] == "| model | transform | knowmem_forget |"
    assert "| ga_klr | rtn4 | 100.0 |" in md


def test_markdown_report_matrix_and_claims(records):
    md = render_markdown_report(build_report(records, spec_paths=[], started=0.0, finished=1.0))
    lines = md.splitlines()
    assert lines[0] == "### unlearnspec: 12 claim items (6 pass, 4 fail, 1 error, 1 xfail)"
    header = next(line for line in lines if line.startswith("| model"))
    assert header == ("| model | transform | code_flip_rate | knowmem_forget | verbmem_forget"
                      " | claims |")
    assert "| target (ref) | rtn4 |  | 52.0 | 42.6 |  |" in lines
    ga4 = next(line for line in lines if line.startswith("| **ga_klr** | rtn4 |"))
    assert "100.0 ❌" in ga4 and "❌ no-recovery-rtn4" in ga4
    assert ("- ❌ **FAIL** no-recovery-rtn4 for ga_klr: `knowmem_forget @ rtn4 <= retrain + 5`"
            " (margin -90.9)") in lines
    assert "  could not be evaluated (see the test log)" in lines


def test_markdown_escapes_table_breaking_text(records):
    for r in records:
        r["claim"] = "a|b"
    md = render_markdown_report(build_report(records, spec_paths=[], started=0.0, finished=1.0))
    row = next(line for line in md.splitlines() if line.startswith("| **ga_klr** | rtn4 |"))
    assert "a\\|b" in row and row.count(" | ") == 5  # still six columns

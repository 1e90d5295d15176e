"""The HTML page: matrix values, one <svg> per plot with its series, escaping, nothing fetched."""
from __future__ import annotations

import re

import pytest

from unlearnspec.report.html import render_html
from unlearnspec.report.json_report import build_report


@pytest.fixture
def page(records):
    return render_html(build_report(records, spec_paths=[], started=0.0, finished=1.0))


def _svgs(page):
    return re.findall(r"<svg class=\"plot\"(.*?)</svg>", page, flags=re.S)


def test_matrix_shows_every_value_with_its_verdict_colour(page):
    row = re.search(r'<tr class="subject" data-model="ga_klr" data-transform="rtn4">(.*?)</tr>',
                    page).group(1)
    assert '<td class="num fail"' in row and ">100.0</td>" in row
    assert '<td class="num xfail"' in row and ">0.004</td>" in row
    ref = re.search(r'<tr class="ref" data-model="retrain" data-transform="fp">(.*?)</tr>',
                    page).group(1)
    assert ">4.1</td>" in ref and "fail" not in ref


def test_one_svg_per_plot_with_a_series_per_subject(page):
    svgs = _svgs(page)
    bit = [s for s in svgs if 'data-plot="bitwidth"' in s]
    layers = [s for s in svgs if 'data-plot="per-layer"' in s]
    assert len(bit) == 2 and len(layers) == 3
    for s in bit:
        assert s.count('<g class="series"') == 3
        assert s.count('<g class="reference"') == 2
        assert s.count("<polyline") == 3 and s.count("<circle") == 9  # fp, 8-bit, 4-bit
    assert all(s.count('<rect class="bar"') == 3 for s in layers)


def test_claims_with_explanations(page):
    assert page.count('<details class="claim"') == 12
    assert "knowmem_forget[ga_klr @ rtn4] = 100.0  &gt;  knowmem_forget[retrain] + 5" in page
    assert "could not be evaluated" in page


def test_user_text_is_escaped(records):
    evil = '<script>alert("x")</script>&'
    for r in records:
        r["claim"] = evil
        r["xfail"] = r["xfail"] and evil
    records[0]["models"]["ga_klr"]["config"] = {"note": "<img src=x onerror=alert(1)>"}
    page = render_html(build_report(records, spec_paths=[], started=0.0, finished=1.0))
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;" in page
    assert "&lt;=" in page  # the assertion's own comparison


def test_page_fetches_nothing(page):
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, flags=re.I)
    assert "@import" not in page and "url(" not in page and "<script" not in page
    assert "http://" not in page and "https://" not in page

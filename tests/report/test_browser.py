"""The HTML page in a real browser: headless Chromium renders it with no console errors,
no network requests, and plots that are visible (coloured pixels in a screenshot).

Chromium is a CI dependency (`apt-get install -y chromium`); a missing browser fails this
test, since a skipped check would pass a page nobody looked at. Set
UNLEARNSPEC_SKIP_BROWSER=1 to skip it deliberately.
"""
from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from unlearnspec.report.html import render_html
from unlearnspec.report.json_report import build_report

# Chromium's own services (updates, time, accounts) call these hosts whatever the page does
BROWSER_HOSTS = re.compile(r"^[a-z]+://([^/]*\.)?(google\.com|googleapis\.com|gvt1\.com|"
                           r"gstatic\.com|googleusercontent\.com)(:\d+)?/")
FLAGS = ["--host-resolver-rules=MAP * ~NOTFOUND",  # nothing leaves the machine, even if asked
         "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--enable-logging=stderr", "--v=0"]


def _chromium() -> str:
    if os.environ.get("UNLEARNSPEC_SKIP_BROWSER") == "1":
        pytest.skip("UNLEARNSPEC_SKIP_BROWSER=1")
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("headless Chromium is needed to check the HTML report: install it "
                "(`apt-get install -y chromium`) or set UNLEARNSPEC_SKIP_BROWSER=1")


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "profile"
    return subprocess.run([_chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120, check=False)


def _page_requests(tmp_path: Path, page: Path) -> tuple[str, list[str], list[str]]:
    """Load `page`; its DOM, the console messages, and the network URLs it requested
    (from Chromium's NetLog, minus the browser's own service calls)."""
    netlog = tmp_path / "netlog.json"
    done = _run(tmp_path, f"--log-net-log={netlog}", "--dump-dom", page.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    urls = set(re.findall(r'"url":"([a-z]+://[^"]*)"', netlog.read_text(errors="replace")))
    fetched = sorted(u for u in urls if not BROWSER_HOSTS.match(u))
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return done.stdout, console, fetched


def _png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit RGB/RGBA PNG (what Chromium writes) into rows of raw pixels."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6), (depth, color)
            bpp = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw, stride, rows, prev = zlib.decompress(idat), width * bpp, [], bytearray(width * bpp)
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, bpp, rows


@pytest.fixture(scope="module")
def page_file(tmp_path_factory, make_records) -> Path:
    report = build_report(make_records(), spec_paths=[], started=0.0, finished=1.0)
    path = tmp_path_factory.mktemp("html") / "report.html"
    path.write_text(render_html(report), encoding="utf-8")
    return path


def test_dom_renders_matrix_and_plots_without_console_errors_or_requests(page_file, tmp_path):
    dom, console, fetched = _page_requests(tmp_path, page_file)
    assert dom.count('<svg class="plot"') == 5
    assert 'data-model="ga_klr" data-transform="rtn4"' in dom and ">100.0</td>" in dom
    assert console == [], console
    assert fetched == [], fetched


def test_the_checks_catch_a_page_that_fetches_and_errs(tmp_path):
    # a deliberately bad page, to show the two checks above can fail
    bad = tmp_path / "bad.html"
    bad.write_text('<html><body><img src="http://192.0.2.1/x.png">'
                   '<script>console.error("boom")</script></body></html>')
    _, console, fetched = _page_requests(tmp_path, bad)
    assert fetched == ["http://192.0.2.1/x.png"]
    assert any("boom" in line for line in console)


def test_screenshot_shows_coloured_plots(page_file, tmp_path):
    shot = tmp_path / "shot.png"
    done = _run(tmp_path, "--window-size=1000,1400", f"--screenshot={shot}", page_file.as_uri())
    assert shot.is_file(), done.stderr[-2000:]
    width, bpp, rows = _png_pixels(shot)
    colours = set()
    non_white = 0
    for row in rows[::2]:
        for x in range(0, width * bpp, bpp * 2):
            r, g, b = row[x], row[x + 1], row[x + 2]
            if (r, g, b) != (255, 255, 255):
                non_white += 1
            if max(r, g, b) - min(r, g, b) > 80:  # saturated: plot lines, verdict colours
                colours.add((r // 32, g // 32, b // 32))
    assert non_white > 2000, "the page rendered (nearly) blank"
    assert len(colours) >= 4, f"expected coloured plot lines and badges, saw {colours}"

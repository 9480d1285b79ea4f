"""End to end in a real headless Chromium: `streamlit run app.py` on a free localhost port, driven by Playwright.

Measures time to the first result after page load and the re-render time after a widget change, checks that
changing the GPU changes the numbers and lands in the URL, and saves screenshots and timings to test-artifacts/.
Playwright cannot download browsers here: the test drives the system Chromium that tests/run.sh installs.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# limits these tests enforce: loose enough for a 2-core runner busy with the rest of the suite (measured there:
# up to 6.2 s and 0.65 s), tight enough to catch a page that hangs or a rerun that recomputes everything; the
# README records the numbers measured on a quieter machine (targets: 3 s and 0.3 s)
FIRST_RESULT_LIMIT_S = 15.0
RERENDER_LIMIT_S = 3.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `bash tests/run.sh`, which installs Debian's chromium package "
                    "(Playwright cannot download its own browser here)")
    port = _free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless=true", f"--server.port={port}",
           "--server.address=127.0.0.1", "--browser.gatherUsageStats=false", "--server.fileWatcherType=none"]
    ARTIFACTS.mkdir(exist_ok=True)
    with open(ARTIFACTS / "streamlit.log", "w") as log:
        yield from _serve(cmd, port, log)


def _serve(cmd: list[str], port: int, log):
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"streamlit exited with {proc.returncode}; see test-artifacts/streamlit.log")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("streamlit did not answer /_stcore/health within 60 s")
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the playwright package is missing: run `bash tests/run.sh` (installs the test extras)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _metric(page, label: str):
    return page.locator('[data-testid="stMetric"]', has_text=label).locator('[data-testid="stMetricValue"]')


def _wait_idle(page, timeout_ms: float = 30_000) -> None:
    """Until the script run finished (the 'running' status widget is gone)."""
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " || !document.querySelector('[data-testid=\"stStatusWidget\"]').innerText.match(/Running|Stop/)",
        timeout=timeout_ms)


def _load(browser, url: str) -> tuple[object, float, float]:
    """A new page on `url`: (page, seconds from navigation to the first TPOT number, of which before the
    browser's load event)."""
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    t0 = time.perf_counter()
    page.goto(url)
    value = _metric(page, "TPOT")
    value.wait_for(state="visible", timeout=60_000)
    page.wait_for_function("el => /\\d/.test(el.innerText)", arg=value.element_handle(), timeout=60_000)
    total = time.perf_counter() - t0
    load_s = page.evaluate("() => performance.getEntriesByType('navigation')[0].loadEventEnd / 1000")
    return page, total, load_s


def _change(page, label: str, option: str, watch: str) -> tuple[str, float]:
    """Pick `option` in the selectbox labelled `label`; seconds until the `watch` metric shows a new value."""
    old = _metric(page, watch).inner_text()
    box = page.get_by_label(label, exact=True)
    box.click()
    page.keyboard.type(option)
    page.get_by_role("option", name=option).first.wait_for(timeout=10_000)
    t0 = time.perf_counter()
    page.keyboard.press("Enter")
    page.wait_for_function("([el, old]) => el.innerText !== old && /\\d/.test(el.innerText)",
                           arg=[_metric(page, watch).element_handle(), old], timeout=30_000)
    return _metric(page, watch).inner_text(), time.perf_counter() - t0


def test_first_result_gpu_change_and_url(server, browser):
    timings: dict[str, float] = {}
    page, timings["first_result_cold_s"], timings["page_load_event_cold_s"] = _load(browser, server)
    _wait_idle(page)
    tpot_h100 = _metric(page, "TPOT").inner_text()
    tput_h100 = _metric(page, "tok/s per GPU").inner_text()
    assert "ms" in tpot_h100 and float(tput_h100.replace(",", "")) > 100
    page.screenshot(path=str(ARTIFACTS / "app-estimate-h100.png"), full_page=True)

    tpot_h200, timings["rerender_new_gpu_s"] = _change(page, "GPU", "h200", "TPOT")
    _wait_idle(page)
    assert tpot_h200 != tpot_h100
    assert _metric(page, "tok/s per GPU").inner_text() != tput_h100
    assert parse_qs(urlparse(page.url).query).get("gpu") == ["h200"]  # the scenario is in the URL
    page.screenshot(path=str(ARTIFACTS / "app-estimate-h200.png"), full_page=True)

    back, timings["rerender_cached_gpu_s"] = _change(page, "GPU", "h100-sxm", "TPOT")
    assert back == tpot_h100
    _wait_idle(page)

    # a fresh page on the shared link reproduces the H200 scenario (the server is warm now)
    page2, timings["first_result_warm_s"], timings["page_load_event_warm_s"] = _load(browser, f"{server}/?gpu=h200")
    assert _metric(page2, "TPOT").inner_text() == tpot_h200
    page2.close()

    # another page's charts render without an error
    page.get_by_text("Roofline", exact=True).click()
    page.locator('[data-testid="stVegaLiteChart"], .vega-embed').first.wait_for(timeout=30_000)
    _wait_idle(page)
    assert page.locator('[data-testid="stException"]').count() == 0
    page.screenshot(path=str(ARTIFACTS / "app-roofline.png"), full_page=True)
    page.close()

    (ARTIFACTS / "app-timings.json").write_text(json.dumps(timings, indent=2) + "\n")
    print("app timings:", json.dumps(timings))
    assert timings["first_result_cold_s"] < FIRST_RESULT_LIMIT_S, timings
    assert timings["first_result_warm_s"] < FIRST_RESULT_LIMIT_S, timings
    assert timings["rerender_new_gpu_s"] < RERENDER_LIMIT_S, timings
    assert timings["rerender_cached_gpu_s"] < RERENDER_LIMIT_S, timings


# --- every page, three scenarios, two widths: nothing truncated, no legend cut off ------------------------------

SCENARIOS = {  # the sidebar in the URL
    "dense": "model=llama-3.1-8b&gpu=h100-sxm",
    "moe": "model=deepseek-v3&gpu=h200&tp=8&weights=fp8",
    "no-fit": "model=llama-3.1-70b&gpu=l40s",
}
WIDTHS = (1280, 1920)

# every chart has drawn (vega-embed renders asynchronously after the script run ends)
_CHARTS_DRAWN = """() => [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')]
    .every(c => c.querySelector('svg, canvas'))"""

# what the eye would call cut off: a metric value (or a part of it) wider than its box, shown with an ellipsis;
# a chart legend outside its chart's box (the container clips it) or outside the window
_LAYOUT_PROBLEMS = """() => {
  const out = [];
  for (const el of document.querySelectorAll('[data-testid="stMetricValue"], [data-testid="stMetricValue"] *')) {
    if (el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1)
      out.push(`metric value '${el.innerText}' truncated: scrollWidth ${el.scrollWidth} > clientWidth ${el.clientWidth}`);
  }
  const vw = document.documentElement.clientWidth;
  for (const chart of document.querySelectorAll('[data-testid="stVegaLiteChart"]')) {
    const c = chart.getBoundingClientRect();
    for (const leg of chart.querySelectorAll('.role-legend')) {
      const r = leg.getBoundingClientRect();
      if (r.width === 0) continue;
      const where = `legend '${leg.textContent.slice(0, 40)}'`;
      if (r.left < c.left - 1 || r.right > c.right + 1 || r.top < c.top - 1 || r.bottom > c.bottom + 1)
        out.push(`${where} outside its chart: legend ${JSON.stringify([r.left, r.top, r.right, r.bottom])}, chart ${JSON.stringify([c.left, c.top, c.right, c.bottom])}`);
      if (r.left < 0 || r.right > vw + 1)
        out.push(`${where} outside the window (${r.left}..${r.right} of ${vw} px)`);
    }
  }
  return out;
}"""


def _page_titles() -> list[str]:
    from model.app.pages import PAGES

    return [p.title for p in PAGES]


def _settle(page) -> None:
    page.wait_for_timeout(300)  # let the rerun start before waiting for it to end
    _wait_idle(page, 60_000)
    page.wait_for_function(_CHARTS_DRAWN, timeout=30_000)
    page.wait_for_timeout(200)  # vega's last layout pass


def test_every_page_at_two_widths_nothing_truncated_no_legend_cut_off(server, browser):
    shots = ARTIFACTS / "screens"
    shots.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    visited = 0
    for width in WIDTHS:
        for name, query in SCENARIOS.items():
            page = browser.new_page(viewport={"width": width, "height": 1100})
            page.goto(f"{server}/?page=Estimate&{query}")
            _metric(page, "TPOT").wait_for(state="visible", timeout=60_000)
            for title in _page_titles():
                if title != "Estimate":
                    page.locator('[data-testid="stMain"] [data-testid="stRadio"]').first.get_by_text(title, exact=True).click()
                _settle(page)
                visited += 1
                assert page.locator('[data-testid="stException"]').count() == 0, (width, name, title)
                problems += [f"{width}px {name} {title}: {p}" for p in page.evaluate(_LAYOUT_PROBLEMS)]
                page.screenshot(path=str(shots / f"{width}-{name}-{title.lower()}.png"), full_page=True)
            page.close()
    assert visited == len(WIDTHS) * len(SCENARIOS) * len(_page_titles())
    assert not problems, "\n".join(problems)

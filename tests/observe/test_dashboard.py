"""The dashboard in a real headless Chromium (Debian's), driven by Playwright.

Starts a `count` job from the form, watches the progress bar reach the end, cuts the browser's
connection mid-stream (a TCP proxy between browser and server drops it) and checks that the
log resumes with no gap and no repeat. GEARJOBS_UPDATE_SCREENSHOT=1 keeps the screenshot of
the job page in docs/.
"""

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from ..proxy import DroppingProxy
from ..servers import ServerProcess

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1100, "height": 760})
    yield context.new_page()
    context.close()


def test_a_count_started_from_the_form_resumes_after_a_cut_without_gap_or_repeat(
    page: Page, tmp_path: Path
) -> None:
    with (
        ServerProcess("--examples", "--store", f"sqlite:///{tmp_path}/d.db", cwd=tmp_path) as s,
        DroppingProxy(s.port) as proxy,
    ):
        page.goto(f"http://127.0.0.1:{proxy.port}/")
        page.wait_for_selector("#job-name option", state="attached")
        page.select_option("#job-name", "count")
        page.fill("#job-params", '{"to": 80, "delay": 0.05}')
        request_id = page.input_value("#request-id")
        page.click("#start")
        page.wait_for_url(f"**/#/job/{request_id}")
        page.wait_for_function("document.querySelectorAll('#events tbody tr').length >= 15")
        connections = proxy.connections
        assert proxy.cut_all() > 0, "the browser's connections were cut mid-stream"
        page.wait_for_function("document.querySelector('#stream')?.textContent === 'ended'")
        assert proxy.connections > connections, "the page connected again"
        entries = page.eval_on_selector_all(
            "#events tbody tr", "rows => rows.map(r => Number(r.dataset.entry))"
        )
        assert entries == list(range(1, 81)), "every event once, in order"
        events = page.eval_on_selector_all(
            "#events tbody tr code", "cs => cs.map(c => c.textContent)"
        )
        assert events[0] == '{"n":1,"progress":1,"total":80}'
        assert events[-1] == '{"n":80,"progress":80,"total":80}'
        assert page.eval_on_selector("#progress", "bar => [bar.value, bar.max]") == [80, 80]
        assert page.text_content("#progress-text") == "80 / 80"
        page.wait_for_function("document.querySelector('#state')?.textContent === 'succeeded'")
        shot = tmp_path / "dashboard-job.png"
        page.screenshot(path=str(shot))
        if os.environ.get("GEARJOBS_UPDATE_SCREENSHOT"):
            DOCS.mkdir(exist_ok=True)
            shutil.copy(shot, DOCS / "dashboard-job.png")


def test_a_text_stream_reads_like_a_terminal_log(page: Page, tmp_path: Path) -> None:
    with ServerProcess("--examples", "--store", "memory://", cwd=tmp_path) as s:
        page.goto(f"{s.url}/")
        page.wait_for_selector("#job-name option", state="attached")
        page.select_option("#job-name", "sleep")
        page.fill("#job-params", '{"seconds": 0.5, "lines": 5}')
        page.click("#start")
        page.wait_for_function("document.querySelector('#stream')?.textContent === 'ended'")
        assert page.text_content("#log") == "".join(f"tick {i}\n" for i in range(1, 6))


def test_the_list_shows_jobs_newest_first_and_filters_them(page: Page, tmp_path: Path) -> None:
    with ServerProcess("--examples", "--store", "memory://", cwd=tmp_path) as s:
        httpx.post(f"{s.url}/jobs/echo", json={})
        httpx.post(f"{s.url}/jobs/fail", json={"code": "not-found"})
        httpx.post(f"{s.url}/jobs/tally", json={"key": "k"})
        page.goto(f"{s.url}/")
        page.wait_for_function("document.querySelectorAll('#jobs tbody tr').length === 3")
        names = page.eval_on_selector_all(
            "#jobs tbody tr td:nth-child(2)", "c => c.map(x => x.textContent)"
        )
        assert names == ["tally", "fail", "echo"]
        page.select_option("#filter-state", "failed")
        page.wait_for_function("document.querySelectorAll('#jobs tbody tr').length === 1")
        assert page.text_content("#jobs tbody tr td:nth-child(2)") == "fail"
        page.select_option("#filter-state", "")
        page.fill("#filter-name", "echo")
        page.wait_for_function(
            "[...document.querySelectorAll('#jobs tbody tr td:nth-child(2)')]"
            ".map(x => x.textContent).join() === 'echo'"
        )
        assert "slow: 0/16 running" in (page.text_content("#queues") or "")

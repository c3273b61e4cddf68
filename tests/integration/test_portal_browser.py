"""A school's clerk in headless Chromium: sign in, upload the walkthrough's faulty file,
see 未通过 with its five errors, download the annotated workbook, drop the corrected file
on the page, see 通过, then sign off through the form (已确认). Once on a folder bucket,
once on the session's SeaweedFS.

Chromium and chromedriver are Debian's (/usr/bin/chromedriver through Selenium's Service,
never Selenium Manager). The portal runs in a thread as ``vetreport up`` starts it. Uploads
are processed by a thread that does what the service's sweep does, without Prefect: it
lists unprocessed uploads (``unprocessed_upload_keys``) and hands them to ``ingest_keys``,
the function the ingest flow runs. Set VETREPORT_SCREENSHOT_DIR=docs/images to refresh the
clerk's guide's screenshots (docs/schools.md) from the folder-bucket run.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chromium import CHROMIUM_FLAGS, require_chromium
from tests.conftest import free_port, make_bucket, point_stores_at, wait_for
from vetreport.bucket.store import open_store
from vetreport.curate.ingest import ingest_keys, unprocessed_upload_keys
from vetreport.demo import walkthrough
from vetreport.demo.generator import build_demo_uploads
from vetreport.portal.server import start_portal_thread
from vetreport.portal.tokens import issue_token

pytestmark = [pytest.mark.browser, pytest.mark.integration]
YEAR, SCHOOL = walkthrough.YEAR, walkthrough.SCHOOL
CHROMEDRIVER = "/usr/bin/chromedriver"
REGISTRY_KEY = f"uploads/{YEAR}/_city/school_registry.csv"


class Ingester:
    """Ingest every unprocessed upload of the store, every 0.3 s, until stopped."""

    def __init__(self, store_url: str) -> None:
        self.store = open_store(store_url)
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                keys = unprocessed_upload_keys(self.store, YEAR)
                if keys:
                    ingest_keys(self.store, keys)
            except BaseException as error:  # reported by the test
                self.errors.append(error)
                return
            self.stop.wait(0.3)


@pytest.fixture(params=["local", "seaweedfs"])
def store_url(request, tmp_path: Path, monkeypatch) -> str:
    if request.param == "local":
        return str(tmp_path / "bucket")
    endpoint = point_stores_at("seaweedfs", request, monkeypatch)
    return f"s3://{make_bucket(endpoint)}"


@pytest.fixture
def portal(store_url: str) -> Iterator[tuple[str, str]]:
    """The portal on a bucket with the year's registry, and the school's secret."""
    store = open_store(store_url)
    store.put(REGISTRY_KEY, build_demo_uploads(YEAR, years=(YEAR,))[REGISTRY_KEY])
    ingest_keys(store, [REGISTRY_KEY])
    secret = issue_token(store, SCHOOL)
    server, address = start_portal_thread(store_url, port=free_port())
    ingester = Ingester(store_url)
    ingester.thread.start()
    yield address, secret
    ingester.stop.set()
    ingester.thread.join(timeout=30)
    server.should_exit = True
    assert not ingester.errors, ingester.errors


@pytest.fixture
def browser(tmp_path: Path):
    require_chromium()
    if not Path(CHROMEDRIVER).exists():
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("chromedriver is required under CI (apt-get install -y chromium-driver)")
        pytest.skip("chromedriver is not installed (apt-get install -y chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for flag in [*CHROMIUM_FLAGS, "--window-size=1200,1400", f"--user-data-dir={tmp_path / 'p'}"]:
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.downloads = downloads
    yield driver
    driver.quit()


def test_a_clerk_uploads_sees_the_verdict_fixes_and_downloads(
    portal, browser, store_url: str, tmp_path: Path
) -> None:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    address, secret = portal
    shots = Path(os.environ.get("VETREPORT_SCREENSHOT_DIR") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    is_local = "://" not in store_url

    def shoot(name: str) -> None:
        if is_local:
            browser.save_screenshot(str(shots / f"portal-{name}.png"))

    files = walkthrough.write_files(tmp_path / "walkthrough")
    faulty, corrected = (
        next(p for p in files if p.name == name)
        for name in ("graduates-with-errors.csv", "graduates-corrected.csv")
    )

    browser.get(f"{address}/signin")
    browser.find_element(By.ID, "school_code").send_keys(SCHOOL)
    browser.find_element(By.ID, "token").send_keys(secret)
    shoot("1-signin")
    browser.find_element(By.ID, "signin-button").click()
    wait_for(lambda: browser.find_elements(By.ID, "school-code"), 20, "the school's page")
    browser.get(f"{address}/?year={YEAR}")
    Select(browser.find_element(By.ID, "dataset")).select_by_value("graduates")

    def verdict() -> str:
        """The verdict shown, or "" while there is none (or a submitted form's page loads)."""
        try:
            title = browser.find_element(By.ID, "verdict-title")
            return title.text if title.is_displayed() else ""
        except (NoSuchElementException, StaleElementReferenceException):
            return ""

    def shown_verdict(expected: str, what: str) -> None:
        try:
            wait_for(lambda: verdict() == expected, 90, what, step=0.3)
        except AssertionError as error:
            page = browser.find_element(By.TAG_NAME, "body").text[:600]
            raise AssertionError(f"{error}; the page says: {page}") from None

    # the faulty file: 未通过, its five errors listed, the annotated workbook downloaded
    browser.find_element(By.ID, "file-input").send_keys(str(faulty))
    shown_verdict("未通过", "the faulty file's verdict")
    errors = browser.find_elements(By.CSS_SELECTOR, "#findings tr.finding.error")
    assert len(errors) == 5
    texts = " ".join(row.text for row in errors)
    assert "打工" in texts and "面议" in texts and "毕业去向" in texts
    shoot("2-rejected")
    browser.find_element(By.ID, "workbook-link").click()
    workbook = wait_for(
        lambda: [p for p in browser.downloads.glob("*.xlsx")], 60, "the annotated workbook"
    )[0]
    assert workbook.read_bytes()[:2] == b"PK" and SCHOOL in workbook.name

    # the corrected file, dropped on the drop zone: 通过, and both uploads in the history
    browser.execute_script(
        "const source = document.createElement('input');"
        "source.type = 'file'; source.id = 'drop-source'; document.body.appendChild(source);"
    )
    browser.find_element(By.ID, "drop-source").send_keys(str(corrected))
    browser.execute_script(
        "const dropped = new DataTransfer();"
        "dropped.items.add(document.getElementById('drop-source').files[0]);"
        "document.getElementById('dropzone').dispatchEvent("
        "  new DragEvent('drop', {dataTransfer: dropped, bubbles: true, cancelable: true}));"
    )
    shown_verdict("通过", "the corrected file's verdict")

    def outcomes() -> list[str]:
        rows = browser.find_elements(By.CSS_SELECTOR, "#history tbody tr")
        return [row.find_elements(By.TAG_NAME, "td")[3].text for row in rows if row.text]

    # the history refreshes after the verdict, without reloading the page
    wait_for(lambda: outcomes() == ["通过", "未通过"], 20, "both uploads in the history")
    browser.execute_script("document.getElementById('history-section').scrollIntoView()")
    shoot("3-accepted")

    # 情况说明与确认: the clean year is 已提交; the clerk signs off through the form
    assert browser.find_element(By.ID, "state-word").text == "已提交"  # updated by the verdict
    browser.get(f"{address}/?year={YEAR}")
    browser.find_element(By.NAME, "signed_by").send_keys("王某")
    browser.find_element(By.NAME, "title").send_keys("校长")
    browser.find_element(By.ID, "signoff-confirm").click()
    browser.find_element(By.ID, "signoff-submit").click()
    shown_verdict("已确认提交", "the sign-off's verdict")
    assert browser.find_element(By.ID, "state-word").text == "已确认"
    browser.get(f"{address}/?year={YEAR}")
    assert browser.find_element(By.ID, "signed-off").is_displayed()
    browser.execute_script("document.getElementById('explanations').scrollIntoView()")
    shoot("4-signed-off")

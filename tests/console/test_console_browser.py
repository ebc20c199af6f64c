"""The console in Debian's Chromium (headless, driven by Selenium through chromium-driver)
against `totesys serve` on loopback over data from a real pipeline run.

Every page loads without browser console errors and shows the run's data; the buttons start a
run and a reprocess that then show up; a token-protected server shows nothing before login.
Screenshots of each page go to build/console/.

`make test` installs chromium and chromium-driver when they are missing.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.console.conftest import TOKEN, ConsoleData

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "build" / "console"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

pytestmark = pytest.mark.xdist_group("console-browser")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    if missing:
        pytest.fail(
            f"missing {', '.join(missing)}: apt-get install -y chromium chromium-driver "
            "(`make test` does it when run as root)"
        )
    os.environ["SE_AVOID_STATS"] = "true"  # Selenium Manager is never needed: paths are given
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def console_errors(driver: WebDriver) -> list[str]:
    """The browser console's warnings and errors since the last call (CSP violations, failed
    resources and script errors are all reported there)."""
    entries = driver.get_log("browser")  # type: ignore[attr-defined]
    return [e["message"] for e in entries if e["level"] in {"SEVERE", "WARNING"}]


def visit(driver: WebDriver, url: str, shot: str | None = None) -> str:
    driver.get(url)
    errors = console_errors(driver)
    assert not errors, f"{url}: browser console: {errors}"
    if shot:
        SHOTS.mkdir(parents=True, exist_ok=True)
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1400, min(max(int(height) + 40, 600), 4000))
        driver.save_screenshot(str(SHOTS / f"{shot}.png"))
        driver.set_window_size(1400, 1000)
    return str(driver.find_element(By.TAG_NAME, "body").text)


def texts(driver: WebDriver, selector: str) -> list[str]:
    return [str(e.text) for e in driver.find_elements(By.CSS_SELECTOR, selector)]


def submit(driver: WebDriver, button: WebElement) -> None:
    """Click a form's button and wait until the page it leads to has loaded (a click does not
    wait for the navigation it starts)."""
    page = driver.find_element(By.TAG_NAME, "html")
    button.click()

    def left(_: WebDriver) -> bool:
        try:
            page.is_enabled()
        except WebDriverException:  # stale, or "node does not belong to the document"
            return True
        return False

    WebDriverWait(driver, 60).until(left)
    WebDriverWait(driver, 60, ignored_exceptions=[WebDriverException]).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )


def wait_for_run_end(driver: WebDriver) -> str:
    """On a run's page (which reloads itself while the run is going): its final status, read
    once the page has loaded (a read racing a reload raises and is retried)."""

    def ended(d: WebDriver) -> str | None:
        if d.execute_script("return document.readyState") != "complete":
            return None
        status = str(d.find_element(By.ID, "run-status").text)
        return status if status in {"succeeded", "failed"} else None

    wait = WebDriverWait(driver, 120, poll_frequency=0.3, ignored_exceptions=[WebDriverException])
    result: str = wait.until(ended)
    # the page may have been reloaded between the read and now: let that load end too
    WebDriverWait(driver, 30, ignored_exceptions=[WebDriverException]).until(
        lambda d: (
            d.execute_script("return document.readyState") == "complete"
            and d.find_element(By.ID, "run-status").text in {"succeeded", "failed"}
        )
    )
    return result


def run_id_from(driver: WebDriver) -> str:
    match = re.search(r"/console/runs/([^/?#]+)$", driver.current_url)
    assert match, driver.current_url
    return match.group(1)


def test_pages_show_the_run_and_the_buttons_start_runs(
    browser: WebDriver, serve: Callable[[str | None], str], console_data: ConsoleData
) -> None:
    base = serve(None)  # loopback mode: no token, the browser is on this machine

    page = visit(browser, f"{base}/console", "overview")
    assert texts(browser, "#runs a.run-id") == [console_data.reject_run, console_data.first_run]
    assert browser.find_element(By.ID, "pending-count").text.startswith("1 pending file")
    tables = browser.find_element(By.ID, "tables").text
    for name in ("fact_sales_order", "dim_date", "dim_counterparty"):
        assert name in tables
    assert len(browser.find_elements(By.CSS_SELECTOR, "#run-chart rect.bar")) == 2
    assert "not written yet" not in tables, page

    page = visit(browser, f"{base}/console/runs/{console_data.reject_run}", "run")
    assert browser.find_element(By.ID, "run-status").text == "succeeded"
    files = browser.find_element(By.ID, "run-files").text
    assert console_data.rejected_file in files
    assert console_data.partly_rejected_file in files
    rejects = browser.find_element(By.ID, "rejects").text
    assert "units_sold" in rejects and "plenty" in rejects  # field and raw value
    assert "whole file" in rejects  # the file that is not JSON
    assert "fact_sales_order" in browser.find_element(By.ID, "rows-written").text

    visit(browser, f"{base}/console/files?status=rejected", "files")
    assert texts(browser, "#files code.file-key") == [console_data.rejected_file]
    reasons = texts(browser, "#files td.reason")
    assert reasons and reasons[0], "a rejected file shows its reason"

    visit(browser, f"{base}/console/tables/fact_sales_order", "table")
    versions = browser.find_elements(By.CSS_SELECTOR, "#versions tbody tr")
    assert len(versions) >= 2
    latest_total = int(browser.find_element(By.ID, "row-total").text)
    visit(browser, f"{base}/console/tables/fact_sales_order?version=0&filter=sales_order_id%3D1")
    assert browser.find_element(By.ID, "shown-version").text == "0"
    assert int(browser.find_element(By.ID, "row-total").text) < latest_total
    assert set(texts(browser, "#rows tbody td:nth-child(2)")) == {"1"}  # sales_order_id

    visit(browser, f"{base}/console/sales-orders/1", "sale")
    changes = texts(browser, "#timeline span.change")
    assert changes == ["insert", "update", "update"]
    changed = browser.find_elements(By.CSS_SELECTOR, "#timeline tbody tr:nth-child(3) td.changed")
    assert sorted(str(c.text) for c in changed) == ["3.25", "7"]  # unit_price, units_sold
    assert "Live: version" in browser.find_element(By.ID, "state").text
    visit(browser, f"{base}/console/sales-orders/3?as_of=2024-11-14T09:30:00")
    assert texts(browser, "#timeline span.change") == ["insert", "delete"]
    assert "Live" in browser.find_element(By.ID, "state").text  # before its deletion
    visit(browser, f"{base}/console/sales-orders/3")
    assert "Deleted at" in browser.find_element(By.ID, "state").text

    # "Start a run": applies the pending file, then shows up on the overview
    visit(browser, f"{base}/console")
    submit(browser, browser.find_element(By.ID, "start-run"))
    started = run_id_from(browser)
    assert wait_for_run_end(browser) == "succeeded"
    assert console_data.pending_file in browser.find_element(By.ID, "run-files").text
    assert not console_errors(browser)

    # "Reprocess" on the rejected file: a reprocess run that rejects it again, with the reason
    visit(browser, f"{base}/console/files?status=rejected")
    submit(browser, browser.find_element(By.CSS_SELECTOR, "#files button.reprocess"))
    reprocess = run_id_from(browser)
    assert wait_for_run_end(browser) == "succeeded"
    files = browser.find_element(By.ID, "run-files").text
    assert console_data.rejected_file in files and "rejected" in files
    assert not console_errors(browser)

    visit(browser, f"{base}/console")
    runs = browser.find_element(By.ID, "runs").text
    assert started in runs and reprocess in runs
    assert browser.find_element(By.ID, "pending-count").text.startswith("0 pending files")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#run-chart rect.bar")) == 4
    visit(browser, f"{base}/console", "overview-after-runs")


def test_purchase_order_and_payment_pages(
    browser: WebDriver, serve: Callable[[str | None], str], console_data: ConsoleData
) -> None:
    """A payment found through the header's lookup form, its timeline and its state then; a
    purchase order reached by a link from dim_transaction's rows."""
    base = serve(None)
    visit(browser, f"{base}/console")
    tables = browser.find_element(By.ID, "tables").text
    for name in ("fact_purchase_order", "fact_payment", "dim_transaction", "dim_payment_type"):
        assert name in tables
    assert "not written yet" not in tables

    Select(browser.find_element(By.CSS_SELECTOR, "#find select")).select_by_value("payments")
    browser.find_element(By.CSS_SELECTOR, "#find input[name=id]").send_keys("2")
    submit(browser, browser.find_element(By.CSS_SELECTOR, "#find button"))
    assert browser.current_url == f"{base}/console/payments/2"
    assert not console_errors(browser)
    assert browser.find_element(By.TAG_NAME, "h1").text == "Payment 2"
    assert texts(browser, "#timeline span.change") == ["insert", "update"]
    assert texts(browser, "#timeline td.changed") == ["True"]  # paid later
    assert "Live: version" in browser.find_element(By.ID, "state").text
    visit(browser, f"{base}/console/payments/2?as_of=2024-11-14T11:00:00", "payment")
    state = browser.find_element(By.ID, "state").text
    assert "paid\nFalse" in state or "paid False" in state, state
    visit(browser, f"{base}/console/payments/3")
    assert "Deleted at" in browser.find_element(By.ID, "state").text

    visit(browser, f"{base}/console/tables/dim_transaction")
    submit_link = browser.find_element(
        By.CSS_SELECTOR, '#rows a[href="/console/purchase-orders/1"]'
    )
    submit(browser, submit_link)
    assert browser.current_url == f"{base}/console/purchase-orders/1"
    assert not console_errors(browser)
    assert browser.find_element(By.TAG_NAME, "h1").text == "Purchase order 1"
    changed = browser.find_elements(By.CSS_SELECTOR, "#timeline tbody tr:nth-child(2) td.changed")
    assert [str(c.text) for c in changed] == ["150"]  # item_quantity
    visit(browser, f"{base}/console/purchase-orders/1", "purchase-order")


def test_token_server_refuses_the_console_until_login(
    browser: WebDriver, serve: Callable[[str | None], str], console_data: ConsoleData
) -> None:
    base = serve(TOKEN)
    browser.delete_all_cookies()
    for path in ("/console", f"/console/runs/{console_data.first_run}", "/console/files"):
        page = visit(browser, f"{base}{path}")
        assert browser.current_url.startswith(f"{base}/console/login"), browser.current_url
        assert console_data.first_run not in page
    visit(browser, f"{base}/console/login", "login")

    browser.find_element(By.ID, "token").send_keys("not-the-token")
    submit(browser, browser.find_element(By.ID, "login"))
    assert "not the API token" in browser.find_element(By.ID, "login-error").text
    console_errors(browser)  # the 401 of the refused login is expected here
    assert console_data.first_run not in browser.find_element(By.TAG_NAME, "body").text

    visit(browser, f"{base}/console/runs/{console_data.first_run}")
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    submit(browser, browser.find_element(By.ID, "login"))
    assert browser.current_url == f"{base}/console/runs/{console_data.first_run}"
    assert browser.find_element(By.ID, "run-id").text == console_data.first_run
    assert not console_errors(browser)
    cookie = browser.get_cookie("totesys_console_token")
    assert cookie is not None
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"


def test_api_docs_open_in_the_browser_through_the_console_login(
    browser: WebDriver, serve: Callable[[str | None], str]
) -> None:
    """With a token set, a browser opening /docs logs in on the console and gets Swagger UI
    there, which fetches its document with the login cookie (the bearer header a browser cannot
    send is not needed). The Swagger UI scripts come from a CDN this machine cannot reach, so the
    document is fetched the way the page does: a same-origin fetch from the docs page."""
    base = serve(TOKEN)
    browser.delete_all_cookies()
    visit(browser, f"{base}/docs")
    assert browser.current_url.startswith(f"{base}/console/login"), browser.current_url
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    submit(browser, browser.find_element(By.ID, "login"))
    assert browser.current_url == f"{base}/console/docs"
    assert "/console/openapi.json" in browser.page_source
    fetched = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch('/console/openapi.json').then(r => r.json().then(j => done([r.status, "
        "Object.keys(j.paths)]))).catch(e => done([0, String(e)]));"
    )
    status, paths = fetched
    assert status == 200 and "/purchase-orders/{purchase_order_id}" in paths
    # the API itself still wants the header: the cookie is the console's
    blocked = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch('/openapi.json').then(r => done(r.status));"
    )
    assert blocked == 401

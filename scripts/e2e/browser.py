"""The UI in a real browser: headless Chromium from Debian, driven by selenium with the system chromedriver.

The ``nairi_default`` connection is created the way a user does it: Admin → Connections → Add Connection, type
Nairi, the standard fields (base URL, API key) and every extra field of the provider's form set to a value
other than its default, Save. The stored connection (read through the REST API) must hold exactly what was
typed, before and after a Save of the Edit form. The fields come from the installed provider's
``connection_form()``, so a renamed or added extra is covered without touching this file.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import certifi
from selenium import webdriver
from selenium.common.exceptions import (
    ElementClickInterceptedException,
    TimeoutException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait
from stack import E2EError, log

from airflow_provider_nairi.client.config import connection_form

if TYPE_CHECKING:
    from airflow_api import AirflowApi
    from harness import Context

WAIT = 30
# Keeps the answers of the page's API calls (the toast only says "Bad Request").
RECORD_XHR = """
window.e2eAnswers = [];
const send = XMLHttpRequest.prototype.send;
XMLHttpRequest.prototype.send = function (body) {
  this.addEventListener("load", () => window.e2eAnswers.push(this.responseText));
  return send.apply(this, arguments);
};
"""


def chromium() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1600"):
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))


def form_values(dashboard_url: str) -> dict[str, Any]:
    """A value other than the default for every extra of the form, as the form stores it."""
    values: dict[str, Any] = {}
    for name, spec in connection_form()["conn-fields"].items():
        schema = spec["schema"]
        types = set(schema["type"]) - {"null"}
        default = schema.get("default")
        if "enum" in schema:
            values[name] = next(choice for choice in schema["enum"] if choice != default)
        elif types == {"integer"}:
            values[name] = int(default or 0) + 2
        elif types == {"number"}:
            values[name] = float(default or 0) * 1.5 + 1
        elif types == {"boolean"}:
            values[name] = not default
        elif "boolean" in types:  # true, false or a path (the TLS CA bundle)
            values[name] = certifi.where()
        elif schema.get("format") == "json":
            values[name] = json.dumps({"https": "http://proxy.e2e.invalid:3128"})
        elif schema.get("format") == "url":
            values[name] = dashboard_url
        else:
            values[name] = "nairi-e2e"
    return values


def same(stored: Any, typed: Any) -> bool:
    if isinstance(typed, bool) or isinstance(stored, bool):
        return stored is typed or str(stored).lower() == str(typed).lower()
    if isinstance(typed, int | float):
        try:
            return float(stored) == float(typed)
        except (TypeError, ValueError):
            return False
    return stored == typed


class Page:
    """One browser tab on Airflow's UI: find, click, type, screenshot (into ``shots``)."""

    def __init__(self, driver: webdriver.Chrome, shots: Path) -> None:
        self.driver = driver
        self.shots = shots
        self.wait = WebDriverWait(driver, WAIT)

    def screenshot(self, name: str) -> None:
        self.driver.save_screenshot(str(self.shots / f"{name}.png"))

    def find(self, xpath: str) -> WebElement:
        return self.wait.until(expected_conditions.presence_of_element_located((By.XPATH, xpath)))

    def click(self, xpath: str) -> None:
        element = self.wait.until(expected_conditions.element_to_be_clickable((By.XPATH, xpath)))
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
        try:
            element.click()
        except ElementClickInterceptedException:  # a toast over the button: click it as the page would
            self.driver.execute_script("arguments[0].click()", element)

    def type_into(self, element: WebElement, text: str) -> None:
        """Replace the field's text; a key the page dropped (React re-renders a textarea while one types) is
        typed again, one key at a time."""
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
        element.click()
        element.send_keys(Keys.CONTROL, "a")
        element.send_keys(Keys.BACKSPACE)
        element.send_keys(text)
        if (
            element.get_attribute("role") in ("combobox", "spinbutton")
            or element.get_attribute("value") == text
        ):
            return
        element.send_keys(Keys.CONTROL, "a")
        element.send_keys(Keys.BACKSPACE)
        for key in text:
            element.send_keys(key)
        if element.get_attribute("value") != text:
            raise E2EError(f"the form field holds {element.get_attribute('value')!r} after typing {text!r}")


class ConnectionForm(Page):
    """The Add / Edit Connection dialog."""

    def open_section(self, title: str) -> None:
        trigger = self.find(f"//button[@data-part='item-trigger' and contains(@id, ':{title}')]")
        if trigger.get_attribute("aria-expanded") != "true":
            self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", trigger)
            trigger.click()
            time.sleep(0.3)

    def field_root(self, name: str) -> WebElement:
        marker = (
            f"@name='element_{name}' or @id='element_{name}' or @id='number-input:element_{name}:inc'"
            f" or @id='switch:element_{name}'"
        )
        roots = self.driver.find_elements(
            By.XPATH, f"//div[@data-scope='field' and @data-part='root'][.//*[{marker}]]"
        )
        if not roots:
            raise E2EError(f"the connection form has no field for the extra {name!r}")
        return roots[-1]  # the innermost

    def set_extra(self, name: str, value: Any) -> None:
        root = self.field_root(name)
        if combos := root.find_elements(By.XPATH, ".//input[@role='combobox']"):
            self.type_into(combos[0], str(value))
            time.sleep(0.3)
            combos[0].send_keys(Keys.ENTER)
        elif spins := root.find_elements(By.XPATH, ".//input[@role='spinbutton']"):
            self.type_into(spins[0], f"{value:g}" if isinstance(value, float) else str(value))
            spins[0].send_keys(Keys.TAB)
        elif switches := root.find_elements(By.XPATH, f".//label[@id='switch:element_{name}']"):
            checkbox = root.find_element(By.XPATH, ".//input[@type='checkbox']")
            if checkbox.is_selected() != bool(value):
                self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", switches[0])
                switches[0].click()
        elif areas := root.find_elements(By.XPATH, ".//textarea"):
            self.type_into(areas[0], str(value))
        else:
            self.type_into(root.find_element(By.XPATH, ".//input"), str(value))

    def save(self) -> None:
        self.click("//div[@role='dialog']//button[contains(., 'Save')]")
        self.wait.until(
            expected_conditions.invisibility_of_element_located((By.XPATH, "//div[@role='dialog']"))
        )


def create_connection_in_form(ctx: Context, api: AirflowApi, conn_id: str, dashboard_url: str) -> None:
    """Add Connection in the UI, test it from the connections page and the REST API, then Edit and Save."""
    values = form_values(dashboard_url)
    driver = chromium()
    form = ConnectionForm(driver, ctx.out / "screenshots")
    try:
        driver.get(f"{ctx.airflow.api_url}/connections")
        form.click("//button[contains(., 'Add Connection')]")
        form.find("//input[@name='connection_id']").send_keys(conn_id)
        kind = form.find("//div[@role='dialog']//input[@role='combobox']")
        kind.send_keys("Nairi")
        time.sleep(0.5)
        kind.send_keys(Keys.ENTER)
        form.open_section("standardFields")
        form.type_into(form.find("//input[@name='host']"), ctx.emulator.base_url)
        form.type_into(form.find("//input[@name='password']"), ctx.emulator.api_key)
        form.open_section("Extra Fields")
        for name, value in values.items():
            form.set_extra(name, value)
        form.screenshot("connection-form-add")
        form.save()
        log(f"connection {conn_id} saved from the Add Connection form")
        problems = check_stored(api, conn_id, values, "Add Connection")

        row = f"//tr[.//td[normalize-space()='{conn_id}']]"
        form.find(row)
        form.screenshot("connections-page")
        problems += test_from_connections_page(ctx, form, row)
        tested = api.call("POST", "/connections/test", json={"connection_id": conn_id, "conn_type": "nairi"})
        log(f"REST connection test: {tested}")
        if tested.get("status") is not True:
            problems.append(f"POST /api/v2/connections/test: {tested}")

        form.click(f"{row}//button[@aria-label='Edit Connection']")
        form.find("//div[@role='dialog']//input[@name='connection_id']")
        form.open_section("Extra Fields")
        form.screenshot("connection-form-edit")
        form.save()
        problems += check_stored(api, conn_id, values, "Edit Connection (saved unchanged)")
        if problems:
            raise E2EError("; ".join(problems))
    except WebDriverException as exc:
        form.screenshot("connection-form-error")
        raise E2EError(f"browser: {exc.msg}; see screenshots/connection-form-error.png") from None
    finally:
        driver.quit()


def test_from_connections_page(ctx: Context, form: Page, row: str) -> list[str]:
    """Click the row's Test Connection button; the toast must show the provider's answer."""
    driver = form.driver
    driver.execute_script(RECORD_XHR)
    form.click(f"{row}//button[@aria-label='Test Connection']")
    form.wait.until(lambda _: driver.execute_script("return window.e2eAnswers.length"))
    time.sleep(0.5)
    form.screenshot("connections-page-test")
    answers = " ".join(driver.execute_script("return window.e2eAnswers"))
    toasts = driver.find_elements(By.XPATH, "//*[@data-scope='toast' and @data-part='root']")
    toast = toasts[-1].text if toasts else ""
    log(f"Test Connection on the connections page: {toast!r} (API answered {answers[:300]!r})")
    if "differs from the stored connection" in answers:
        # Airflow 3.3.2's page sends "port": 0 for a connection stored without a port, and its API then
        # refuses to reuse the stored key; not the provider's doing (docs/e2e.md).
        ctx.harness.notes.append(f"connections page Test button: Airflow answered {answers[:200]}")
    elif "Connected to org" not in answers:
        return [f"Test Connection on the connections page shows {toast!r}: {answers[:300]}"]
    return []


def check_stored(api: AirflowApi, conn_id: str, typed: dict[str, Any], form: str) -> list[str]:
    """What differs between the extras typed and those the REST API returns (what the forms read back)."""
    stored = api.call("GET", f"/connections/{conn_id}")
    extras = json.loads(stored.get("extra") or "{}")
    wrong = [
        f"{name} {extras.get(name, '<missing>')!r} (typed {value!r})"
        for name, value in typed.items()
        if not same(extras.get(name), value)
    ]
    return [f"{form}: extras read back differ from those typed: {', '.join(wrong)}"] if wrong else []


def task_page(ctx: Context, dag_id: str, run_id: str, task_id: str, expected_link: str) -> list[str]:
    """Screenshot the task instance's page; its "Nairi conversation" button must lead to ``expected_link``."""
    driver = chromium()
    form = Page(driver, ctx.out / "screenshots")
    try:
        driver.get(
            f"{ctx.airflow.api_url}/dags/{dag_id}/runs/{quote(run_id, safe='')}/tasks/{task_id}/details"
        )
        link = form.find("//a[normalize-space()='Nairi conversation']")
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", link)
        time.sleep(1)
        form.screenshot("task-page")
        href = link.get_attribute("href")
        return [] if href == expected_link else [f"task page: 'Nairi conversation' leads to {href!r}"]
    except WebDriverException as exc:
        form.screenshot("task-page")
        return [f"task page: {exc.msg} (see screenshots/task-page.png)"]
    finally:
        driver.quit()


class ReviewForm(Page):
    """Airflow 3.3's Required Actions: the list of the requests awaiting a human (Browse → Required Actions)
    and a task instance's human-in-the-loop form (its "Required Actions" tab)."""

    def __init__(self, driver: webdriver.Chrome, shots: Path, api_url: str) -> None:
        super().__init__(driver, shots)
        self.api_url = api_url

    def open_from_list(self, run_id: str, task_id: str, shot: str) -> None:
        """Open the list of pending requests and click the row of ``task_id`` in ``run_id``."""
        self.driver.get(f"{self.api_url}/required_actions?response_received=false")
        row_link = f"//a[normalize-space()='{task_id}' and contains(@href, '/runs/{run_id}/')]"
        self.find(row_link)
        self.screenshot(shot)
        self.click(row_link)
        self.find("//button[starts-with(@data-testid, 'hitl-option-')]")

    def open_task(self, dag_id: str, run_id: str, task_id: str) -> None:
        """Open the task instance's "Required Actions" tab."""
        self.driver.get(
            f"{self.api_url}/dags/{dag_id}/runs/{quote(run_id, safe='')}/tasks/{task_id}/required_actions"
        )
        self.find("//button[starts-with(@data-testid, 'hitl-option-')]")

    def shown(self) -> tuple[str, list[str]]:
        """The form's whole text and the texts of its code blocks (the agent's reply is one)."""
        texts = [code.text for code in self.driver.find_elements(By.XPATH, "//code")]
        return self.driver.find_element(By.TAG_NAME, "body").text, texts

    def answer(self, option: str, changes: str, shot: str) -> None:
        """Type ``changes`` (if any) into the form's field, click ``option``; wait until Airflow took it."""
        if changes:
            self.type_into(self.find("//input[@id='element_changes']"), changes)
        button = f"//button[@data-testid='hitl-option-{option}']"
        try:  # the form validates its fields as one types; a required field left empty disables every option
            WebDriverWait(self.driver, 5).until(
                expected_conditions.element_to_be_clickable((By.XPATH, button))
            )
        except TimeoutException:
            self.screenshot(shot)
            raise E2EError(f"the button {option!r} stays disabled (see screenshots/{shot}.png)") from None
        self.screenshot(shot)
        self.click(button)
        self.find("//*[contains(normalize-space(), 'Response received')]")
        self.screenshot(f"{shot}-answered")
        log(f"{option!r} clicked in the review form" + (f" with {changes!r}" if changes else ""))


@contextmanager
def review_form(ctx: Context) -> Iterator[ReviewForm]:
    """A headless Chromium on the Required Actions pages; quits after, leaves ``review-error.png`` when a
    browser step failed."""
    driver = chromium()
    form = ReviewForm(driver, ctx.out / "screenshots", ctx.airflow.api_url)
    try:
        yield form
    except WebDriverException as exc:
        form.screenshot("review-error")
        raise E2EError(f"browser: {exc.msg}; see screenshots/review-error.png") from None
    finally:
        driver.quit()

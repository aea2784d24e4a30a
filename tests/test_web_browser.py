"""The web UI in a real browser against the real pipeline: Debian's chromium driven by Playwright,
`sustainml web` as its own process, the five nodes as processes on DDS over loopback. The tests run
in file order on one pipeline, as one user's session would: describe a problem from an empty form,
see the first answer from estimates and the measurements refine it, read the result, move a slider,
look back in the history, leave a note, and see a node die.

Screenshots of each page go to var/screenshots/ (README shows a copy of one, docs/web-results.png); they are looked at, not compared."""

import os
import re
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import ROOT, RunningPipeline, WebProcess, _domains, fast_pipeline

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = ROOT / "var" / "screenshots"   # git ignores var/; README's picture is a copy in docs/
try:
    from playwright.sync_api import Page, expect, sync_playwright
except ImportError:                       # pragma: no cover - the test extras install it
    sync_playwright = None

pytestmark = [
    pytest.mark.browser,
    pytest.mark.pipeline,
    pytest.mark.skipif(sync_playwright is None, reason="playwright is not installed (pip install -e .[test])"),
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason="no chromium: install Debian's chromium package (install.sh does, as root)"),
]
# The flags a headless Chromium needs on a machine with no display, no sandbox user and no network.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
RESULT_S = 240_000   # ms: a first task pays the model provider's cold FLOPs count on a slow CI machine


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningPipeline, WebProcess]]:
    """The pipeline (the orchestrator gives up on a dead node after 5 s, not 60; the carbon tracker is
    not respawned) and the web server."""
    domain = 1 + next(_domains) % 230
    env = {"SUSTAINML_DOMAIN_ID": str(domain), "SUSTAINML_DISCOVERY_TAG": f"web-{os.getpid()}-{domain}",
           "SUSTAINML_STORE_DIR": str(tmp_path_factory.mktemp("store")), "SUSTAINML_DATA_DIR": str(ROOT)}
    with pytest.MonkeyPatch.context() as mp:
        for name in ("CYCLONEDDS_URI", "SUSTAINML_DDS_CONFIG", "SUSTAINML_CONFIG"):
            mp.delenv(name, raising=False)
        for key, value in env.items():
            mp.setenv(key, value)
        description = fast_pipeline(orchestrator={"node_down_grace_s": "5"})
        for node in description.nodes:
            node.respawn = node.name != "carbon_tracker"     # the last test kills it, and it must stay down
        running = RunningPipeline(description).start()
        try:
            web = WebProcess("--data-dir", str(ROOT))
            try:
                yield running, web
            finally:
                web.stop()
        finally:
            running.stop()


@pytest.fixture(scope="module")
def browser():
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def page(browser, stack) -> Iterator["Page"]:
    _, web = stack
    context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # Chromium logs every HTTP error status as a console error; those the page shows itself (a 503 while a
    # cold node answers slowly) are not script errors.
    page.on("console", lambda m: errors.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
    page.goto(web.url + "/")
    yield page
    context.close()
    assert not errors, f"the page logged errors: {errors}"


def shot(page: "Page", name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


# ---------------------------------------------------------------- the session

def test_a_new_user_describes_a_problem_from_an_empty_form(page: "Page"):
    expect(page.locator("#nodes li.idle, #nodes li.busy")).to_have_count(5, timeout=30_000)
    page.get_by_label("Goal").fill("predict tool wear from CNC sensor data with 99.9% accuracy")
    # The encoder's reading appears, and its contradiction sits beside the field it concerns.
    expect(page.locator("#r-type")).to_have_text("tabular_regression", timeout=30_000)
    contradiction = page.locator("#part-problem .finding.contradiction")
    expect(contradiction.first).to_contain_text("rmse")
    # Submitting without the data's size is stopped by the page, which says what is missing.
    page.get_by_role("button", name="Find options").click()
    expect(page.locator("#form-error")).to_contain_text("How much data?")
    page.get_by_label("A table in the data folder").select_option("examples/data/cnc_tool_wear.csv")
    expect(page.locator("#profile")).to_contain_text("2,000 rows", timeout=30_000)
    page.get_by_label("Train region").fill("DEU")
    page.get_by_label("Regions it may be served from").fill("FRA, NOR, SWE")
    page.get_by_label("Requests per day", exact=True).fill("100000")
    page.get_by_label("Served for, days").fill("730")
    page.get_by_label("Measurement budget").fill("20")
    expect(page.locator("#submit-hint")).to_contain_text("first ranked answer in seconds")
    expect(page.locator("#r-explanation")).to_contain_text("Germany", timeout=30_000)
    shot(page, "describe")


# Each time the revision line changes: what it says and how the options are marked at that moment.
RECORD_REVISIONS = """() => {
  window.revisionsSeen = [];
  const line = document.querySelector("#revision");
  new MutationObserver(() => window.revisionsSeen.push({
    text: line.textContent,
    rows: document.querySelectorAll("#options tbody tr").length,
    estimated: document.querySelectorAll("#options .basis-estimated").length,
    measured: document.querySelectorAll("#options .basis:not(.basis-estimated)").length,
  })).observe(line, {childList: true, characterData: true, subtree: true});
}"""


def test_the_first_answer_comes_from_estimates_and_measurements_refine_it(page: "Page"):
    """Seconds after the submit the page shows a complete ranked answer from pre-run estimates, marked
    as such; each measurement that lands redraws it; the last revision is final and mostly measured."""
    page.evaluate(RECORD_REVISIONS)
    submitted = time.monotonic()
    page.get_by_role("button", name="Find options").click()
    expect(page.locator("#page-results")).to_be_visible()
    revision = page.locator("#revision")
    expect(revision).to_contain_text("refining by measurement", timeout=RESULT_S)
    first_s = time.monotonic() - submitted
    shot(page, "results-running")
    expect(revision).to_contain_text("final", timeout=RESULT_S)
    print(f"from the submit to the first answer: {first_s:.1f} s, to the final one: {time.monotonic() - submitted:.1f} s")

    seen = page.evaluate("window.revisionsSeen")
    first, final = seen[0], seen[-1]
    # The first answer shown: every option ranked, the estimates marked (revision 1 has nothing measured;
    # a measurement may land before the page has read it).
    assert re.match(r"revision \d+ — refining by measurement: \d+ of \d+ options measured", first["text"]), seen
    assert first["rows"] >= 3 and first["estimated"] >= 1 and first["estimated"] + first["measured"] == first["rows"], seen
    assert re.match(r"revision \d+ — final: \d+ of \d+ options measured", final["text"]), seen
    assert final["measured"] >= 1 and final["measured"] + final["estimated"] == final["rows"], seen
    # An estimate left in the final answer says so, and why it was not measured, on hover.
    for badge in page.locator("#options .basis-estimated").all():
        assert re.match(r"pre-run estimate, not measured\n.", badge.get_attribute("title"))
    expect(page.locator("#measuring")).to_contain_text(re.compile(r"took [0-9.]+ s of device time, .* CO2e"))
    expect(page.locator("#task-progress")).to_be_hidden()

    # Every option is plotted, the front is drawn as its own trace, and the table lists them.
    expect(page.locator("#pareto .scatterlayer .point").first).to_be_visible()
    assert page.locator("#pareto .scatterlayer .trace").count() == 2
    expect(page.locator("#options caption")).to_contain_text("estimate")
    expect(page.locator("#breakdown .barlayer .trace")).not_to_have_count(0)
    expect(page.locator("#alternatives li").first).to_contain_text("saves")
    shot(page, "results")


def test_the_options_table_sorts_by_keyboard(page: "Page"):
    header = page.locator("#options th button", has_text="CO2e total")
    column = 1 + page.locator("#options thead th").all_inner_texts().index("CO2e total")
    header.focus()
    page.keyboard.press("Enter")
    totals = page.locator(f"#options tbody tr td:nth-child({column})").all_inner_texts()
    grams = [_grams(t) for t in totals]
    assert grams == sorted(grams), totals
    page.keyboard.press("Enter")
    grams = [_grams(t) for t in page.locator(f"#options tbody tr td:nth-child({column})").all_inner_texts()]
    assert grams == sorted(grams, reverse=True)


def _grams(text: str) -> float:
    value, unit = re.match(r"([0-9.e+-]+) (\S+)", text).groups()
    return float(value) * {"t": 1e6, "kg": 1e3, "g": 1.0, "mg": 1e-3, "µg": 1e-6, "ng": 1e-9}[unit]


def test_moving_a_slider_starts_a_new_iteration_and_says_what_moved(page: "Page"):
    first = page.locator("#task-label").inner_text()
    assert first.endswith("/1")
    slider = page.locator("#s-requests")
    slider.focus()
    for _ in range(8):                          # by keyboard: one step is 10^0.04 more requests a day
        page.keyboard.press("ArrowRight")
    expect(page.locator("#task-label")).to_have_text(first[:-2] + "/2", timeout=30_000)
    moved = page.locator("#moved")
    expect(moved).to_contain_text("What moved from iteration 1 to 2", timeout=RESULT_S)
    # More requests a day on the same horizon: the serving CO2 moves, said per the 730-day horizon and a year.
    expect(moved).to_contain_text(re.compile(r"(costs|saves) [0-9.]+ \S+ CO2e over 730 days \([0-9.]+ \S+ a year\)"))
    # Only the usage moved: the iteration answers from the measurements already made, final at once.
    expect(page.locator("#revision")).to_contain_text("final", timeout=RESULT_S)
    shot(page, "iteration")


def test_history_compares_two_iterations_and_exports(page: "Page", stack):
    _, web = stack
    page.get_by_role("button", name="History").click()
    boxes = page.locator("#history tbody input[type=checkbox]")
    expect(boxes).to_have_count(2, timeout=10_000)
    boxes.nth(0).check()
    boxes.nth(1).check()
    page.get_by_role("button", name="Compare the two ticked").click()
    comparison = page.locator("#comparison")
    expect(comparison).to_contain_text("From ")
    expect(comparison.locator("table")).to_have_count(2)
    shot(page, "history")
    href = page.locator("#history tbody a", has_text="CSV").first.get_attribute("href")
    csv = page.request.get(web.url + href)
    assert csv.ok and "co2_g.total" in csv.text().splitlines()[0]
    iteration = page.request.get(web.url + href.replace(".csv", ".json")).json()
    assert iteration["options"]
    assert iteration["problem"]["measurement_budget_s"] == 20      # the budget given in the form, kept on iterating


def test_a_note_on_an_option_shows_in_the_shared_evidence(page: "Page"):
    page.get_by_role("button", name="2 · Results").click()
    page.locator("#options tbody tr").first.get_by_role("button", name=re.compile("^Add a note")).click()
    page.get_by_label("What others should know").fill("measured on the shared VM; RAPL missing, estimate only")
    page.get_by_label("Your name").fill("tester")
    page.get_by_role("button", name="Save note").click()
    expect(page.locator("#note-dialog")).not_to_be_visible()
    page.get_by_role("button", name="Evidence").click()
    expect(page.locator("#evidence-count")).to_contain_text("measurements from 1 host", timeout=10_000)
    expect(page.locator("#notes")).to_contain_text("RAPL missing, estimate only")
    assert page.locator("#evidence tbody tr").count() >= 3
    model = page.locator("#e-model option").nth(1).get_attribute("value")
    page.get_by_label("Model", exact=True).select_option(model)
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#evidence tbody tr td:nth-child(3)").first).to_have_text(model)
    models = set(page.locator("#evidence tbody tr td:nth-child(3)").all_inner_texts())
    assert models == {model}
    shot(page, "evidence")


def test_readable_on_a_phone(browser, stack):
    _, web = stack
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    phone = context.new_page()
    try:
        phone.goto(web.url + "/#history")
        expect(phone.locator("#history tbody tr").first).to_be_visible(timeout=10_000)
        phone.locator("#history tbody th button").first.click()
        expect(phone.locator("#pareto .scatterlayer .point").first).to_be_visible(timeout=20_000)
        # The result carries its problem: the sliders start from what was submitted, not from defaults.
        expect(phone.locator("#o-horizon")).to_have_text("730 days")
        # Nothing but the wide tables (which scroll in their own box) is wider than the screen.
        overflow = phone.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"the page is {overflow}px wider than a phone screen"
        shot(phone, "results-phone")
    finally:
        context.close()


def test_a_killed_node_and_the_failed_task_are_reported(page: "Page", stack):
    running, _ = stack
    page.get_by_role("button", name="1 · Describe").click()
    os.kill(running.launcher.pid_of("carbon_tracker"), signal.SIGKILL)
    expect(page.locator("#nodes li.down")).to_contain_text("carbon_tracker: down", timeout=15_000)
    expect(page.locator("#alerts")).to_contain_text("Node down: carbon_tracker")
    page.get_by_role("button", name="Find options").click()
    expect(page.locator("#alerts")).to_contain_text(re.compile(r"Task \S+ failed at node .*carbon_tracker went down"), timeout=60_000)
    shot(page, "node-down")

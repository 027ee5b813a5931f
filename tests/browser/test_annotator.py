"""The annotator page in a real browser: sign-in, keyboard-only answers, skip, correction,
the label history they leave behind, the timings, and the offline API docs."""
from __future__ import annotations

import statistics

import pytest
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from .conftest import WAIT, make_project, rest, sign_in


def press(driver, *keys):
    """Type ``keys`` into whatever has the focus (the page body, as a person would)."""
    ActionChains(driver).send_keys(*keys).perform()


def shown(driver) -> tuple[int, int]:
    """``(query id, how many pairs were shown so far)`` of the page's current pair."""
    review = driver.find_element(By.ID, "review")
    return int(review.get_attribute("data-query")), int(review.get_attribute("data-shown"))


def wait_next(driver, after: int) -> int:
    """Wait until a pair is shown after the ``after``-th one; its query id."""
    WebDriverWait(driver, WAIT).until(
        lambda d: d.find_element(By.ID, "review").is_displayed()
        and int(d.find_element(By.ID, "review").get_attribute("data-shown") or 0) > after)
    return shown(driver)[0]


def query_of(live, project, qid) -> dict:
    status, q = rest(live, project["tokens"]["viewer"], "GET",
                     f"/projects/{project['id']}/queries/{qid}")
    assert status == 200, q
    return q


def history(live, project, eid) -> list[dict]:
    status, e = rest(live, project["tokens"]["viewer"], "GET",
                     f"/projects/{project['id']}/examples/{eid}")
    assert status == 200, e
    return e["history"]


def events_of(live, project, eid, qid) -> list[dict]:
    return [h for h in history(live, project, eid) if h["query_id"] == qid]


def answer(driver, keys_and_expect, project, live):
    """Answer the shown pair with ``keys``; returns ``(qid, query before, expected)``.

    ``keys_and_expect(q)`` gets the query (as leased) and returns ``(keys, example label,
    counter-example label)``."""
    qid, count = shown(driver)
    q = query_of(live, project, qid)
    keys, ex_label, ce_label = keys_and_expect(q)
    press(driver, *keys)
    wait_next_or_idle(driver, count)
    return qid, q, (ex_label, ce_label)


def wait_next_or_idle(driver, count):
    """Wait until the pair after the ``count``-th is shown, or the page says none is open."""
    try:
        WebDriverWait(driver, WAIT).until(
            lambda d: d.find_element(By.ID, "idle").is_displayed()
            or int(d.find_element(By.ID, "review").get_attribute("data-shown")) > count)
    except TimeoutException:
        message = driver.find_element(By.ID, "message").text
        raise AssertionError(f"no next pair; the page says: {message!r}") from None


def check_answered(live, project, qid, q, expected):
    """The answer is in both examples' label histories, with old and new labels."""
    ex_label, ce_label = expected
    events = events_of(live, project, q["example"]["id"], qid)
    assert [(e["why"], e["old_label"], e["new_label"]) for e in events] == \
        [("answer_example", q["example"]["label"], ex_label)], events
    if q["counterexample"] is not None:
        events = events_of(live, project, q["counterexample"]["id"], qid)
        wanted = [] if ce_label is None else \
            [("answer_counterexample", q["counterexample"]["label"], ce_label)]
        assert [(e["why"], e["old_label"], e["new_label"]) for e in events] == wanted
    assert query_of(live, project, qid)["status"] == "answered"


def test_sign_in_and_answer_with_the_keyboard(browser, live, breast_project):
    driver, project = browser, breast_project
    sign_in(driver, live, project["tokens"]["annotator"], project["id"])
    wait_next(driver, 0)
    text = driver.find_element(By.ID, "explain").text
    assert "The model thinks the example is" in text and "counter-example" in text
    assert "Either label may be the wrong one" in text
    # The why is the query's own explanation (origin, margin against its τ), not a
    # sentence about the project's current τ.
    shown = [p.text for p in driver.find_elements(By.CSS_SELECTOR, "#explain p.why")]
    assert len(shown) >= 2 and any("margin" in line for line in shown)
    assert "Answered 0" in driver.find_element(By.ID, "progress").text
    # Probability bars with the class names, and the features table with highlights.
    assert "malignant" in driver.find_element(By.ID, "side-example").text
    assert driver.find_elements(By.CSS_SELECTOR, "#features tr.differs")

    plans = [
        lambda q: (["1", Keys.TAB, "0", Keys.ENTER], 1, 0),
        lambda q: (["k", Keys.ENTER], q["example"]["label"], None),
        lambda q: (["m", Keys.TAB, "k", Keys.ENTER], 0, q["counterexample"]["label"]),
    ]
    done = [answer(driver, plan, project, live) for plan in plans]
    for qid, q, expected in done:
        check_answered(live, project, qid, q, expected)
    WebDriverWait(driver, WAIT).until(
        lambda d: "Answered 3" in d.find_element(By.ID, "progress").text)
    assert "pair #%d" % done[-1][0] in driver.find_element(By.ID, "last-text").text
    answered_before_the_page(driver, live, project)


def answered_before_the_page(driver, live, project):
    """The annotator's answer to the shown pair reached the server before (a retry after a
    lost response): the page's answer gets the 409 ``already_answered``, says the answer
    was saved and moves on; nothing is applied twice."""
    token = project["tokens"]["annotator"]
    qid, count = shown(driver)
    q = query_of(live, project, qid)
    body = {"example_label": q["example"]["label"]}
    if q["counterexample"] is not None:
        body["counterexample_not_sure"] = True
    status, _ = rest(live, token, "POST", f"/projects/{project['id']}/queries/{qid}/answer",
                     body)
    assert status == 200
    press(driver, "k", Keys.ENTER)
    wait_next_or_idle(driver, count)
    assert "already saved" in driver.find_element(By.ID, "message").text
    assert len(events_of(live, project, q["example"]["id"], qid)) == 1


def test_five_pairs_with_a_skip_and_a_correction(browser, live, breast_project):
    """Keyboard only: four answers, one skip (release) and one correction."""
    driver, project = browser, breast_project
    sign_in(driver, live, project["tokens"]["annotator"], project["id"])
    wait_next(driver, 0)
    answered = [answer(driver, lambda q: (["1", Keys.TAB, "1", Keys.ENTER], 1, 1),
                       project, live)]
    skipped, count = shown(driver)
    press(driver, "s")
    wait_next_or_idle(driver, count)
    assert "kipped" in driver.find_element(By.ID, "message").text
    answered.append(answer(driver, lambda q: (["0", Keys.ENTER], 0, None), project, live))
    answered.append(answer(driver, lambda q: (["k", Keys.ENTER], q["example"]["label"], None),
                           project, live))
    # (A pair whose candidates ran out has no counter-example to label.)
    answered.append(answer(driver, lambda q: (["b", Keys.TAB, "m", Keys.ENTER], 1, 0)
                           if q["counterexample"] else (["b", Keys.ENTER], 1, None),
                           project, live))
    # Correct the last answer: the example was malignant after all.
    press(driver, "c")
    select = WebDriverWait(driver, WAIT).until(
        EC.visibility_of_element_located((By.ID, "correct-example")))
    assert driver.switch_to.active_element == select
    tabs = [Keys.TAB] * (2 if answered[-1][1]["counterexample"] else 1)   # to the reason
    press(driver, "m", *tabs, "pressed the wrong key", Keys.ENTER)
    WebDriverWait(driver, WAIT).until(
        lambda d: d.find_element(By.ID, "last-text").text.startswith("Corrected"))

    for qid, q, expected in answered[:-1]:
        check_answered(live, project, qid, q, expected)
    qid, q, _ = answered[-1]
    events = events_of(live, project, q["example"]["id"], qid)
    assert events[0]["why"] == "answer_example" and events[0]["new_label"] == 1
    assert events[-1]["new_label"] == 0 and events[-1]["why"] != "answer_example", events
    if "reason" in events[-1]:
        assert events[-1]["reason"] == "pressed the wrong key"
    if q["counterexample"] is not None:
        ce_events = events_of(live, project, q["counterexample"]["id"], qid)
        assert ce_events[0]["why"] == "answer_counterexample" and ce_events[-1]["new_label"] == 0
    # The skip left no label behind (unless the pair came back and was answered later).
    again = {a[0] for a in answered}
    sq = query_of(live, project, skipped)
    if skipped not in again:
        assert sq["status"] in ("open", "leased") and sq["answer"] is None
        assert events_of(live, project, sq["example"]["id"], skipped) == []


@pytest.mark.long          # a measurement for the report (12 s): make test-long
def test_timings(browser, live, service, breast):
    """Cold load → first pair, and key press → next pair over 20 answers (embedded SQLite,
    background thread); printed for the report, bounded loosely."""
    data, noisy = breast.data, breast.noisy
    project = make_project(service, "breast-timing", data.X_train[:455], noisy[:455],
                           ["malignant", "benign"], [30], min_open=21)
    driver = browser
    sign_in(driver, live, project["tokens"]["annotator"], project["id"])
    wait_next(driver, 0)
    driver.execute_cdp_cmd("Network.clearBrowserCache", {})
    driver.get(live.url + f"/ui/?project={project['id']}")           # cold: token kept
    wait_next(driver, 0)
    first = driver.execute_script("return window.cincerMetrics.firstPairMs")
    for _ in range(20):
        _, count = shown(driver)
        press(driver, "k", Keys.ENTER)
        wait_next_or_idle(driver, count)
    # Each step is recorded at the frame after the pair is drawn: wait for the last one.
    WebDriverWait(driver, WAIT).until(
        lambda d: d.execute_script("return window.cincerMetrics.nextPairMs.length") >= 20)
    steps = driver.execute_script("return window.cincerMetrics.nextPairMs")
    assert len(steps) == 20, steps
    median = statistics.median(steps)
    print(f"\nTIMINGS first pair after cold load: {first:.0f} ms; key press -> next pair: "
          f"median {median:.0f} ms, max {max(steps):.0f} ms over {len(steps)} answers")
    assert first < 10_000 and median < 3_000


def test_docs_load_offline(browser, live):
    driver = browser
    driver.get(live.url + "/api/v1/docs")
    WebDriverWait(driver, WAIT).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) >= 10)
    text = driver.find_element(By.TAG_NAME, "body").text
    for path in ("/api/v1/projects/{pid}/examples", "/api/v1/projects/{pid}/queries/next",
                 "/api/v1/projects/{pid}/queries/{qid}/answer"):
        assert path in text
    loaded = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    assert loaded and all(url.startswith(live.url) for url in loaded), loaded


def test_a_text_project_shows_the_utterances(browser, live, service):
    from cincer_service.datasets import inject_noise, synthetic_intents
    texts, truth, names = synthetic_intents(240, seed=1)
    noisy, _ = inject_noise(truth, len(names), 0.2, seed=1)
    project = make_project(service, "intents-page", texts, noisy, names, [256],
                           bootstrap=80, min_open=2, input_kind="text")
    sign_in(browser, live, project["tokens"]["annotator"], project["id"])
    WebDriverWait(browser, WAIT).until(
        lambda d: d.find_element(By.ID, "review").is_displayed())
    quotes = [q.text for q in browser.find_elements(By.CSS_SELECTOR, "blockquote.utterance")]
    assert len(quotes) == 2 and all(q in texts for q in quotes)
    assert not browser.find_element(By.ID, "features").is_displayed()


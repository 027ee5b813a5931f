"""The data owner's overview in a real browser: compute it, open a cell, relabel a batch,
and find every change in the label history through the REST API."""
from __future__ import annotations

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

from .conftest import WAIT, rest


def open_overview(driver, live, project):
    driver.get(live.url + f"/ui/overview?project={project['id']}")
    driver.execute_script("sessionStorage.clear()")
    driver.get(live.url + f"/ui/overview?project={project['id']}")
    field = WebDriverWait(driver, WAIT).until(
        EC.visibility_of_element_located((By.ID, "token")))
    field.send_keys(project["tokens"]["admin"], Keys.ENTER)
    button = WebDriverWait(driver, WAIT).until(
        EC.element_to_be_clickable((By.ID, "recompute")))
    if driver.find_elements(By.CSS_SELECTOR, "#matrix td.cell") == []:
        button.click()
    WebDriverWait(driver, 60).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#matrix td.cell"))


def open_disagreeing_cell(driver):
    """Click the largest cell whose prediction differs from the label; ``(label, pred)``."""
    cells = [c for c in driver.find_elements(By.CSS_SELECTOR, "#matrix td.cell")
             if c.get_attribute("data-label") != c.get_attribute("data-prediction")]
    cell = max(cells, key=lambda c: int(c.find_element(By.CLASS_NAME, "count").text))
    label, prediction = int(cell.get_attribute("data-label")), \
        int(cell.get_attribute("data-prediction"))
    cell.click()
    WebDriverWait(driver, WAIT).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#cell-list tbody tr[data-id]"))
    return label, prediction


def test_relabel_a_batch_from_a_cell(browser, live, breast_project):
    driver, project = browser, breast_project
    open_overview(driver, live, project)
    assert "From model version" in driver.find_element(By.ID, "status").text
    # the crowd panels render beside it (their clicks: test_crowd_panel, make test-long)
    WebDriverWait(driver, WAIT).until(
        lambda d: "Krippendorff" in d.find_element(By.ID, "annotators-summary").text
        and "browser-test" in d.find_element(By.ID, "sources").text)
    label, prediction = open_disagreeing_cell(driver)
    rows = driver.find_elements(By.CSS_SELECTOR, "#cell-list tbody tr[data-id]")
    ids = [int(r.get_attribute("data-id")) for r in rows][:3]
    for row in rows[:3]:
        row.find_element(By.CSS_SELECTOR, "input[type=checkbox]").click()
    assert driver.find_element(By.ID, "selected-count").text == f"{len(ids)} selected"
    Select(driver.find_element(By.ID, "relabel-to")).select_by_value(str(prediction))
    driver.find_element(By.ID, "reason").send_keys("labeller confused the classes")
    driver.find_element(By.ID, "do-relabel").click()
    WebDriverWait(driver, WAIT).until(
        lambda d: "relabelled as" in d.find_element(By.ID, "message").text)
    assert f"{len(ids)} of {len(ids)} examples" in driver.find_element(By.ID, "message").text

    for eid in ids:
        status, example = rest(live, project["tokens"]["viewer"], "GET",
                               f"/projects/{project['id']}/examples/{eid}")
        assert status == 200 and example["label"] == prediction
        last = example["history"][-1]
        assert (last["why"], last["old_label"], last["new_label"], last["actor"]) == \
            ("overview_relabel", label, prediction, "admin")
    # The list now shows the new labels; the overview says it is out of date.
    WebDriverWait(driver, WAIT).until(
        lambda d: "Labels changed since" in d.find_element(By.ID, "status").text)
    assert driver.find_element(By.ID, "progress-plot").get_attribute("src").startswith("blob:")
    WebDriverWait(driver, WAIT).until(    # the cleaning curve's PNG, drawn beside it
        lambda d: d.find_element(By.ID, "curve-plot").get_attribute("src").startswith("blob:"))

"""report.html in headless Chromium: renders without console errors, thumbnails load, clusters open, the
filters and search work, HTML in a record stays text, and a 318k-record report loads in under 2 s."""

from __future__ import annotations

import numpy as np
import pytest
from explorer_pool import EVIL_ANSWER, synthetic_header, synthetic_records, synthetic_selection
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from selection.explorer import write_explorer

BROKEN_IMAGES = "return Array.from(document.images).filter(img => !(img.naturalWidth > 0)).map(img => img.src)"


def _rows(chromium) -> list[str]:
    return [tr.get_attribute("data-cluster") for tr in chromium.driver.find_elements(By.CSS_SELECTOR, "#clusters tr.cluster-row")]


def test_report_html_in_chromium(chromium, explorer_run, tmp_path):
    run_dir, _ = explorer_run
    page = run_dir / "selection" / "report.html"
    driver = chromium.driver
    assert chromium.open(page) == []  # no console errors
    images = chromium.run("return document.images.length")
    assert images >= 4 and chromium.run(BROKEN_IMAGES) == []  # plots + the first cluster's thumbnails
    assert chromium.run("return window.__pwned") is None

    clusters = chromium.run("return JSON.parse(document.getElementById('explorer-data').textContent).clusters")
    assert len(_rows(chromium)) == len(clusters) >= 2
    # sorted by size, largest first; clicking another cluster shows exactly its samples
    sizes = {str(c["id"]): c["size"] for c in clusters}
    assert [sizes[r] for r in _rows(chromium)] == sorted(sizes.values(), reverse=True)
    target = _rows(chromium)[1]
    driver.find_element(By.CSS_SELECTOR, f'#clusters tr[data-cluster="{target}"]').click()
    assert driver.find_element(By.CSS_SELECTOR, "#detail h2").text.startswith(f"cluster {target}:")
    cards = driver.find_elements(By.CSS_SELECTOR, "#detail .sample")
    expected = chromium.run("return JSON.parse(document.getElementById('explorer-data').textContent)"
                            ".samples.filter(s => String(s.cluster) === arguments[0]).length", target)
    assert len(cards) == expected == sizes[target]  # small pool: every record of the cluster is shown
    assert chromium.run(BROKEN_IMAGES) == [] and chromium.run("return location.hash") == f"#cluster={target}"

    # sort by kept share
    Select(driver.find_element(By.ID, "sort")).select_by_value("share")
    share = {str(c["id"]): c["kept"] / c["size"] for c in clusters}
    assert [share[r] for r in _rows(chromium)] == sorted(share.values(), reverse=True)
    # filter by task: only VQA samples are left in the detail view
    Select(driver.find_element(By.ID, "task")).select_by_visible_text("vqa")
    driver.find_element(By.CSS_SELECTOR, "#clusters tr.cluster-row").click()
    chips = [c.text for c in driver.find_elements(By.CSS_SELECTOR, "#detail .sample .meta .chip:nth-child(2)")]
    assert chips and set(chips) == {"vqa"}
    Select(driver.find_element(By.ID, "task")).select_by_value("")
    # filter by class: the selected cluster gives way to one that holds the class, and only its rivers show
    Select(driver.find_element(By.ID, "class")).select_by_visible_text("river")
    chips = [c.text for c in driver.find_elements(By.CSS_SELECTOR, "#detail .sample .meta .chip:nth-child(3)")]
    assert chips and set(chips) == {"river"}
    Select(driver.find_element(By.ID, "class")).select_by_value("")

    # search finds the record whose answer is HTML; the page shows it as text and runs none of it
    driver.find_element(By.ID, "search").send_keys("pwned")
    assert len(_rows(chromium)) == 1
    driver.find_element(By.CSS_SELECTOR, "#clusters tr.cluster-row").click()
    (card,) = driver.find_elements(By.CSS_SELECTOR, "#detail .sample")
    assert card.get_attribute("data-id") == "pool_008"
    assert card.find_element(By.CSS_SELECTOR, ".a").text == "A: " + EVIL_ANSWER
    assert card.find_element(By.CSS_SELECTOR, ".origin").text.endswith("(index 8)")
    assert chromium.run("return window.__pwned") is None and chromium.run("return document.images.length") >= 1
    driver.find_element(By.ID, "search").clear()

    # a record link opens its cluster with the record highlighted
    assert chromium.open(page, "id=pool_008") == []
    assert driver.find_element(By.CSS_SELECTOR, "#detail .sample.highlight").get_attribute("data-id") == "pool_008"

    shot = tmp_path / "report.png"
    assert chromium.screenshot(shot).stat().st_size > 10_000


@pytest.mark.slow
def test_report_of_a_318k_record_pool_loads_in_under_2_seconds(chromium, tmp_path):
    n, k = 318_000, 4818
    selection = synthetic_selection(n, k, keep_every=3)
    page = write_explorer(tmp_path, selection, synthetic_header(selection, n), {"select": 1.0}, synthetic_records(n))
    assert chromium.open(page) == []
    ready_ms = chromium.run("return window.explorerReadyMs")  # from navigation start to the first full render
    assert ready_ms < 2000, ready_ms
    assert len(_rows(chromium)) == 300  # the list renders in pages of 300 clusters
    chromium.driver.find_element(By.ID, "more").click()
    assert len(_rows(chromium)) == 600
    assert np.isfinite(ready_ms)

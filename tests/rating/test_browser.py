"""The rater's page in headless Chromium: keyboard only, a reload mid-way, the export, and
``score`` reading the export back. Needs Debian's chromium and chromium-driver (.ci/run
installs them); the test fails without them."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from daninet_pipeline.rating.build import build_study
from daninet_pipeline.rating.order import ORDER_JS, candidate_order, seeded_permutation, trial_order

from .helpers import EXPORT_COLUMNS, start_chromium, stop_chromium
from .test_build import assert_rater_folder_blind


@pytest.fixture
def browser(tmp_path):
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver = start_chromium(downloads)
    driver.downloads = downloads
    yield driver
    stop_chromium(driver)


def _press(driver, *keys, shift=False):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    chain = ActionChains(driver)
    if shift:
        chain.key_down(Keys.SHIFT)
    for key in keys:
        chain.send_keys(key)
    if shift:
        chain.key_up(Keys.SHIFT)
    chain.perform()


def _wait_until_loaded(driver, seconds: float = 30.0) -> None:
    """Wait until the document has loaded and its script has run. ``refresh()`` can return
    while the new document is still being parsed (a fresh-clone `.ci/run` of 2026-12-07: the
    ``rater-id`` element was there, empty, the page's script not yet run)."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, seconds).until(lambda d: d.execute_script("return document.readyState") == "complete")


def _shown(driver) -> tuple[list[str], str]:
    """Image IDs of the candidates in letter order, and the progress text."""
    ids = driver.execute_script(
        "return Array.from(document.querySelectorAll('.frame[data-view=\"axial\"]')).map(d => d.dataset.image)")
    return ids[1:], driver.find_element("id", "progress").text


def _checked(driver, name: str) -> str:
    return driver.execute_script(
        f"const c = document.querySelector(\"input[name='{name}']:checked\"); return c ? c.value : null")


def test_page_order_matches_python(browser, tmp_path):
    (tmp_path / "p.html").write_text(f"<script>{ORDER_JS}</script>")
    browser.get((tmp_path / "p.html").as_uri())
    seeds = [f"study{i}|rater-{i % 7}|t{i * 31}" for i in range(200)] + ["é|ü|日本"]
    js = browser.execute_script("return arguments[0].map((s, i) => seededPermutation(2 + i % 9, s))", seeds)
    assert js == [seeded_permutation(2 + i % 9, s) for i, s in enumerate(seeds)]


def test_rate_every_trial_with_the_keyboard_reload_export_and_score(rating_derivatives, browser, tmp_path):
    from selenium.webdriver.common.keys import Keys

    _, out = rating_derivatives
    study = tmp_path / "study"
    info = build_study(out, study, seed=5)
    key = pd.read_csv(study / "key.tsv", sep="\t", dtype=str, keep_default_na=False)
    config_of = dict(zip(key["image_id"], key["configuration"]))
    trials = list(dict.fromkeys(key["trial_id"]))
    n = len(trials)
    rater = "rater_7"
    browser.get((study / "rater" / "index.html").as_uri())
    assert browser.switch_to.active_element.get_attribute("id") == "rater-input"
    _press(browser, rater, Keys.ENTER)

    rng = np.random.default_rng(4)
    expected_order = trial_order(info["StudyID"], rater, n)
    chosen = {}
    for pos in range(n):
        if pos == n // 2:
            browser.refresh()  # mid-way: the page resumes with the answers kept
            _wait_until_loaded(browser)
            assert browser.find_element("id", "rater-id").text == rater
            assert _shown(browser)[1] == f"{pos + 1} of {n}"
            assert browser.find_element("id", "answered").text == f"{pos} answered"
            _press(browser, ",")  # back to the last answered trial: its choices are shown
            prev = trials[expected_order[pos - 1]]
            assert (_checked(browser, "first"), _checked(browser, "second") or "") == chosen[prev][:2]
            _press(browser, ".")
        ids, progress = _shown(browser)
        assert progress == f"{pos + 1} of {n}"
        tid = trials[expected_order[pos]]
        built = key[(key["trial_id"] == tid) & (key["role"] == "candidate")].sort_values("position")["image_id"].tolist()
        # the page's letters are Python's order of the built candidates
        assert ids == [built[k] for k in candidate_order(info["StudyID"], rater, tid, len(built))]
        first, second = (int(i) for i in rng.choice(len(ids), size=2, replace=False))
        _press(browser, chr(97 + first))
        if pos % 2:
            _press(browser, chr(97 + second), shift=True)
        else:
            second = None
        assert _checked(browser, "first") == chr(65 + first)
        chosen[tid] = (chr(65 + first), "" if second is None else chr(65 + second), config_of[ids[first]])
        if pos == 0:
            # every frame's slices load from rater/img/ beside the page
            sizes = browser.execute_async_script("""
                const done = arguments[arguments.length - 1];
                const urls = Array.from(document.querySelectorAll('.frame'))
                  .map(d => getComputedStyle(d).backgroundImage.slice(5, -2));
                Promise.all(urls.map(u => new Promise(ok => { const i = new Image();
                  i.onload = () => ok([u, i.naturalWidth]); i.onerror = () => ok([u, 0]); i.src = u; })))
                  .then(done);""")
            assert len(sizes) == 3 * (len(ids) + 1)
            assert all(url.startswith((study / "rater" / "img").as_uri()) and width > 0 for url, width in sizes)
            # the sliders answer the keyboard too
            label = browser.find_element("id", "label-axial").text
            _press(browser, "1", Keys.ARROW_UP, Keys.ARROW_UP)
            assert browser.find_element("id", "label-axial").text != label
        if pos == 1:
            time.sleep(0.6)  # a slow answer, to find in the export's time taken
        _press(browser, Keys.ENTER)

    assert "All 6 trials answered" in browser.find_element("id", "done-text").text
    assert browser.switch_to.active_element.get_attribute("id") == "export-done"
    _press(browser, Keys.ENTER)
    target = browser.downloads / f"answers_{rater}.tsv"
    deadline = time.time() + 20
    while not target.is_file() and time.time() < deadline:
        time.sleep(0.2)
    assert target.is_file(), list(browser.downloads.iterdir())

    answers = pd.read_csv(target, sep="\t", dtype=str, keep_default_na=False)
    assert list(answers.columns) == EXPORT_COLUMNS and len(answers) == n
    assert set(answers["study_id"]) == {info["StudyID"]} and set(answers["rater"]) == {rater}
    assert [trials.index(t) for t in answers["trial_id"]] == expected_order
    assert {t: (f, s) for t, f, s in zip(answers["trial_id"], answers["first"], answers["second"])} == \
        {t: c[:2] for t, c in chosen.items()}
    seconds = answers["seconds"].astype(float)
    assert (seconds >= 0).all() and seconds[answers["position"] == "2"].item() >= 0.5

    proc = subprocess.run([sys.executable, "-m", "daninet_pipeline.rating", "score", str(study), str(target),
                           "--n-boot", "300"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    scores = pd.read_csv(study / "results" / "scores.tsv", sep="\t")
    pooled = scores[scores["rater"] == "all"].set_index("configuration")
    picked = pd.Series([c[2] for c in chosen.values()]).value_counts()
    for conf in info["Configurations"]:
        assert pooled.loc[conf, "first"] == picked.get(conf, 0)
        assert pooled.loc[conf, "share"] == pytest.approx(picked.get(conf, 0) / n, abs=1e-4)
    assert_rater_folder_blind(study, key)

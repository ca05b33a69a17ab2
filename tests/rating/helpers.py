"""Helpers of the rating tests: answers written as the page writes them, a key without
images, and headless Chromium."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from daninet_pipeline.rating.build import KEY_COLUMNS
from daninet_pipeline.rating.order import candidate_order, trial_order

#: The page's export, column for column.
EXPORT_COLUMNS = ["study_id", "rater", "trial_id", "position", "first", "first_image", "second",
                  "second_image", "seconds", "answered_at"]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1280,900"]


def write_key(study_dir: Path, study_id: str, configurations: list[str], n_trials: int,
              trials_per_subject: int = 1) -> pd.DataFrame:
    """A key.tsv of ``n_trials`` trials offering every configuration (images not rendered)."""
    rows = []
    for t in range(n_trials):
        common = {"study_id": study_id, "trial_id": f"t{t:03d}", "subject": f"{t // trials_per_subject:03d}",
                  "session": f"M{t % trials_per_subject:03d}", "age": 70.0}
        rows.append({**common, "role": "real", "position": "n/a", "image_id": f"real{t}",
                     "configuration": "real", "file": "x"})
        # the build order differs between trials, as build's per-trial shuffle makes it
        for pos in range(len(configurations)):
            conf = configurations[(pos + t) % len(configurations)]
            rows.append({**common, "role": "candidate", "position": pos, "image_id": f"img{t}-{conf}",
                         "configuration": conf, "file": "x"})
    study_dir.mkdir(parents=True, exist_ok=True)
    key = pd.DataFrame(rows, columns=KEY_COLUMNS)
    key.to_csv(study_dir / "key.tsv", sep="\t", index=False)
    return key


def write_answers(path: Path, key: pd.DataFrame, rater: str, choose) -> Path:
    """An answers file as the page exports it. ``choose(trial_id, shown)`` gets the
    configurations in the rater's letter order and returns (first, second) indices
    (second may be None)."""
    study_id = key["study_id"].iloc[0]
    trials = list(dict.fromkeys(key["trial_id"]))
    rows = []
    for pos, k in enumerate(trial_order(study_id, rater, len(trials)), 1):
        tid = trials[k]
        cands = key[(key["trial_id"] == tid) & (key["role"] == "candidate")].copy()
        cands = cands.assign(position=cands["position"].astype(int)).sort_values("position")
        perm = candidate_order(study_id, rater, tid, len(cands))
        shown = [cands.iloc[i] for i in perm]
        first, second = choose(tid, [c["configuration"] for c in shown])
        rows.append({"study_id": study_id, "rater": rater, "trial_id": tid, "position": pos,
                     "first": chr(65 + first), "first_image": shown[first]["image_id"],
                     "second": "" if second is None else chr(65 + second),
                     "second_image": "" if second is None else shown[second]["image_id"],
                     "seconds": 3.5, "answered_at": "2026-11-30T12:00:00Z"})
    pd.DataFrame(rows, columns=EXPORT_COLUMNS).to_csv(path, sep="\t", index=False)
    return path


def start_chromium(download_dir: Path):
    """Headless Debian Chromium through its chromedriver, saving downloads in
    ``download_dir``. Fails (never skips) when either is missing: .ci/run installs them."""
    if not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()):
        pytest.fail(f"{CHROMIUM} and {CHROMEDRIVER} are needed: apt-get install chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="daninet-rating-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console messages: driver.get_log
    options.add_experimental_option("prefs", {"download.default_directory": str(download_dir),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)})
    driver.daninet_profile = profile
    return driver


def stop_chromium(driver) -> None:
    """Quit the browser and remove its profile."""
    driver.quit()
    shutil.rmtree(driver.daninet_profile, ignore_errors=True)

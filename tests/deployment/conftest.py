"""Deployment tests: the ones marked ``deployment`` need root and start services (a
one-node SLURM cluster, podman). They run only with ``DANINET_DEPLOYMENT_TESTS=1`` (as
``make slurm-test`` sets it) and are skipped in the default ``make test``.
"""

from __future__ import annotations

import os

import pytest

ENABLE = "DANINET_DEPLOYMENT_TESTS"


def pytest_configure(config):
    config.addinivalue_line(
        "markers", f"deployment: needs root and starts services; runs only with {ENABLE}=1 "
        "(make slurm-test)")


def pytest_collection_modifyitems(config, items):
    if os.environ.get(ENABLE) == "1":
        return
    skip = pytest.mark.skip(reason=f"deployment test: set {ENABLE}=1 or run `make slurm-test`")
    for item in items:
        if item.get_closest_marker("deployment") is not None:
            item.add_marker(skip)

"""Design tests run single-threaded: the scorers are numpy, and the few torch forward passes
(cost checks) on 2 shared cores are faster without torch's thread pool."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread(one_torch_thread):
    yield

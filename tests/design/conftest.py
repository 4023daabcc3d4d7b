"""Design tests run single-threaded: the scorers are numpy, and the few torch forward passes
(cost checks) on 2 shared cores are faster without torch's thread pool."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

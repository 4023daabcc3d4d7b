"""One intra-op thread for these small tests: on a shared, busy CPU, OpenMP threads spinning
against other processes slow tiny tensor ops down by orders of magnitude."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)

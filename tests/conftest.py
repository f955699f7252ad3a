"""Shared pytest setup: one thread per test process (the CI machine has 2 cores), headless matplotlib."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402

torch.set_num_threads(1)

import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _private_data_cache(tmp_path_factory):
    """Rendered-once training data (mcjepa.data.cache) goes to a temporary folder, not the user's ~/.cache."""
    os.environ["MCJEPA_CACHE"] = str(tmp_path_factory.mktemp("mcjepa_cache"))
    yield

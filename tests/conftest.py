"""Shared pytest setup: one thread per test process (the CI machine has 2 cores), headless matplotlib."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402

torch.set_num_threads(1)

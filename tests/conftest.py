"""Shared pytest setup: torch threads, headless matplotlib, one private data cache, and how `make test` spreads
the suite over the cores (pytest-xdist: `-n logical --dist loadfile`, one worker per core).

Threads: each test process runs torch on 1 thread; a test that wants its share of the cores (the long training
test) takes the `cpu_share` fixture: all cores without xdist, cores // workers under xdist. Under xdist the
processes a worker starts (notebook kernels, the browser test's JupyterLab, training subprocesses) get
OMP_NUM_THREADS = that share, so that two workers do not run four threads on two cores.

Data cache: the rendered-once training data (mcjepa.data.cache) of the whole session, notebooks included, goes
to one temporary folder (not the user's ~/.cache), made by the controlling process before the xdist workers
start, so that every worker and every kernel renders a dataset at most once between them (the cache's file lock
makes that safe).

Scheduling (`--dist loadfile`, `NotebookAwareScheduling`): a test module or a notebook is one unit of work, run
on one worker in order (a notebook's cells share one kernel); notebooks 04-08 are one unit, since 08 draws the
points 04-07 write. Units go out in collection order, which `pytest_collection_modifyitems` sorts longest first
(`slow` tests, then the browser test, the ablation notebooks, the other notebooks, the test modules), so that the
long ones do not start last.
"""

import os
import shutil
import tempfile

os.environ.setdefault("MPLBACKEND", "Agg")

WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
CPU_SHARE = max(1, (os.cpu_count() or 1) // WORKERS)
if WORKERS > 1:
    os.environ["OMP_NUM_THREADS"] = str(CPU_SHARE)  # the kernels and subprocesses this worker starts

import torch  # noqa: E402

torch.set_num_threads(1)

import pytest  # noqa: E402

from mcjepa.ablations import ABLATIONS  # noqa: E402
from mcjepa.reproduce import CLAIMS_NOTEBOOK  # noqa: E402

# notebooks run in one unit of work, in this order: 08 reads the ablation points 04-07 write
ABLATION_NOTEBOOKS = (*sorted(spec.notebook for spec in ABLATIONS.values()), CLAIMS_NOTEBOOK)
ABLATION_UNIT = "notebooks 04-08"


def _is_notebook(nodeid: str) -> bool:
    return nodeid.split("::", 1)[0].endswith(".ipynb")


def unit_of_work(nodeid: str) -> str:
    """The xdist unit of work of a test id: its file, except that notebooks 04-08 share one."""
    path = nodeid.split("::", 1)[0]
    stem = path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return ABLATION_UNIT if _is_notebook(nodeid) and stem in ABLATION_NOTEBOOKS else path


def _start_rank(item) -> int:
    """Where an item's unit of work goes in the queue: the long ones first."""
    if item.get_closest_marker("slow"):
        return 0
    if item.get_closest_marker("browser"):
        return 1
    if _is_notebook(item.nodeid):
        return 2 if unit_of_work(item.nodeid) == ABLATION_UNIT else 3
    return 4


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Units of work longest first (the lowest `_start_rank` of their items), then in collection order; a
    unit's items stay together and in their order (stable sort)."""
    rank: dict[str, int] = {}
    first: dict[str, int] = {}
    for index, item in enumerate(items):
        unit = unit_of_work(item.nodeid)
        rank[unit] = min(rank.get(unit, 9), _start_rank(item))
        first.setdefault(unit, index)
    items.sort(key=lambda item: (rank[unit_of_work(item.nodeid)], first[unit_of_work(item.nodeid)]))


def pytest_xdist_make_scheduler(config, log):
    """`--dist loadfile` with notebooks 04-08 as one unit and the units in collection order (xdist would sort
    them by their number of tests); other --dist modes are xdist's own."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class NotebookAwareScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return unit_of_work(nodeid)

    config.option.loadscopereorder = False
    return NotebookAwareScheduling(config, log)


@pytest.hookimpl(trylast=True)  # after pytest's tmp_path plugin has made its factory
def pytest_configure(config):
    """One data cache for the session, made by the controlling process (a worker inherits its environment), in
    the session's pytest temporary folder: pytest's retention removes it with the folder if the session is killed
    before `pytest_unconfigure`."""
    if not hasattr(config, "workerinput"):
        factory = getattr(config, "_tmp_path_factory", None)
        config.mcjepa_cache = str(factory.mktemp("mcjepa_cache") if factory is not None
                                  else tempfile.mkdtemp(prefix="mcjepa_cache_"))
        os.environ["MCJEPA_CACHE"] = config.mcjepa_cache


def pytest_unconfigure(config):
    """The session's data cache is removed (hundreds of MB) by the process that made it."""
    if getattr(config, "mcjepa_cache", None):
        shutil.rmtree(config.mcjepa_cache, ignore_errors=True)


@pytest.fixture
def cpu_share():
    """torch threads = this process's share of the cores for one test (all of them without xdist); restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(CPU_SHARE)
    yield CPU_SHARE
    torch.set_num_threads(before)

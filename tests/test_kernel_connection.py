"""The kernels the kit starts (`reproduce.execute_checked`: make demo, the profiles, notebook_outputs) talk to
papermill over an encrypted connection where ipykernel supports one, so ipykernel has nothing to warn about;
with jupyter_client's default policy it warns "running over TCP without encryption" at every start."""

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from traitlets.config import Config

from mcjepa.reproduce import execute_checked, kernel_config

WARNING = "Kernel is running over TCP without encryption"


def _notebook(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("print(6 * 7)")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "one.ipynb"
    nbformat.write(nb, path)
    return path


def _run(tmp_path, capfd, **options):
    executed = execute_checked(str(_notebook(tmp_path)), str(tmp_path / "out.ipynb"), progress_bar=False, **options)
    assert executed.cells[0].outputs[0]["text"] == "42\n"
    return capfd.readouterr().err


def test_kit_kernels_start_without_the_encryption_warning(tmp_path, capfd):
    assert WARNING not in _run(tmp_path, capfd)


def test_the_default_policy_is_what_warned(tmp_path, capfd):
    metadata = KernelSpecManager().get_kernel_spec("python3").metadata
    if "curve" not in str(metadata.get("supported_encryption", "")):
        pytest.skip("this ipykernel has no Curve support (and does not warn)")
    assert kernel_config()["KernelManager"]["transport_encryption"] == "auto"
    assert WARNING in _run(tmp_path, capfd, config=Config())

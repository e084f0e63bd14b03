"""notebooks/analysis.ipynb: committed without outputs, and runs top to bottom, headless,
on a fresh pre-training run (as Jupyter would: a kernel started in notebooks/)."""
import json
import os
import pathlib
import sys

import pytest

from prelm_jax import train

REPO = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "analysis.ipynb"


def test_the_committed_notebook_carries_no_outputs():
  nbformat = pytest.importorskip("nbformat", reason="nbformat is a test extra: pip install "
                                 "-e '.[test]'")
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  nbformat.validate(notebook)
  code = [cell for cell in notebook.cells if cell.cell_type == "code"]
  assert code
  for cell in code:
    assert cell.outputs == [] and cell.execution_count is None, cell.source[:80]


def test_the_notebook_runs_on_a_fresh_run(pydocs_data_dir, tiny_config, tmp_path,
                                          monkeypatch):
  reason = "nbclient and ipykernel are test extras: pip install -e '.[test]'"
  nbformat = pytest.importorskip("nbformat", reason=reason)
  nbclient = pytest.importorskip("nbclient", reason=reason)
  kernelspec = pytest.importorskip("ipykernel.kernelspec", reason=reason)
  from jupyter_client import KernelManager  # pylint: disable=g-import-not-at-top
  from jupyter_client.kernelspec import KernelSpecManager  # pylint: disable=g-import-not-at-top

  workdir = tmp_path / "run"
  train.run(tiny_config(pydocs_data_dir, num_steps=4, eval_every=2, checkpoint_every=4),
            str(workdir))
  # The kernel inherits this environment: the run, this checkout (not an installed
  # copy of prelm_jax), and one CPU device as on a laptop.
  monkeypatch.setenv("PRELM_RUN", str(workdir))
  monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
      p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
  monkeypatch.setenv("JAX_PLATFORMS", "cpu")
  monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
  # A kernelspec of this interpreter, so that no other python3 kernel on the machine
  # (a user's, another venv's) runs the notebook.
  kernels = tmp_path / "kernels"
  kernelspec.write_kernel_spec(str(kernels / "python3"))
  spec = json.loads((kernels / "python3" / "kernel.json").read_text())
  assert spec["argv"][0] == sys.executable
  manager = KernelManager(kernel_name="python3", kernel_spec_manager=KernelSpecManager(
      kernel_dirs=[str(kernels)]))
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  client = nbclient.NotebookClient(
      notebook, km=manager, kernel_name="python3", timeout=300,
      resources={"metadata": {"path": str(REPO / "notebooks")}})
  client.execute()  # raises CellExecutionError, with the cell and traceback, on any error

  code = [cell for cell in notebook.cells if cell.cell_type == "code"]
  stderr = [o.text for cell in code for o in cell.outputs
            if o.output_type == "stream" and o.name == "stderr"]
  assert not stderr, stderr  # no library chatter reaches the reader
  for cell in code:
    images = [o for o in cell.outputs if "image/png" in o.get("data", {})]
    # Each plot is shown once: as the cell's value, not again by pyplot.
    assert len(images) == ("plots." in cell.source), cell.source

"""Experiment files import their siblings from their own folder, installed or not.

The trap this guards against: a non-editable install put `experiments` into
site-packages, and `--config <checkout>/experiments/x.py` then ran the checkout's x.py
with the installed base.py. Here a fake `experiments` package shadows the checkout's
on sys.path, and the loaded configs must still come from the files' own folders.
"""
import importlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tomllib

import pytest

from prelm_jax import registry

REPO = pathlib.Path(__file__).resolve().parent.parent
EDITED_SEED = 12345
# Appended to a copy of base.py: the edit a researcher makes in their checkout.
EDIT = f"""

_unedited = get_config


def get_config(arg=None):
  config = _unedited(arg)
  config.seed = {EDITED_SEED}
  return config
"""


@pytest.fixture
def shadow_site(tmp_path):
  """A folder holding an `experiments` package whose base.py must never be used."""
  site = tmp_path / "site"
  (site / "experiments").mkdir(parents=True)
  (site / "experiments" / "__init__.py").write_text("")
  (site / "experiments" / "base.py").write_text(
      "def get_config(arg=None):\n  raise RuntimeError('the shadowing base.py was used')\n")
  return site


@pytest.fixture
def edited_checkout(tmp_path):
  """A copy of experiments/ whose base.py was edited after the install."""
  folder = tmp_path / "checkout" / "experiments"
  shutil.copytree(REPO / "experiments", folder,
                  ignore=shutil.ignore_patterns("__pycache__"))
  with open(folder / "base.py", "a") as f:
    f.write(EDIT)
  return folder


@pytest.fixture
def experiments_modules():
  """Puts sys.modules' `experiments` entries back as they were after the test."""
  saved = {k: m for k, m in sys.modules.items() if k.split(".")[0] == "experiments"}
  yield
  for k in [k for k in sys.modules if k.split(".")[0] == "experiments"]:
    del sys.modules[k]
  sys.modules.update(saved)


def test_config_files_import_their_own_folder_not_a_shadowing_package(
    shadow_site, edited_checkout, experiments_modules, monkeypatch, tmp_path):
  monkeypatch.syspath_prepend(str(shadow_site))
  for k in [k for k in sys.modules if k.split(".")[0] == "experiments"]:
    del sys.modules[k]
  shadow = importlib.import_module("experiments.base")
  assert pathlib.Path(shadow.__file__).parent.parent == shadow_site  # the trap is set
  assert registry.load(str(edited_checkout / "bert_tiny_pydocs.py")).seed == EDITED_SEED
  assert registry.load(str(edited_checkout / "lstm_tiny_pydocs.py")).seed == EDITED_SEED
  assert registry.load("bert_tiny_pydocs").seed != EDITED_SEED  # the registry's own
  # A lone config file outside any experiments folder extends the registry's base.py.
  (tmp_path / "mine.py").write_text("from experiments import base\n\n\n"
                                    "def get_config(arg=None):\n"
                                    "  return base.get_config(arg)\n")
  assert registry.load(str(tmp_path / "mine.py")).seed != EDITED_SEED
  assert sys.modules["experiments.base"] is shadow  # loading changed nothing after


def installed_copy(site):
  """prelm_jax laid out in `site` as a non-editable install does, per pyproject.toml."""
  setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
  for package in setuptools["packages"]:
    source = setuptools["package-dir"].get(package, package.replace(".", "/"))
    target = site / package.replace(".", "/")
    target.mkdir(parents=True)
    for f in (REPO / source).glob("*.py"):
      shutil.copy(f, target)


def test_a_non_editable_install_loads_names_and_paths_from_any_cwd(
    shadow_site, edited_checkout, tmp_path):
  installed_copy(shadow_site)
  code = f"""
import json
from prelm_jax import main, registry
seeds = {{}}
for arg in ("bert_tiny_pydocs", {str(edited_checkout / "bert_tiny_pydocs.py")!r},
            {str(edited_checkout / "lstm_tiny_pydocs.py")!r}):
  main.parse_flags(["prelm", "train", "--config", arg])
  seeds[arg] = main._CONFIG.value.seed
seeds["load"] = registry.load("bert_tiny_pydocs").seed
print(json.dumps([str(registry.EXPERIMENTS_DIR), seeds]))
"""
  cwd = tmp_path / "elsewhere"
  cwd.mkdir()
  # Only the installed copy (with the shadowing `experiments` beside it) is importable.
  proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True,
                        text=True, timeout=120,
                        env=dict(os.environ, PYTHONPATH=str(shadow_site)))
  assert proc.returncode == 0, proc.stderr[-3000:]
  experiments_dir, seeds = json.loads(proc.stdout.splitlines()[-1])
  assert experiments_dir == str(shadow_site / "prelm_jax" / "experiments")
  edited = [s for a, s in seeds.items() if a.startswith(str(edited_checkout))]
  assert edited == [EDITED_SEED, EDITED_SEED], seeds
  assert seeds["bert_tiny_pydocs"] == seeds["load"] != EDITED_SEED, seeds


def test_every_package_is_installed_and_experiments_only_inside_prelm_jax():
  setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
  on_disk = sorted(".".join(p.parent.relative_to(REPO).parts)
                   for p in (REPO / "prelm_jax").rglob("__init__.py"))
  installed_experiments = ["prelm_jax.experiments", "prelm_jax.experiments.sweeps"]
  assert sorted(setuptools["packages"]) == sorted(on_disk + installed_experiments), (
      "add the new package to [tool.setuptools] packages in pyproject.toml")
  assert setuptools["package-dir"] == {"prelm_jax.experiments": "experiments",
                                       "prelm_jax.experiments.sweeps": "experiments/sweeps"}

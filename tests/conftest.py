"""Test set-up: 8 simulated CPU devices, so mesh code runs without accelerators.

XLA reads the flag once, when jax first initialises its backends, so it must be set
before anything imports jax.
"""
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    ).strip()


# Shared data fixtures, session-scoped so the corpus is built and read once per run.
import hashlib  # noqa: E402  (after the environment set-up above)
import pathlib  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parent.parent
# The tiny model of tests/test_train.py's tiny_config, as `prelm train` overrides.
TINY = {"model.num_layers": 1, "model.hidden_size": 32, "model.num_heads": 2,
        "model.mlp_dim": 64, "model.max_position_embeddings": 64, "data.vocab_size": 600,
        "data.max_seq_len": 64, "data.max_predictions_per_seq": 10,
        "train.batch_size": 16, "train.eval_batch_size": 16, "train.log_every": 1,
        "train.eval_every": 10, "train.checkpoint_every": 2, "train.keep_checkpoints": 3,
        "optim.learning_rate": 3e-3, "optim.warmup_steps": 2}


def prelm_train_argv(data_dir, workdir, *extra, **overrides):
  """argv of `python -m prelm_jax.main train` on the tiny model.

  Overrides as {"train.num_steps": 8}; `extra` are further arguments as they are.
  """
  settings = dict(TINY, **{"data.tfds_data_dir": data_dir}, **overrides)
  return ([sys.executable, "-m", "prelm_jax.main", "train", "--config",
           str(REPO / "experiments" / "base.py"), "--workdir", str(workdir)]
          + [f"--config.{k}={v}" for k, v in settings.items()] + list(extra))


def run_prelm(argv, *, prelude=None, timeout=300):
  """Runs argv (from prelm_train_argv) to completion; `prelude` is Python run first in
  the same process (e.g. registering a test dataset)."""
  if prelude is not None:
    script = (f"import sys\nsys.path.insert(0, {str(REPO / 'tests')!r})\n{prelude}\n"
              "from prelm_jax import main\nsys.argv = ['prelm'] + sys.argv[1:]\nmain.cli()\n")
    argv = [sys.executable, "-c", script] + argv[argv.index("train"):]
  return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def tree_digest(path):
  """A digest of every file's name and bytes under `path`."""
  digest = hashlib.sha256()
  for f in sorted(pathlib.Path(path).rglob("*")):
    if f.is_file():
      digest.update(str(f.relative_to(path)).encode())
      digest.update(f.read_bytes())
  return digest.hexdigest()


@pytest.fixture(scope="session")
def pydocs_data_dir(tmp_path_factory):
  """A TFDS data_dir holding the pydocs corpus, built once per test session."""
  from prelm_jax.data import corpus
  data_dir = str(tmp_path_factory.mktemp("tensorflow_datasets"))
  corpus.load_documents("pydocs", "train", data_dir)  # prepares it
  return data_dir


@pytest.fixture(scope="session")
def pydocs_texts(pydocs_data_dir):
  """{"train": [...], "validation": [...]} texts of the built pydocs corpus."""
  from prelm_jax.data import corpus
  return {split: corpus.load_documents("pydocs", split, pydocs_data_dir)
          for split in ("train", "validation")}


@pytest.fixture(scope="session")
def wordpiece(pydocs_texts):
  """A small uncased WordPiece trained on the pydocs training split."""
  from prelm_jax.data import tokenizer
  return tokenizer.train_wordpiece(pydocs_texts["train"], 2000, lowercase=True)


def pytest_collection_modifyitems(config, items):
  """PRELM_SKIP_SLOW=1 leaves out the tests marked slow (CI runs them all: they fit)."""
  del config
  if os.environ.get("PRELM_SKIP_SLOW") != "1":
    return
  skip = pytest.mark.skip(reason="marked slow and PRELM_SKIP_SLOW=1; unset it to run")
  for item in items:
    if "slow" in item.keywords:
      item.add_marker(skip)

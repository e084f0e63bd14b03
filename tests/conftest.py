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


# Shared fixtures. The helpers are fixtures returning functions (session-scoped, so
# module-scoped fixtures can use them too): test modules never import each other.
import hashlib  # noqa: E402  (after the environment set-up above)
import json  # noqa: E402
import pathlib  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
# A model that trains in seconds: in-process (tiny_config) and through `prelm train`
# (prelm_train_argv), with their own cadences.
TINY_MODEL = {"model.num_layers": 1, "model.hidden_size": 32, "model.num_heads": 2,
              "model.mlp_dim": 64, "model.max_position_embeddings": 64,
              "data.vocab_size": 600, "data.max_seq_len": 64,
              "data.max_predictions_per_seq": 10, "train.batch_size": 16,
              "train.eval_batch_size": 16, "optim.learning_rate": 3e-3,
              "optim.warmup_steps": 2}
TINY_CLI = dict(TINY_MODEL, **{"train.log_every": 1, "train.eval_every": 10,
                               "train.checkpoint_every": 2, "train.keep_checkpoints": 3})


@pytest.fixture(scope="session")
def tiny_config():
  """tiny_config(data_dir, **train_overrides): experiments/base.py with TINY_MODEL, 8
  steps, logs every 2, evaluates and checkpoints every 4."""
  def make(data_dir, **train_overrides):
    from experiments import base  # pylint: disable=g-import-not-at-top
    config = base.get_config()
    for key, value in TINY_MODEL.items():
      section, name = key.split(".")
      config[section][name] = value
    config.data.tfds_data_dir = data_dir
    config.train.update(num_steps=8, log_every=2, eval_every=4, checkpoint_every=4)
    config.train.update(train_overrides)
    return config
  return make


@pytest.fixture(scope="session")
def tiny_cli_overrides():
  """TINY_CLI: what prelm_train_argv gives `prelm train` as --config.<key>=<value>."""
  return dict(TINY_CLI)


@pytest.fixture(scope="session")
def prelm_train_argv():
  """prelm_train_argv(data_dir, workdir, *extra, **overrides): argv of `python -m
  prelm_jax.main train` on the tiny model.

  Overrides as {"train.num_steps": 8}; `extra` are further arguments as they are.
  """
  def argv(data_dir, workdir, *extra, **overrides):
    settings = dict(TINY_CLI, **{"data.tfds_data_dir": data_dir}, **overrides)
    return ([sys.executable, "-m", "prelm_jax.main", "train", "--config",
             str(REPO / "experiments" / "base.py"), "--workdir", str(workdir)]
            + [f"--config.{k}={v}" for k, v in settings.items()] + list(extra))
  return argv


@pytest.fixture(scope="session")
def run_prelm():
  """run_prelm(argv, *, prelude=None, timeout=300): runs argv (from prelm_train_argv)
  to completion in the checkout; `prelude` is Python run first in the same process
  (e.g. registering a test dataset)."""
  def run(argv, *, prelude=None, timeout=300):
    if prelude is not None:
      script = (f"import sys\nsys.path.insert(0, {str(REPO / 'tests')!r})\n{prelude}\n"
                "from prelm_jax import main\nsys.argv = ['prelm'] + sys.argv[1:]\n"
                "main.cli()\n")
      argv = [sys.executable, "-c", script] + argv[argv.index("train"):]
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout)
  return run


@pytest.fixture(scope="session")
def prelm_cli():
  """prelm_cli(*args, timeout=120): `python -m prelm_jax.main *args` run in the checkout."""
  def run(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "prelm_jax.main", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)
  return run


@pytest.fixture(scope="session")
def tree_digest():
  """tree_digest(path): a digest of every file's name and bytes under `path`."""
  def digest_of(path):
    digest = hashlib.sha256()
    for f in sorted(pathlib.Path(path).rglob("*")):
      if f.is_file():
        digest.update(str(f.relative_to(path)).encode())
        digest.update(f.read_bytes())
    return digest.hexdigest()
  return digest_of


@pytest.fixture(scope="session")
def read_metrics():
  """read_metrics(workdir, split=None): the records in <workdir>/metrics.jsonl, of one
  split if given."""
  def read(workdir, split=None):
    lines = pathlib.Path(workdir, "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if split is None or r["split"] == split]
  return read


@pytest.fixture(scope="session")
def one_line_error():
  """one_line_error(error_type, call, *needles): runs call(), expects error_type with a
  one-line message holding every needle; returns the message."""
  def check(error_type, call, *needles):
    with pytest.raises(error_type) as info:
      call()
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
      assert needle in message, message
    return message
  return check


@pytest.fixture(scope="session")
def shared_file():
  """shared_file(*parts): the path of a file in ../shared/data as a str; skips the test
  when it is absent."""
  def path_of(*parts):
    path = SHARED_DATA.joinpath(*parts)
    if not path.is_file():
      pytest.skip(f"{path} is absent: the shared data sets are not next to this checkout")
    return str(path)
  return path_of


@pytest.fixture(scope="session")
def write_utf8():
  """write_utf8(folder, name, text): writes `text` to folder/name as UTF-8; its path."""
  def write(folder, name, text):
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return str(path)
  return write


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

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
import pytest  # noqa: E402  (after the environment set-up above)


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

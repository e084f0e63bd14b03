"""Bad input: one clear error naming the problem and the fix, and saved work untouched.

Every case starts from a copy of one finished tiny run (checkpoints at steps 2 and 4),
breaks one thing, runs train.run and checks the error and that the checkpoints are
byte-identical afterwards. Config-key mistakes on the command line (unknown key, wrong
type) are covered in tests/test_configs.py::test_cli_errors_are_one_line.
"""
import errno
import json
import os
import pathlib
import shutil
import subprocess

import pytest
import tensorflow_datasets as tfds
from etils import epath

from prelm_jax import checkpoint_guard
from prelm_jax import sharding
from prelm_jax import train
from prelm_jax import workdir as workdir_lib
from test_train import tiny_config
from test_train import tree_digest


class EmptyTextCorpus(tfds.core.GeneratorBasedBuilder):
  """A corpus whose documents are all blank (registered with tfds as empty_text_corpus)."""

  VERSION = tfds.core.Version("1.0.0")
  code_path = epath.Path(__file__)  # see prelm_jax/data/pydocs.py
  # tfds looks for the builder's resource files in its top-level package, and tests/
  # is not a package.
  __module__ = "prelm_jax.empty_text_corpus"

  def __init__(self, **kwargs):
    kwargs.setdefault("file_format", "array_record")
    super().__init__(**kwargs)

  def _info(self):
    return self.dataset_info_from_configs(features=tfds.features.FeaturesDict(
        {"text": tfds.features.Text(), "source": tfds.features.Text()}))

  def _split_generators(self, dl_manager):
    del dl_manager
    return {split: self._generate_examples() for split in ("train", "validation")}

  def _generate_examples(self):
    for i in range(3):
      yield i, {"text": "   \n", "source": f"blank{i}"}


@pytest.fixture(scope="module")
def finished_run(pydocs_data_dir, tmp_path_factory):
  """(workdir, config) of a tiny run with checkpoints at steps 2 and 4."""
  workdir = tmp_path_factory.mktemp("finished")
  config = tiny_config(pydocs_data_dir, num_steps=4, checkpoint_every=2)
  train.run(config, str(workdir))
  return workdir, config


@pytest.fixture(scope="module")
def other_model_checkpoint(pydocs_data_dir, tmp_path_factory):
  """A step-2 checkpoint of a wider model (hidden 64), to be hand-copied elsewhere."""
  workdir = tmp_path_factory.mktemp("wider")
  config = tiny_config(pydocs_data_dir, num_steps=2, checkpoint_every=2)
  config.model.update(hidden_size=64, mlp_dim=128)
  train.run(config, str(workdir))
  return workdir / "checkpoints" / "2"


def _truncate_array_files(w):
  # OCDBT spreads the arrays over several data files per process (which one holds which
  # array varies between runs), so cut all of them short, as an interrupted copy would.
  for f in (w / "checkpoints" / "4" / "state").glob("ocdbt.process_*/d/*"):
    if f.is_file():
      f.write_bytes(f.read_bytes()[: f.stat().st_size // 3])


def _set(section, **values):
  return lambda w, c: c[section].update(values)


# (id, break(workdir, config), run kwargs, error class, message regex)
CASES = [
    ("seq_len_above_positions", _set("data", max_seq_len=128), {}, train.ConfigError,
     r"max_seq_len=128 exceeds config.model.max_position_embeddings=64; lower the"),
    ("batch_not_divisible", _set("train", batch_size=12), {}, train.ConfigError,
     r"batch_size=12 is not divisible by .* = 8; use a multiple of 8, e.g. 16"),
    ("mesh_mismatch", _set("mesh", data=3), {}, sharding.MeshError, r"3"),
    ("unknown_nonfinite_policy", _set("train", nonfinite_policy="ignore"), {},
     train.ConfigError, r"nonfinite_policy='ignore' is not one of"),
    ("other_experiment_in_workdir", _set("model", num_layers=2), {},
     workdir_lib.WorkdirError, r"model.num_layers: 1 -> 2.*use a new --workdir"),
    ("empty_corpus", _set("data", dataset="empty_text_corpus"),
     {"allow_config_change": True}, train.ConfigError,
     r"Split 'train' of dataset 'empty_text_corpus' .* has no usable text"),
    ("missing_vocab", lambda w, c: (w / "vocab.txt").unlink(), {},
     checkpoint_guard.CheckpointError, r"has checkpoints but no vocab.txt.*put that vocab"),
    ("vocab_size_differs_from_checkpoint", lambda w, c: (w / "vocab.txt").write_text(
        "".join(l + "\n" for l in (w / "vocab.txt").read_text().split("\n")[:500])), {},
     checkpoint_guard.CheckpointError,
     r"vocab.txt has 500 tokens but the checkpoint at step 4 was trained with 600"),
    ("vocab_not_utf8", lambda w, c: (w / "vocab.txt").write_bytes(b"\xff\xfe\x00junk"),
     {}, train.ConfigError, r"is not UTF-8 text"),
    ("vocab_malformed", lambda w, c: (w / "vocab.txt").write_text("a\nb\n"), {},
     train.ConfigError, r"Malformed vocab file .*delete it to retrain"),
    ("changed_model_forced", _set("model", hidden_size=64, mlp_dim=128),
     {"allow_config_change": True}, checkpoint_guard.CheckpointError,
     r"checkpoint at step 4 .* is for a different model \(params.encoder.*: saved \(32,\) "
     r"vs config \(64,\).*start a new --workdir"),
    ("corrupt_array_file", lambda w, c: _truncate_array_files(w), {},
     checkpoint_guard.CheckpointError,
     r"checkpoint at step 4 .* is corrupt or incomplete .*--config.train.restore_step=2"),
    ("missing_checkpoint_metadata",
     lambda w, c: (w / "checkpoints" / "4" / "state" / "_METADATA").unlink(), {},
     checkpoint_guard.CheckpointError,
     r"step 4 .*(unreadable metadata|corrupt or incomplete).*restore_step=2"),
    ("restore_step_not_saved", _set("train", restore_step=3), {},
     checkpoint_guard.CheckpointError, r"restore_step=3 is not a checkpoint .*\[2, 4\]"),
]


@pytest.mark.parametrize("name, breaks, kwargs, error, message", CASES,
                         ids=[c[0] for c in CASES])
def test_bad_input_is_explained_and_checkpoints_untouched(
    name, breaks, kwargs, error, message, finished_run, tmp_path):
  source, config = finished_run
  workdir = tmp_path / "run"
  shutil.copytree(source, workdir)
  config = config.copy_and_resolve_references()
  breaks(workdir, config)
  before = tree_digest(workdir / "checkpoints")
  vocab_before = (workdir / "vocab.txt").read_bytes() if (workdir / "vocab.txt").exists() else None
  with pytest.raises(error, match=message) as info:
    train.run(config, str(workdir), **kwargs)
  assert "\n" not in str(info.value), f"{name}: not one line"
  assert tree_digest(workdir / "checkpoints") == before, f"{name} changed checkpoints"
  vocab_after = (workdir / "vocab.txt").read_bytes() if (workdir / "vocab.txt").exists() else None
  assert vocab_after == vocab_before


@pytest.mark.slow
def test_hand_copied_checkpoint_of_another_model(finished_run, other_model_checkpoint,
                                                 tmp_path):
  source, config = finished_run
  workdir = tmp_path / "run"
  shutil.copytree(source, workdir)
  shutil.copytree(other_model_checkpoint, workdir / "checkpoints" / "6")
  before = tree_digest(workdir / "checkpoints")
  with pytest.raises(checkpoint_guard.CheckpointError,
                     match=r"step 6 .* different model .*start a new --workdir"):
    train.run(config, str(workdir))
  assert tree_digest(workdir / "checkpoints") == before


@pytest.mark.slow
def test_corrupt_latest_checkpoint_then_restore_step_resumes_from_the_previous(
    finished_run, tmp_path):
  source, config = finished_run
  workdir = tmp_path / "run"
  shutil.copytree(source, workdir)
  _truncate_array_files(workdir)
  corrupt = tree_digest(workdir / "checkpoints" / "4")
  with pytest.raises(checkpoint_guard.CheckpointError, match="restore_step=2"):
    train.run(config, str(workdir))
  # The suggested fix works. The bad checkpoint is set aside, not deleted, so that the
  # new run can save its own step 4 and a restart never picks the old one.
  config = config.copy_and_resolve_references()
  config.train.update(restore_step=2, num_steps=6)
  result = train.run(config, str(workdir))
  assert int(result.state.step) == 6
  assert tree_digest(workdir / "checkpoints_set_aside" / "4") == corrupt
  assert tree_digest(workdir / "checkpoints" / "4") != corrupt
  assert sorted(int(p.name) for p in (workdir / "checkpoints").iterdir()) == [2, 4, 6]
  # A requeued job repeating the same command goes on from step 6, not back to 2.
  config.train.update(num_steps=8)
  again = train.run(config, str(workdir))
  assert int(again.state.step) == 8
  steps = [json.loads(l)["step"] for l in (workdir / "metrics.jsonl").read_text().splitlines()
           if json.loads(l)["split"] == "train"]
  assert steps == sorted(steps) and steps[-1] == 8, steps   # no step logged twice
  assert len(steps) == len(set(steps))


@pytest.fixture
def small_tmpfs(tmp_path):
  """An 8 MiB tmpfs (needs root and mount; the test skips and says so otherwise)."""
  mount_point = tmp_path / "small_disk"
  mount_point.mkdir()
  result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs",
                           str(mount_point)], capture_output=True, text=True)
  if result.returncode:
    pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip()}): the full-disk "
                "case is not checked")
  yield mount_point
  subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.mark.slow
def test_full_disk_while_saving_keeps_earlier_checkpoints(finished_run, small_tmpfs):
  source, config = finished_run
  workdir = small_tmpfs / "run"
  shutil.copytree(source, workdir)
  # Fill the disk so that the metrics still fit but the next checkpoint does not.
  free = os.statvfs(small_tmpfs).f_bavail * os.statvfs(small_tmpfs).f_frsize
  (small_tmpfs / "filler").write_bytes(b"\0" * max(free - 64 * 1024, 0))
  digests = {s: tree_digest(workdir / "checkpoints" / s) for s in ("2", "4")}
  longer = config.copy_and_resolve_references()
  longer.train.update(num_steps=6)
  with pytest.raises(checkpoint_guard.CheckpointError,
                     match=r"the disk is full.*checkpoints \[2, 4\] are intact.*Free space"):
    train.run(longer, str(workdir))
  assert {s: tree_digest(workdir / "checkpoints" / s) for s in ("2", "4")} == digests
  # Once there is room again, the same command resumes from step 4.
  (small_tmpfs / "filler").unlink()
  result = train.run(longer, str(workdir))
  assert int(result.state.step) == 6

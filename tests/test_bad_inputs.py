"""Bad input: one clear error naming the problem and the fix, and saved work untouched.

At the door, every config value is checked before anything is written (a fresh workdir
is not even created). Against a finished tiny run (checkpoints at steps 2 and 4), each
case breaks one thing and runs `prelm train` with that run's settings: one line, exit
2, and not one byte under the workdir changes. Config-key mistakes on the command line
(unknown key, wrong type) are covered in tests/test_configs.py.
"""
import json
import os
import re
import shutil
import subprocess

import pytest
import tensorflow_datasets as tfds
from etils import epath

from prelm_jax import analysis
from prelm_jax import checkpoint_guard
from prelm_jax import train


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
def finished_run(pydocs_data_dir, tmp_path_factory, tiny_config):
  """(workdir, config) of a tiny run with checkpoints at steps 2 and 4."""
  workdir = tmp_path_factory.mktemp("finished")
  config = tiny_config(pydocs_data_dir, num_steps=4, checkpoint_every=2)
  train.run(config, str(workdir))
  return workdir, config


@pytest.fixture(scope="module")
def other_model_checkpoint(pydocs_data_dir, tmp_path_factory, tiny_config):
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


def _vocab_lines(w, n):
  (w / "vocab.txt").write_text(
      "".join(l + "\n" for l in (w / "vocab.txt").read_text().split("\n")[:n]))


def assert_one_line_exit_2(proc, message):
  assert proc.returncode == 2, proc.stderr[-3000:]
  assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
  assert "<bound method" not in proc.stderr  # no library internals in a message
  errors = [l for l in proc.stderr.splitlines() if l.startswith("prelm: error:")]
  assert len(errors) == 1, proc.stderr[-3000:]
  assert re.search(message, errors[0]), errors[0]


# At the door: `prelm train` on a fresh workdir. Each value is refused in one line
# (exit 2) before anything is written: the workdir is not even created.
# (id, overrides, message regex)
DOOR_CASES = [
    ("num_steps_zero", {"train.num_steps": 0}, r"config.train.num_steps=0 .*>= 1"),
    ("batch_size_zero", {"train.batch_size": 0}, r"config.train.batch_size=0 .*>= 1"),
    ("batch_size_negative", {"train.batch_size": -8}, r"config.train.batch_size=-8"),
    ("eval_batch_size_zero", {"train.eval_batch_size": 0}, r"train.eval_batch_size=0"),
    ("learning_rate_zero", {"optim.learning_rate": 0.0},
     r"config.optim.learning_rate=0.0 .*> 0"),
    ("learning_rate_negative", {"optim.learning_rate": -1e-3},
     r"config.optim.learning_rate=-0.001"),
    ("mask_prob_above_one", {"data.mask_prob": 1.5},
     r"config.data.mask_prob=1.5 .*\(0, 1\]"),
    ("mask_prob_negative", {"data.mask_prob": -0.1}, r"config.data.mask_prob=-0.1"),
    ("mask_split_above_one", {"data.mask_token_prob": 0.8, "data.random_token_prob": 0.3},
     r"mask_token_prob=0.8 \+ random_token_prob=0.3 = 1.1 exceeds 1"),
    ("vocab_below_alphabet", {"data.vocab_size": 10},
     r"config.data.vocab_size=10 is below what this corpus needs: .* use "
     r"--config.data.vocab_size=\d+ or more"),
    ("unknown_dtype", {"model.dtype": "fp32"}, r"config.model.dtype='fp32' .*float32"),
    ("float16_dtype", {"model.dtype": "float16"}, r"loss scaling.*bfloat16"),
    ("unknown_remat_policy", {"model.remat_policy": "sometimes"},
     r"config.model.remat_policy='sometimes' .*one of none, full"),
    ("unknown_sentence_objective", {"data.sentence_objective": "rtd"},
     r"config.data.sentence_objective='rtd' .*one of nsp, sop, none"),
    ("unknown_mlp_activation", {"model.mlp_activation": "swiglu"},
     r"config.model.mlp_activation='swiglu' .*one of gelu, geglu"),
    ("geglu_lstm", {"model.encoder": "lstm", "model.mlp_activation": "geglu"},
     r"config.model.mlp_activation='geglu' .*lstm encoder has no feed-forward"),
    ("heads_do_not_divide_hidden", {"model.num_heads": 3},
     r"hidden_size=32 is not divisible by config.model.num_heads=3"),
    ("tensor_does_not_divide_heads", {"mesh.data": 2, "mesh.tensor": 4},
     r"config.model.num_heads=2 does not split evenly over mesh tensor=4"),
    ("log_every_zero", {"train.log_every": 0}, r"config.train.log_every=0"),
    ("eval_every_zero", {"train.eval_every": 0}, r"config.train.eval_every=0"),
    ("checkpoint_every_negative", {"train.checkpoint_every": -1},
     r"config.train.checkpoint_every=-1"),
    ("seq_len_above_positions", {"data.max_seq_len": 128},
     r"max_seq_len=128 exceeds config.model.max_position_embeddings=64; lower the"),
    ("batch_not_divisible", {"train.batch_size": 12},
     r"batch_size=12 is not divisible by .* = 8; use a multiple of 8, e.g. 16"),
    ("mesh_mismatch", {"mesh.data": 3}, r"mesh .*3.* 8 are available"),
    ("unknown_nonfinite_policy", {"train.nonfinite_policy": "ignore"},
     r"nonfinite_policy='ignore' .*one of \('stop', 'skip'\)"),
]


@pytest.mark.parametrize("name, overrides, message", DOOR_CASES,
                         ids=[c[0] for c in DOOR_CASES])
def test_bad_config_is_refused_before_anything_is_written(name, overrides, message,
                                                          pydocs_data_dir, tmp_path,
                                                          prelm_train_argv, run_prelm):
  workdir = tmp_path / "run"
  proc = run_prelm(prelm_train_argv(pydocs_data_dir, workdir,
                                    **{k: v for k, v in overrides.items()}))
  assert_one_line_exit_2(proc, message)
  assert not workdir.exists(), f"{name}: created {list(workdir.rglob('*'))}"


def test_workdir_that_is_a_file_is_named_as_such(pydocs_data_dir, tmp_path,
                                                 prelm_train_argv, run_prelm):
  workdir = tmp_path / "run"
  workdir.write_text("notes")
  proc = run_prelm(prelm_train_argv(pydocs_data_dir, workdir))
  assert_one_line_exit_2(proc, r"--workdir .*/run is an existing file, not a directory")
  assert workdir.read_text() == "notes"


def _set(**values):
  return lambda w: values


# Against a finished run: a copy of the tiny run (checkpoints at steps 2 and 4) with one
# thing broken; `prelm train` with that run's settings must refuse in one line (exit 2)
# and leave every byte under the workdir as it was.
# (id, break(workdir) -> overrides, extra flags, message regex)
RUN_CASES = [
    ("other_experiment_in_workdir", _set(**{"model.num_layers": 2}), (),
     r"model.num_layers: 1 -> 2.*use a new --workdir"),
    ("num_steps_below_reached", _set(**{"train.num_steps": 3}), (),
     r"config.train.num_steps=3 is below step 4, which .* has already reached; pass "
     r"--config.train.num_steps=4 or more"),
    ("empty_corpus", _set(**{"data.dataset": "empty_text_corpus"}),
     ("--allow_config_change",),
     r"Split 'train' of dataset 'empty_text_corpus' .* has no usable text"),
    ("missing_vocab", lambda w: (w / "vocab.txt").unlink(), (),
     r"has checkpoints but no vocab.txt.*put that vocab"),
    ("vocab_size_differs_from_checkpoint", lambda w: _vocab_lines(w, 500), (),
     r"vocab.txt has 500 tokens but the checkpoint at step 4 was trained with 600"),
    ("vocab_size_differs_in_padded_rows", lambda w: _vocab_lines(w, 590), (),
     r"vocab.txt has 590 tokens but the checkpoint at step 4 was trained with 600"),
    ("vocab_not_utf8", lambda w: (w / "vocab.txt").write_bytes(b"\xff\xfe\x00junk"), (),
     r"vocab.txt is not UTF-8 text \(byte 0: .*put the run's own vocab.txt back"),
    ("vocab_malformed", lambda w: (w / "vocab.txt").write_text("a\nb\n"), (),
     r"vocab.txt is malformed: .*put the run's own vocab.txt back \(its checkpoints were "
     r"trained with it\)"),
    ("changed_model_forced", _set(**{"model.hidden_size": 64, "model.mlp_dim": 128}),
     ("--allow_config_change",),
     r"checkpoint at step 4 .* is for a different model \(params.encoder.*: saved \(32,\) "
     r"vs config \(64,\).*start a new --workdir"),
    ("corrupt_array_file", _truncate_array_files, (),
     r"checkpoint at step 4 .* is corrupt or incomplete .*--config.train.restore_step=2"),
    ("missing_checkpoint_metadata",
     lambda w: (w / "checkpoints" / "4" / "state" / "_METADATA").unlink(), (),
     r"step 4 .*(unreadable metadata|corrupt or incomplete).*restore_step=2"),
    ("restore_step_not_saved", _set(**{"train.restore_step": 3}), (),
     r"restore_step=3 is not a checkpoint .*\[2, 4\]"),
]


@pytest.mark.parametrize("name, breaks, extra, message", RUN_CASES,
                         ids=[c[0] for c in RUN_CASES])
def test_bad_input_on_a_run_is_explained_and_nothing_changes(
    name, breaks, extra, message, finished_run, pydocs_data_dir, tmp_path, prelm_train_argv,
    run_prelm, tree_digest):
  source, _ = finished_run
  workdir = tmp_path / "run"
  shutil.copytree(source, workdir)
  overrides = breaks(workdir)  # the config changes (_set), or a broken file
  overrides = overrides if isinstance(overrides, dict) else {}
  before = tree_digest(workdir)
  proc = run_prelm(prelm_train_argv(pydocs_data_dir, workdir, *extra, **dict(
      {"train.num_steps": 4}, **overrides)), prelude="import test_bad_inputs")
  assert_one_line_exit_2(proc, message)
  assert tree_digest(workdir) == before, f"{name} changed the workdir"


def test_forced_config_change_that_fails_keeps_the_run_loadable(finished_run, tmp_path):
  """--allow_config_change that fails at the restore must leave config.json describing
  the checkpoints: the original command and analysis.load_run still work."""
  source, config = finished_run
  workdir = tmp_path / "run"
  shutil.copytree(source, workdir)
  wider = config.copy_and_resolve_references()
  wider.model.update(hidden_size=64, mlp_dim=128)
  with pytest.raises(checkpoint_guard.CheckpointError, match="different model"):
    train.run(wider, str(workdir), allow_config_change=True)
  _, _, params, _ = analysis.load_run(str(workdir))
  assert params["encoder"]["embeddings"]["word_embeddings"]["embedding"].shape[1] == 32
  again = config.copy_and_resolve_references()
  again.train.num_steps = 6
  assert int(train.run(again, str(workdir)).state.step) == 6


@pytest.mark.slow
def test_hand_copied_checkpoint_of_another_model(finished_run, other_model_checkpoint,
                                                 tmp_path, tree_digest):
  source, config = finished_run
  workdir = tmp_path / "run"
  shutil.copytree(source, workdir)
  shutil.copytree(other_model_checkpoint, workdir / "checkpoints" / "6")
  before = tree_digest(workdir / "checkpoints")
  longer = config.copy_and_resolve_references()
  longer.train.num_steps = 8  # past the copied step 6, which the run would resume
  with pytest.raises(checkpoint_guard.CheckpointError,
                     match=r"step 6 .* different model .*start a new --workdir"):
    train.run(longer, str(workdir))
  assert tree_digest(workdir / "checkpoints") == before


@pytest.mark.slow
def test_corrupt_latest_checkpoint_then_restore_step_resumes_from_the_previous(
    finished_run, tmp_path, tree_digest):
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
def test_full_disk_while_saving_keeps_earlier_checkpoints(finished_run, small_tmpfs,
                                                          tree_digest):
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

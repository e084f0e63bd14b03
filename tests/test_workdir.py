"""The workdir's life: inspected read-only, binding only once it has checkpoints."""
import json

import pytest

from prelm_jax import workdir


def test_inspect_rejects_empty_file_and_unwritable_paths_without_creating(tmp_path):
  with pytest.raises(workdir.WorkdirError, match="--workdir is empty"):
    workdir.inspect("  ")
  blocker = tmp_path / "file"
  blocker.write_text("x")
  with pytest.raises(workdir.WorkdirError, match=r"--workdir .*/file is an existing file"):
    workdir.inspect(str(blocker))
  with pytest.raises(workdir.WorkdirError, match=r"not writable: .*/file is a file"):
    workdir.inspect(str(blocker / "run"))
  wd = workdir.inspect(str(tmp_path / "a" / "b"))
  assert (wd.path, wd.exists, wd.checkpoint_steps) == (str(tmp_path / "a" / "b"), False, ())
  assert not (tmp_path / "a").exists()  # inspecting writes nothing
  workdir.create(wd)
  assert (tmp_path / "a" / "b").is_dir() and not list((tmp_path / "a" / "b").iterdir())


def config(**model):
  return {"seed": 0, "model": {"hidden_size": 128, **model},
          "data": {"vocab_size": 8000, "tfds_data_dir": "/a"},
          "train": {"num_steps": 100, "log_every": 10}}


def with_checkpoint(tmp_path, saved):
  tmp_path.mkdir(exist_ok=True)
  (tmp_path / workdir.CONFIG_FILE).write_text(json.dumps(saved))
  (tmp_path / "checkpoints" / "10").mkdir(parents=True)
  return workdir.inspect(str(tmp_path))


def test_model_or_data_change_is_refused_once_there_are_checkpoints(tmp_path):
  wd = with_checkpoint(tmp_path, config())
  assert wd.checkpoint_steps == (10,)
  with pytest.raises(workdir.WorkdirError,
                     match=r"model.hidden_size: 128 -> 256.*--allow_config_change"):
    workdir.check_config(wd, config(hidden_size=256))
  workdir.check_config(wd, config(hidden_size=256), allow_config_change=True)
  # Budget, cadence, paths and how fast the data are made may change.
  changed = config()
  changed["train"] = {"num_steps": 500, "log_every": 1}
  changed["data"].update(tfds_data_dir="/elsewhere", prepared_dir="/fast/disk",
                         prepare_workers=8, input_threads=2)
  workdir.check_config(wd, changed)
  changed["data"]["max_seq_len"] = 512  # but not what they are
  with pytest.raises(workdir.WorkdirError, match="data.max_seq_len"):
    workdir.check_config(wd, changed)


def test_config_json_of_a_start_without_checkpoints_binds_nothing(tmp_path):
  (tmp_path / workdir.CONFIG_FILE).write_text(json.dumps(config()))
  wd = workdir.inspect(str(tmp_path))
  workdir.check_config(wd, config(hidden_size=256))  # a failed start: not refused
  workdir.save_config_if_new(wd, config(hidden_size=256))
  assert json.loads((tmp_path / workdir.CONFIG_FILE).read_text())["model"]["hidden_size"] == 256


def test_config_json_keeps_describing_old_checkpoints_until_replaced(tmp_path):
  wd = with_checkpoint(tmp_path, config())
  before = (tmp_path / workdir.CONFIG_FILE).read_bytes()
  workdir.save_config_if_new(wd, config(hidden_size=256))
  assert (tmp_path / workdir.CONFIG_FILE).read_bytes() == before
  # After the new run's first checkpoint: both configs, the old one named by its step.
  kept = workdir.replace_config_after_first_save(wd, config(hidden_size=256), 10)
  assert kept == "config.until_step_10.json"
  assert (tmp_path / kept).read_text() == json.dumps(config(), indent=2, sort_keys=True) + "\n"
  assert json.loads((tmp_path / workdir.CONFIG_FILE).read_text())["model"]["hidden_size"] == 256
  same = with_checkpoint(tmp_path / "x", config())
  assert workdir.replace_config_after_first_save(same, config(), 10) is None


def test_vocab_of_a_failed_start_with_other_data_settings_is_not_reused(tmp_path):
  (tmp_path / workdir.VOCAB_FILE).write_text("v")
  assert workdir.vocab_belongs_to_run(workdir.inspect(str(tmp_path)), config())  # by hand
  (tmp_path / workdir.CONFIG_FILE).write_text(json.dumps(config()))
  wd = workdir.inspect(str(tmp_path))
  assert workdir.vocab_belongs_to_run(wd, config(hidden_size=1))  # same data settings
  other = config()
  other["data"]["vocab_size"] = 10
  assert not workdir.vocab_belongs_to_run(wd, other)
  (tmp_path / "checkpoints" / "2").mkdir(parents=True)
  assert workdir.vocab_belongs_to_run(workdir.inspect(str(tmp_path)), other)  # trained with


def test_missing_key_means_its_default():
  # A config saved before a key existed meant base.py's default by leaving it out...
  assert workdir.config_differences(config(), config(pre_ln=True)) == [
      "model.pre_ln: False -> True"]
  assert workdir.config_differences(config(), config(pre_ln=False)) == []
  # ...or what the code did then, where that differs from today's default.
  new = dict(config(vocab_pad_multiple=64), task="pretrain")
  assert workdir.config_differences(config(), new) == ["model.vocab_pad_multiple: 1 -> 64"]

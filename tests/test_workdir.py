import json
import os

import pytest

from prelm_jax import workdir


def test_prepare_rejects_empty_and_unwritable(tmp_path):
  with pytest.raises(workdir.WorkdirError, match="--workdir is empty"):
    workdir.prepare("  ")
  blocker = tmp_path / "file"
  blocker.write_text("x")
  with pytest.raises(workdir.WorkdirError, match="not writable"):
    workdir.prepare(str(blocker / "run"))
  assert workdir.prepare(str(tmp_path / "a" / "b")) == str(tmp_path / "a" / "b")


def config(**model):
  return {"seed": 0, "model": {"hidden_size": 128, **model},
          "data": {"vocab_size": 8000, "tfds_data_dir": "/a"},
          "train": {"num_steps": 100, "log_every": 10}}


def test_model_or_data_change_is_refused_and_nothing_is_overwritten(tmp_path):
  wd = str(tmp_path)
  workdir.check_and_save_config(wd, config())
  saved = (tmp_path / workdir.CONFIG_FILE).read_bytes()
  with pytest.raises(workdir.WorkdirError,
                     match=r"model.hidden_size: 128 -> 256.*--allow_config_change"):
    workdir.check_and_save_config(wd, config(hidden_size=256))
  assert (tmp_path / workdir.CONFIG_FILE).read_bytes() == saved
  # Allowed when asked; then the new config is the saved one.
  workdir.check_and_save_config(wd, config(hidden_size=256), allow_config_change=True)
  assert json.loads((tmp_path / workdir.CONFIG_FILE).read_text())["model"]["hidden_size"] == 256


def test_budget_cadence_and_paths_may_change(tmp_path):
  wd = str(tmp_path)
  workdir.check_and_save_config(wd, config())
  changed = config()
  changed["train"] = {"num_steps": 500, "log_every": 1}
  changed["data"]["tfds_data_dir"] = "/elsewhere"
  workdir.check_and_save_config(wd, changed)
  assert json.loads((tmp_path / workdir.CONFIG_FILE).read_text())["train"]["num_steps"] == 500


def test_new_key_counts_as_a_difference():
  new = config(pre_ln=True)
  assert workdir.config_differences(config(), new) == ["model.pre_ln: '<unset>' -> True"]

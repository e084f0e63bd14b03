"""End-to-end training on the pydocs corpus with a very small BERT."""
import json

import jax
import numpy as np
import pytest

from prelm_jax import metrics
from prelm_jax import train
from prelm_jax import workdir as workdir_lib


def test_training_loss_falls_and_outputs_are_written(pydocs_data_dir, tmp_path, capfd,
                                                     read_metrics, tiny_config):
  config = tiny_config(pydocs_data_dir, num_steps=40, log_every=10, eval_every=20,
                       checkpoint_every=20)
  capfd.readouterr()
  result = train.run(config, str(tmp_path))
  # Not a terminal (a log file): plain progress lines, no bar, no escape sequences:
  # one after the first step, then every 30 s (slack for a slow machine) and at the end.
  out = capfd.readouterr()
  lines = [l for l in out.err.splitlines() if l.startswith("train: step ")]
  assert lines[0].startswith("train: step 1/40 ") and lines[-1].startswith(
      "train: step 40/40 "), out.err
  assert len(lines) <= 2 + 3, lines
  assert "\r" not in out.err + out.out and "\x1b[" not in out.err + out.out
  assert out.out.startswith("prelm: experiment | 0.03M params | 8 cpu devices, mesh data=8"), out.out
  logged = read_metrics(tmp_path, "train")
  assert [r["step"] for r in logged] == [10, 20, 30, 40]
  for key in ("loss", "mlm_loss", "nsp_loss", "mlm_accuracy", "nsp_accuracy",
              "learning_rate", "grad_norm", "steps_per_sec", "tokens_per_sec",
              "padded_tokens_per_sec", "input_wait_fraction"):
    assert key in logged[0], key
  assert all(0.0 <= r["input_wait_fraction"] < 1.0 for r in logged), logged
  # tokens_per_sec counts real tokens only: short pairs leave padding in every window.
  assert all(r["tokens_per_sec"] < r["padded_tokens_per_sec"] for r in logged), logged
  assert logged[-1]["mlm_loss"] < logged[0]["mlm_loss"] - 0.5, logged
  evals = read_metrics(tmp_path, "eval")
  assert [r["step"] for r in evals] == [20, 40]
  final = json.loads((tmp_path / workdir_lib.FINAL_METRICS_FILE).read_text())
  assert final == result.final_metrics and final["step"] == 40
  assert 0.0 <= final["mlm_accuracy"] <= 1.0
  assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
  assert (tmp_path / "vocab.txt").exists() and (tmp_path / "config.json").exists()
  assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir()
                if p.name.isdigit()) == [20, 40]


def test_resume_equals_uninterrupted_run(pydocs_data_dir, tmp_path, read_metrics,
                                         tiny_config):
  config = tiny_config(pydocs_data_dir)
  straight = train.run(config, str(tmp_path / "straight"))
  interrupted = tmp_path / "interrupted"
  first = train.run(config, str(interrupted), stop_at=4)
  assert first.final_metrics is None and int(first.state.step) == 4
  resumed = train.run(config, str(interrupted))
  assert int(resumed.state.step) == 8
  # Same losses step by step, and bit-identical parameters (f32 on CPU).
  untimed = lambda records: [metrics.untimed(r) for r in records]
  assert untimed(read_metrics(interrupted, "train")) == untimed(
      read_metrics(tmp_path / "straight", "train"))
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(straight.state.params),
               jax.device_get(resumed.state.params))
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(straight.state.opt_state),
               jax.device_get(resumed.state.opt_state))


def test_changed_model_is_refused_without_touching_checkpoints(pydocs_data_dir, tmp_path,
                                                               capfd, tiny_config,
                                                               tree_digest):
  config = tiny_config(pydocs_data_dir, num_steps=4)
  train.run(config, str(tmp_path))
  before = tree_digest(tmp_path / "checkpoints")
  config.model.hidden_size = 64
  with pytest.raises(workdir_lib.WorkdirError, match="model.hidden_size: 32 -> 64"):
    train.run(config, str(tmp_path))
  assert tree_digest(tmp_path / "checkpoints") == before
  # A longer step budget resumes normally from step 4, says that the learning-rate
  # schedule changed, and config.json then describes the new run (the old one is kept).
  longer = tiny_config(pydocs_data_dir, num_steps=6)
  capfd.readouterr()
  assert int(train.run(longer, str(tmp_path)).state.step) == 6
  out = capfd.readouterr().out
  assert ("config.train.num_steps changed 4 -> 6: the learning-rate schedule (linear decay) "
          "now ends at step 6, so the rate at step 4 is 0.0015 instead of 0") in out, out
  assert json.loads((tmp_path / "config.json").read_text())["train"]["num_steps"] == 6
  assert json.loads((tmp_path / "config.until_step_4.json").read_text())["train"][
      "num_steps"] == 4


@pytest.mark.parametrize("encoder, objective, whole_words, activation", [
    ("transformer", "none", True, "geglu"),
    ("lstm", "sop", True, "gelu"),
    ("lstm", "none", False, "gelu"),
])
def test_objective_switches_train(encoder, objective, whole_words, activation,
                                  pydocs_data_dir, tmp_path, read_metrics, tiny_config):
  config = tiny_config(pydocs_data_dir, num_steps=4, log_every=2, eval_every=4,
                       checkpoint_every=4)
  config.model.update(encoder=encoder, mlp_activation=activation)
  config.data.update(sentence_objective=objective, whole_word_masking=whole_words)
  result = train.run(config, str(tmp_path))
  params = result.state.params
  pair_keys = {"nsp_loss", "nsp_accuracy", "sop_loss", "sop_accuracy"}
  final = json.loads((tmp_path / workdir_lib.FINAL_METRICS_FILE).read_text())
  if objective == "none":
    assert "nsp_head" not in params
    assert not pair_keys & set(final), final
    assert final["loss"] == pytest.approx(final["mlm_loss"])
  else:
    assert "nsp_head" in params
    assert {f"{objective}_loss", f"{objective}_accuracy"} <= set(final)
    assert not {"nsp_loss", "nsp_accuracy"} & set(final)  # SOP is never called NSP
  logged = read_metrics(tmp_path, "train")
  assert [r["step"] for r in logged] == [2, 4]
  assert all(np.isfinite(r["loss"]) for r in logged)
  summary = result.task.summary_lines(result)[0]
  assert "MLM accuracy" in summary and ("NSP" not in summary)
  assert ("SOP accuracy" in summary) == (objective == "sop")

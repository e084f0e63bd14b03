"""Non-finite losses: both policies of config.train.nonfinite_policy, on a tiny model."""
import json

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from prelm_jax import nonfinite
from prelm_jax import train
from prelm_jax.data import pretrain


@pytest.fixture
def nan_at_step(monkeypatch):
  """nan_at_step(k): step k's batch carries NaN MLM weights, so its loss, gradients
  and (when the update is applied) params go non-finite, as a real overflow would;
  injected through the data, with no hook in the production step."""
  def inject(k):
    batch = pretrain.PretrainData.batch

    def poisoned(self, step):
      out = batch(self, step)
      if step + 1 == k:
        out["mlm_weights"] = np.full_like(out["mlm_weights"], np.nan)
      return out
    monkeypatch.setattr(pretrain.PretrainData, "batch", poisoned)
  return inject


def saved_steps(workdir):
  return sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())


def test_stop_policy_keeps_last_good_checkpoint_and_reports_the_step(pydocs_data_dir,
                                                                     tmp_path, read_metrics,
                                                                     tiny_config,
                                                                     nan_at_step):
  # The NaN comes at step 5, between the log at 4 and the one at 8: the check before
  # the save at step 6 must catch it, so checkpoint 6 is never written.
  config = tiny_config(pydocs_data_dir, num_steps=8, log_every=4, checkpoint_every=2,
                       nonfinite_policy="stop")
  nan_at_step(5)
  with pytest.raises(nonfinite.NonFiniteError, match="non-finite loss, grad_norm, params at "
                     "step 5.*last good checkpoint is step 4"):
    train.run(config, str(tmp_path))
  assert saved_steps(tmp_path) == [2, 4]
  report = json.loads((tmp_path / nonfinite.REPORT_FILE).read_text())
  assert report["step"] == 5 and report["checked_at_step"] == 6
  # The NaN loss gives NaN grads, and (policy stop applies the update) NaN params.
  assert report["nonfinite"] == ["loss", "grad_norm", "params"]
  assert report["last_good_checkpoint"] == 4 and report["policy"] == "stop"
  assert [r["step"] for r in read_metrics(tmp_path, "train")] == [4]


def test_skip_policy_drops_exactly_the_bad_update(pydocs_data_dir, tmp_path, read_metrics,
                                                  tiny_config, nan_at_step):
  config = tiny_config(pydocs_data_dir, num_steps=3, log_every=1, checkpoint_every=1,
                       eval_every=100, nonfinite_policy="skip")
  nan_at_step(3)
  skipped = train.run(config, str(tmp_path))
  assert int(skipped.state.step) == 3
  # Step 3's update dropped: params and optimizer moments equal the checkpoint of step 2.
  after_two = ocp.StandardCheckpointer().restore(tmp_path / "checkpoints" / "2" / "state")
  got = jax.device_get(skipped.state)
  jax.tree.map(np.testing.assert_array_equal, got.params, after_two["params"])
  jax.tree.map(np.testing.assert_array_equal, jax.tree.leaves(got.opt_state),
               jax.tree.leaves(after_two["opt_state"]))
  logged = read_metrics(tmp_path, "train")
  assert [r["skipped_steps"] for r in logged] == [0.0, 0.0, 1.0]
  assert all(np.isfinite(r["loss"]) for r in logged)
  assert np.isfinite(skipped.final_metrics["loss"])


@pytest.mark.slow
def test_skip_policy_stops_after_consecutive_overflows(pydocs_data_dir, tmp_path,
                                                       tiny_config):
  # A real overflow, no test hook: a learning rate of 1e30 sends the params to ~1e30
  # after the first update, and every later forward pass overflows.
  config = tiny_config(pydocs_data_dir, num_steps=20, log_every=10, checkpoint_every=100,
                       nonfinite_policy="skip", max_consecutive_skips=3)
  config.optim.update(learning_rate=1e30, warmup_steps=0, grad_clip_norm=0.0)
  with pytest.raises(nonfinite.NonFiniteError, match="consecutive steps had non-finite"):
    train.run(config, str(tmp_path))
  report = json.loads((tmp_path / nonfinite.REPORT_FILE).read_text())
  assert report["policy"] == "skip" and report["max_consecutive"] >= 3
  assert report["step"] is not None and 1 <= report["step"] <= 10
  assert not (tmp_path / "checkpoints").exists() or saved_steps(tmp_path) == []

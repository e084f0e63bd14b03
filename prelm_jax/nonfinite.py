"""Non-finite losses and gradients: found at the step they happen, never checkpointed.

`config.train.nonfinite_policy`:
  stop: the run ends at the next log or checkpoint boundary, before saving the bad
        state; the last good checkpoint is kept and <workdir>/nonfinite_report.json
        names the first bad step and which value went non-finite.
  skip: the jitted step drops the update (params and optimizer state stay as they
        were; the step counter, RNG and data still advance) and counts it in the
        `skipped_steps` metric; `config.train.max_consecutive_skips` skips in a row
        end the run as `stop` does.

The host never waits for a value per step: each step returns 0/1 flags among its metric
sums, and a Tracker folds them into a few device scalars (first bad step, current and
longest run of bad steps) with one small asynchronous op. The loop reads the tracker
only when it logs or saves.
"""
import os

import jax
import jax.numpy as jnp
import numpy as np

from prelm_jax import errors
from prelm_jax import jsonio
from prelm_jax import workdir as workdir_lib

POLICIES = ("stop", "skip")
REPORT_FILE = "nonfinite_report.json"
_NO_STEP = np.iinfo(np.int32).max


class NonFiniteError(errors.PrelmError):
  """The run produced a non-finite loss, gradient or parameter and was stopped."""


def is_bad(loss, grad_norm):
  """Inside the jitted step: a bool scalar, True when the loss or gradient is not finite."""
  return ~jnp.isfinite(loss) | ~jnp.isfinite(grad_norm)


def step_flags(loss, grad_norm, params):
  """0/1 metric sums for one step: which of loss, gradient and new params are non-finite."""
  params_ok = jnp.all(jnp.stack([jnp.all(jnp.isfinite(p)) for p in jax.tree.leaves(params)]))
  f32 = lambda b: b.astype(jnp.float32)
  return {"nonfinite_loss": f32(~jnp.isfinite(loss)),
          "nonfinite_grads": f32(~jnp.isfinite(grad_norm)),
          "nonfinite_params": f32(~params_ok)}


def skip_if_bad(bad, new_tree, old_tree):
  """Keeps `old_tree` where the step was bad (policy `skip`): the update is dropped."""
  return jax.tree.map(lambda n, o: jnp.where(bad, o, n), new_tree, old_tree)


def init_tracker():
  return {"first_step": jnp.asarray(_NO_STEP, jnp.int32),
          "first_what": jnp.zeros((), jnp.int32),
          "run": jnp.zeros((), jnp.int32), "max_run": jnp.zeros((), jnp.int32),
          "bad_steps": jnp.zeros((), jnp.int32), "bad_params": jnp.zeros((), jnp.int32)}


@jax.jit
def update_tracker(tracker, step_sums, step):
  """Folds one step's flags into the tracker (on device; nothing waits for it)."""
  loss_bad = step_sums["nonfinite_loss"] > 0
  grads_bad = step_sums["nonfinite_grads"] > 0
  bad = loss_bad | grads_bad
  first = bad & (tracker["first_step"] == _NO_STEP)
  what = loss_bad.astype(jnp.int32) + 2 * grads_bad.astype(jnp.int32)
  run = jnp.where(bad, tracker["run"] + 1, 0)
  return {"first_step": jnp.where(first, step, tracker["first_step"]),
          "first_what": jnp.where(first, what, tracker["first_what"]),
          "run": run, "max_run": jnp.maximum(tracker["max_run"], run),
          "bad_steps": tracker["bad_steps"] + bad.astype(jnp.int32),
          "bad_params": tracker["bad_params"]
                        + (step_sums["nonfinite_params"] > 0).astype(jnp.int32)}


def _names(what, bad_params):
  names = [n for bit, n in ((1, "loss"), (2, "grad_norm")) if what & bit]
  return names + (["params"] if bad_params else [])


def check(tracker, train_cfg, *, step, workdir, last_checkpoint):
  """Raises NonFiniteError (after writing the report) when the policy says stop.

  Called at log and checkpoint boundaries, so a bad state is never saved.

  Args:
    tracker: the device tracker (fetched here: one small host sync).
    train_cfg: config.train.
    step: the step just completed.
    workdir: where nonfinite_report.json goes.
    last_checkpoint: the latest complete checkpoint step (or None), for the report.
  """
  t = {k: int(v) for k, v in jax.device_get(tracker).items()}
  skip = train_cfg.nonfinite_policy == "skip"
  if skip:
    stop = t["max_run"] >= train_cfg.max_consecutive_skips or t["bad_params"] > 0
  else:
    stop = t["bad_steps"] > 0 or t["bad_params"] > 0
  if not stop:
    return
  first = None if t["first_step"] == _NO_STEP else t["first_step"]
  what = _names(t["first_what"], t["bad_params"])
  if skip and t["max_run"] >= train_cfg.max_consecutive_skips:
    reason = (f"{t['max_run']} consecutive steps had non-finite values "
              f"(config.train.max_consecutive_skips={train_cfg.max_consecutive_skips})")
  else:
    reason = f"non-finite {', '.join(what)} at step {first if first else step}"
  report = {"step": first, "checked_at_step": step, "nonfinite": what,
            "policy": train_cfg.nonfinite_policy, "reason": reason,
            "nonfinite_steps": t["bad_steps"], "max_consecutive": t["max_run"],
            "last_good_checkpoint": last_checkpoint}
  path = os.path.join(workdir, REPORT_FILE)
  if jax.process_index() == 0:
    jsonio.write_json(path, report)
  raise NonFiniteError(
      f"{reason}; stopped without saving that state. The last good checkpoint is step "
      f"{last_checkpoint} in {os.path.join(workdir, workdir_lib.CHECKPOINTS_DIR)}; "
      f"details in {path}. Lower config.optim.learning_rate or set "
      "config.train.nonfinite_policy=skip, then rerun")

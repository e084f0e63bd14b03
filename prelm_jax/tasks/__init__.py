"""Tasks: what a run optimises. Each plugs its model head, batch, data, loss and metrics
into the one training loop (train.py), the one step (train_step.py) and state.py.

`get(config)` returns the task that `config.task` names.
"""
from prelm_jax import errors
from prelm_jax.tasks import pretrain

TASKS = {"pretrain": pretrain.PretrainTask}


def get(config):
  """The Task object for `config` (config.task; configs saved before it: pre-training)."""
  name = config.get("task", "pretrain")
  if name not in TASKS:
    raise errors.ConfigError(f"config.task={name!r} is not allowed: it must be one of "
                             f"{', '.join(TASKS)}; pass e.g. --config.task=pretrain")
  return TASKS[name](config)

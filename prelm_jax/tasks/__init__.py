"""Tasks: what a run optimises. Each plugs its model head, batch, data, loss and metrics
into the one training loop (train.py), the one step (train_step.py) and state.py.

`get(config)` returns the task that `config.task` names.
"""
from prelm_jax import errors
from prelm_jax.tasks import classify
from prelm_jax.tasks import finetune
from prelm_jax.tasks import pretrain
from prelm_jax.tasks import tagging

TASKS = {"pretrain": pretrain.PretrainTask, "classify": classify.ClassifyTask,
         "tag": tagging.TagTask}


def get(config, *, adopt_init_from=False):
  """The Task object for `config` (config.task; configs saved before it: pre-training).

  Args:
    config: the run's config.
    adopt_init_from: a fine-tuning run that starts: take the encoder's architecture
      and vocabulary settings from config.init_from into `config` (see finetune.py).
  """
  name = config.get("task", "pretrain")
  if name not in TASKS:
    raise errors.ConfigError(f"config.task={name!r} is not allowed: it must be one of "
                             f"{', '.join(TASKS)}; pass e.g. --config.task=pretrain")
  task = TASKS[name](config)
  if adopt_init_from and isinstance(task, finetune.FinetuneTask):
    from prelm_jax import registry  # pylint: disable=g-import-not-at-top
    finetune.adopt_pretrained_architecture(config, registry.load("base"))
  return task

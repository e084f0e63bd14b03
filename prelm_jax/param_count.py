"""A config's parameter count from shapes alone: nothing is initialised or trained.

`prelm show`, the family's size checks (tests/test_family.py) and anyone sizing a model
use this; it traces model.init under jax.eval_shape, as state.py does for the train
state, so BERT-large costs a trace, not 1.3 GB of memory.
"""
import dataclasses
import math

import jax

from prelm_jax import tasks


@dataclasses.dataclass(frozen=True)
class ParamCount:
  total: int
  encoder: int    # params['encoder']: what a fine-tuning run loads from init_from
  by_part: dict   # top-level params entry (encoder, mlm_head, classifier, ...) -> count

  @property
  def heads(self):
    return self.total - self.encoder


def abstract_params(config, *, task=None):
  """The params tree of the config's task model as ShapeDtypeStructs.

  Args:
    config: a run's ConfigDict; the vocabulary is config.data.vocab_size (the size a
      trained WordPiece reaches may fall short of it, by a few rows).
    task: the Task to build (default tasks.get(config), which reads no data: a
      fine-tuning head then has as many outputs as config.data.labels, at least 2).
  """
  task = task or tasks.get(config)
  model = task.build_model(config.data.vocab_size)

  def init(rng):
    inputs = task.model_inputs(task.dummy_batch())
    return model.init(rng, *inputs, deterministic=True)["params"]

  return jax.eval_shape(init, jax.random.PRNGKey(0))


def count(config, *, task=None):
  """ParamCount of the config's task model (padded vocabulary rows included)."""
  params = abstract_params(config, task=task)
  size = lambda tree: sum(math.prod(x.shape) for x in jax.tree.leaves(tree))
  by_part = {name: size(tree) for name, tree in params.items()}
  return ParamCount(sum(by_part.values()), by_part.get("encoder", 0), by_part)


def count_run(workdir):
  """The total parameter count of the run in `workdir` (its config.json, and the size its
  vocab.txt reached: a trained vocabulary may fall short of config.data.vocab_size), or
  None without a config.json. Reads no checkpoint."""
  import os  # pylint: disable=g-import-not-at-top
  from prelm_jax import analysis  # pylint: disable=g-import-not-at-top
  from prelm_jax import workdir as workdir_lib  # pylint: disable=g-import-not-at-top
  if not os.path.isfile(os.path.join(workdir, workdir_lib.CONFIG_FILE)):
    return None
  config = analysis._read_config(workdir)  # pylint: disable=protected-access
  vocab = os.path.join(workdir, workdir_lib.VOCAB_FILE)
  if os.path.isfile(vocab):
    with open(vocab, encoding="utf-8") as f:
      config.data.vocab_size = sum(1 for _ in f)
  return count(config).total

"""A run's parameter count from its config.json and vocab.txt alone: the model is built
abstractly (jax.eval_shape), so nothing is allocated and no checkpoint is read."""
import math
import os

from prelm_jax import workdir as workdir_lib


def count(workdir):
  """The number of parameters of the run in `workdir`, or None without a config.json."""
  if not os.path.isfile(os.path.join(workdir, workdir_lib.CONFIG_FILE)):
    return None
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  from prelm_jax import analysis  # pylint: disable=g-import-not-at-top
  from prelm_jax import tasks  # pylint: disable=g-import-not-at-top
  config = analysis._read_config(workdir)  # pylint: disable=protected-access
  vocab = os.path.join(workdir, workdir_lib.VOCAB_FILE)
  # The trained vocabulary's size, as train.py builds the model; the config's is a target.
  vocab_size = (sum(1 for _ in open(vocab, encoding="utf-8")) if os.path.isfile(vocab)
                else config.data.vocab_size)
  task = tasks.get(config)
  model = task.build_model(vocab_size)

  def init(rng):
    inputs = task.model_inputs(task.dummy_batch())
    return model.init(rng, *inputs, deterministic=True)["params"]
  shapes = jax.eval_shape(init, jax.random.PRNGKey(0))
  is_box = lambda x: isinstance(x, nn.Partitioned)
  leaves = jax.tree.leaves(shapes, is_leaf=is_box)
  return sum(math.prod((x.value if is_box(x) else x).shape) for x in leaves)

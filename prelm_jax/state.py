"""The train state: its abstract shape and shardings, the jitted steps, the restore order.

Used by the training loop (train.py), `prelm plan` and notebooks (analysis.py), none of
which need the others: this module reads no corpus and knows no task but through the
Task interface (tasks/base.py).

Restore order (create_or_restore): the workdir's latest checkpoint, or the one
config.train.restore_step names, else a fresh init created already sharded.
"""
import functools
import os
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp

from prelm_jax import checkpoint_guard
from prelm_jax import checkpointing
from prelm_jax import library_logs
from prelm_jax import progress
from prelm_jax import sharding
from prelm_jax import train_step as step_lib
from prelm_jax import workdir as workdir_lib


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  opt_state: Any
  rng: jax.Array  # base key; each step folds in its step number


def init_boxed(rng, *, task, model, tx):
  """The initial TrainState with nn.Partitioned leaves (they carry the logical names)."""
  params_rng, dropout_rng = jax.random.split(rng)
  inputs = task.model_inputs(task.dummy_batch())
  params = model.init(params_rng, *inputs, deterministic=True)["params"]
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    opt_state=tx.init(params), rng=dropout_rng)


def _unbox_abstract(tree):
  """nn.unbox for shapes only (nn.unbox would add sharding constraints, which need arrays)."""
  is_box = lambda x: isinstance(x, nn.Partitioned)
  return jax.tree.map(lambda x: x.value if is_box(x) else x, tree, is_leaf=is_box)


def abstract_state_and_shardings(task, model, tx, mesh):
  """(abstract unboxed state with shardings, state shardings, init fn); allocates nothing."""
  init = functools.partial(init_boxed, task=task, model=model, tx=tx)
  abstract_boxed = jax.eval_shape(init, jax.random.PRNGKey(task.config.seed))
  shardings = sharding.logical_shardings(abstract_boxed, mesh,
                                         sharding.config_rules(task.config))
  abstract = checkpointing.abstract_like(_unbox_abstract(abstract_boxed), shardings)
  return abstract, shardings, init


def fresh_state(init, shardings, seed):
  """A new state, created already sharded: each device materialises only its own shards."""
  return jax.jit(lambda rng: nn.unbox(init(rng)), out_shardings=shardings)(
      jax.random.PRNGKey(seed))


def jit_train_step(task, model, tx, schedule, state_shardings, mesh, *,
                   compiler_options=None):
  """The jitted train step, state donated: train.run, `prelm plan` and the tests
  all compile this same function."""
  train = task.config.train
  return jax.jit(
      functools.partial(step_lib.train_step, task=task, model=model, tx=tx,
                        schedule=schedule, grad_accum_steps=train.grad_accum_steps,
                        nonfinite_policy=train.nonfinite_policy),
      in_shardings=(state_shardings, sharding.batch_sharding(mesh)),
      out_shardings=(state_shardings, None), donate_argnums=0,
      compiler_options=compiler_options)


def jit_eval_step(task, model, params_shardings, mesh):
  return jax.jit(functools.partial(step_lib.eval_step, task=task, model=model),
                 in_shardings=(params_shardings, sharding.batch_sharding(mesh)))


def create_or_restore(task, model, tx, mesh, mngr, vocab_size):
  """The state to train from, restored onto `mesh` or created there.

  Returns:
    (state, state shardings).
  """
  config = task.config
  abstract, shardings, init = abstract_state_and_shardings(task, model, tx, mesh)
  latest = checkpoint_guard.restore_step(mngr, config.train.restore_step)
  if latest is not None:
    say = lambda m: progress.say(m, enabled=jax.process_index() == 0)
    say(f"Resuming from the checkpoint at step {latest} in {mngr.directory}")
    if 0 <= config.train.restore_step != latest:
      say(f"(config.train.restore_step={config.train.restore_step} was applied before, see "
          f"{checkpoint_guard.APPLIED_FILE}; delete that file to go back to it again)")
    vocab_path = os.path.join(os.path.dirname(str(mngr.directory)), workdir_lib.VOCAB_FILE)
    state, _ = checkpoint_guard.restore(mngr, latest, abstract, vocab_path, vocab_size)
    if latest == config.train.restore_step:
      moved = checkpoint_guard.set_aside_later_checkpoints(mngr, latest)
      if moved:
        say(f"Moved the later checkpoints {moved} to "
            f"{checkpoint_guard.SET_ASIDE_DIR}/ (kept, not deleted)")
    return state, shardings
  state = fresh_state(init, shardings, config.seed)
  if config.get("init_from") and config.get("init_params", True):
    state = state.replace(params=load_pretrained_encoder(config, state.params, abstract))
  return state, shardings


@library_logs.quiet()  # orbax warns that a read-only manager is read-only
def load_pretrained_encoder(config, params, abstract):
  """`params` with params['encoder'] read from the config.init_from run, restored onto
  this run's shardings (whatever mesh it was trained on); the head stays as it is."""
  from prelm_jax.tasks import finetune  # pylint: disable=g-import-not-at-top
  step = finetune.init_checkpoint_step(config)
  mngr = checkpointing.manager(os.path.join(config.init_from, workdir_lib.CHECKPOINTS_DIR),
                               None, read_only=True)
  progress.say(f"Encoder from {config.init_from} (step {step}); the head starts fresh",
               enabled=jax.process_index() == 0)
  encoder = checkpointing.restore_params(
      mngr, step, {"encoder": abstract.params["encoder"]})["encoder"]
  return {**params, "encoder": encoder}

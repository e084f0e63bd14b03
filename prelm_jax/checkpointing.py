"""orbax-checkpoint: save every M steps (async), keep the last k, restore onto any mesh.

A checkpoint holds two items: `state` (params, optimizer state, step, RNG) and `meta`
(JSON: the step, the input pipeline's position and the tokenizer's vocabulary size,
which the padded embedding rows do not tell exactly). The pipeline is random-access by
step, so its position is the step itself; it is stored anyway so that a reader need not
know that.
"""
import jax
import orbax.checkpoint as ocp


def manager(workdir_checkpoints, keep, *, read_only=False):
  options = ocp.CheckpointManagerOptions(
      max_to_keep=keep, enable_async_checkpointing=not read_only, create=not read_only,
      read_only=read_only)
  return ocp.CheckpointManager(workdir_checkpoints, options=options)


def save(mngr, state, *, data_position, vocab_size):
  """Starts an async save of `state` unless this step is already saved (never overwrite)."""
  step = int(jax.device_get(state.step))
  if step in mngr.all_steps():
    return False
  return mngr.save(step, args=ocp.args.Composite(
      state=ocp.args.StandardSave(state),
      meta=ocp.args.JsonSave({"step": step, "data_position": int(data_position),
                              "vocab_size": int(vocab_size)})))


def abstract_like(tree, shardings):
  """ShapeDtypeStructs with target shardings: what orbax needs to restore onto a mesh."""
  return jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)


def restore_meta(mngr, step):
  """The JSON item alone (no arrays read)."""
  return mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta


def restore(mngr, step, abstract_state):
  """Restores (state, meta) at `step` onto the shardings carried by `abstract_state`."""
  restored = mngr.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(abstract_state),
      meta=ocp.args.JsonRestore()))
  return restored.state, restored.meta


def restore_params(mngr, step, abstract_params):
  """The params alone, onto the shardings `abstract_params` carries: the optimizer
  state (twice the params' size with Adam) is never read (orbax's partial restore)."""
  target = {"params": abstract_params}
  restore_args = jax.tree.map(lambda x: ocp.ArrayRestoreArgs(sharding=x.sharding), target)
  restored = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(
      item=target, restore_args=restore_args, partial_restore=True)))
  return restored.state["params"]


class BestParams:
  """Keeps the params of the best evaluation so far in their own directory.

  orbax tracks the metric (best_fn) and keeps only the best step, so a restart goes on
  comparing against it; the rotating checkpoints/ that resume needs are not touched.
  """

  def __init__(self, directory, best_metric):
    name, mode = best_metric
    self._name = name
    self._mngr = ocp.CheckpointManager(directory, options=ocp.CheckpointManagerOptions(
        max_to_keep=1, best_fn=lambda metrics: metrics[name], best_mode=mode,
        enable_async_checkpointing=False))

  def offer(self, step, params, metrics):
    """Saves `params` if `metrics` beat the best so far (orbax deletes the worse one)."""
    if step in self._mngr.all_steps() or self._name not in metrics:
      return
    self._mngr.save(step, args=ocp.args.StandardSave(params),
                    metrics={k: float(v) for k, v in metrics.items()})

  def restore(self, like_params):
    """(step, params) of the best evaluation, onto the shardings of `like_params`;
    None when nothing was kept (e.g. no evaluation had the metric)."""
    self._mngr.wait_until_finished()
    step = self._mngr.best_step()
    if step is None:
      return None
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), like_params)
    return step, self._mngr.restore(step, args=ocp.args.StandardRestore(abstract))

  def close(self):
    self._mngr.wait_until_finished()
    self._mngr.close()

"""The pure train and eval steps: (state, batch) -> (state, metric sums).

Metrics leave the step as sums with their weights (see losses.py) so that any number of
steps, devices or hosts add up before one division at logging time.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from prelm_jax import losses
from prelm_jax import nonfinite


def split_micro_batches(batch, num_micro):
  """[B, ...] -> [num_micro, B / num_micro, ...]; micro-batch i holds rows i, i+k, ...

  Strided rows (reshape to [B/k, k], then swap) keep each device's rows on that
  device: the batch axis stays sharded over the data-parallel axes in every
  micro-batch, with no communication.
  """
  def split(x):
    if x.shape[0] % num_micro:
      raise ValueError(f"batch of {x.shape[0]} rows is not divisible by "
                       f"grad_accum_steps={num_micro}; use a multiple of {num_micro}")
    x = x.reshape((x.shape[0] // num_micro, num_micro) + x.shape[1:]).swapaxes(0, 1)
    return nn.with_logical_constraint(
        x, (None, "activation_batch") + (None,) * (x.ndim - 2))
  return jax.tree.map(split, batch)


def accumulated_grads(loss_fn, params, batch, rng, num_micro):
  """Sums loss_fn's (loss, metric sums, grads) over micro-batches with lax.scan.

  Args:
    loss_fn: (params, micro_batch, rng) -> (loss, sums); its loss must already be
      normalised by the whole batch (the task's denominators).
    params: the parameters to differentiate.
    batch: the step's whole batch.
    rng: dropout key; micro-batch i uses fold_in(rng, i) (the key itself when 1).
    num_micro: config.train.grad_accum_steps.

  Returns:
    ((loss, sums), grads), each the sum over micro-batches.
  """
  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  if num_micro == 1:
    return grad_fn(params, batch, rng)
  micro_batches = split_micro_batches(batch, num_micro)

  def body(carry, xs):
    index, micro = xs
    out = grad_fn(params, micro, jax.random.fold_in(rng, index))
    return jax.tree.map(jnp.add, carry, out), None

  first = jax.tree.map(lambda x: x[0], micro_batches)
  shapes = jax.eval_shape(lambda: grad_fn(params, first, rng))
  zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
  out, _ = jax.lax.scan(body, zeros, (jnp.arange(num_micro), micro_batches))
  return out


def train_step(state, batch, *, task, model, tx, schedule, nonfinite_policy="stop",
               grad_accum_steps=1):
  """One optimiser step of any task. Jitted once (state.jit_train_step), state donated.

  The task supplies the loss and its metric sums (tasks/base.py); everything else here
  is the same for every task.

  With grad_accum_steps = k the batch is split into k micro-batches inside the step
  (lax.scan): activations of only B/k rows are alive at once, and the update equals
  that of one B-row batch (the loss is normalised by the whole batch's weights).
  nonfinite_policy="skip" drops the update of a step whose loss or gradient is not
  finite (nonfinite.py); its metrics are left out of the sums and counted in
  `skipped_steps`.
  """
  dropout_rng = jax.random.fold_in(state.rng, state.step)
  denominators = task.denominators(batch)

  def loss_fn(params, micro, rng):
    return task.loss_and_sums(model, params, micro, deterministic=False,
                              rngs={"dropout": rng}, denominators=denominators)

  (loss, sums), grads = accumulated_grads(loss_fn, state.params, batch, dropout_rng,
                                          grad_accum_steps)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  grad_norm = optax.tree.norm(grads)
  sums.update(
      num_steps=jnp.ones((), jnp.float32),
      grad_norm_sum=grad_norm,
      param_norm_sum=optax.tree.norm(params),
      update_norm_sum=optax.tree.norm(updates),
      learning_rate_sum=schedule(state.step))
  skipped = jnp.zeros((), jnp.float32)
  if nonfinite_policy == "skip":
    bad = nonfinite.is_bad(loss, grad_norm)
    params = nonfinite.skip_if_bad(bad, params, state.params)
    opt_state = nonfinite.skip_if_bad(bad, opt_state, state.opt_state)
    # A skipped step's NaN metrics would poison the logged means: leave them out.
    sums = jax.tree.map(lambda v: jnp.where(bad, jnp.zeros_like(v), v), sums)
    skipped = bad.astype(jnp.float32)
  # Tokens the step computed on, skipped or not: the loop's tokens_per_sec. Summed
  # here, over the global batch, so the host reads it with the other sums.
  real_tokens = jnp.sum(batch["attention_mask"], dtype=jnp.float32)
  sums.update(skipped_steps=skipped, real_tokens=real_tokens,
              **nonfinite.step_flags(loss, grad_norm, params))
  new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
  return new_state, sums


def eval_step(params, batch, *, task, model):
  """(metric sums, per-example predictions or None): see Task.eval_outputs."""
  return task.eval_outputs(model, params, batch)


def summarize(sums, task):
  """Metric sums (host numpy, possibly added over steps) -> the logged means."""
  out = task.summarize(sums)
  if "num_steps" in sums:
    for name in ("grad_norm", "param_norm", "update_norm", "learning_rate"):
      out[name] = losses.ratio(sums[f"{name}_sum"], sums["num_steps"])
  if "skipped_steps" in sums:  # steps whose update was dropped (nonfinite_policy=skip)
    out["skipped_steps"] = float(sums["skipped_steps"])
  return out

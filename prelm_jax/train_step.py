"""The pure train and eval steps: (state, batch) -> (state, metric sums).

Metrics leave the step as sums with their weights (see losses.py) so that any number of
steps, devices or hosts add up before one division at logging time.
"""
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from prelm_jax import losses


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  opt_state: Any
  rng: jax.Array  # base key; each step folds in its step number


def model_inputs(batch):
  return (batch["input_ids"], batch["token_type_ids"], batch["attention_mask"],
          batch["mlm_positions"])


def pretraining_sums(model, params, batch, *, deterministic, rngs=None):
  """Runs the model and returns (mean loss to optimise, dict of metric sums)."""
  mlm_logits, nsp_logits = model.apply(
      {"params": params}, *model_inputs(batch), deterministic=deterministic, rngs=rngs)
  mlm = losses.mlm_loss(mlm_logits, batch["mlm_ids"], batch["mlm_weights"])
  nsp = losses.nsp_loss(nsp_logits, batch["nsp_labels"], batch["example_weights"])
  loss = (mlm["loss_sum"] / jnp.maximum(mlm["weight_sum"], 1.0)
          + nsp["loss_sum"] / jnp.maximum(nsp["weight_sum"], 1.0))
  sums = {f"mlm_{k}": v for k, v in mlm.items()}
  sums.update({f"nsp_{k}": v for k, v in nsp.items()})
  return loss, sums


def train_step(state, batch, *, model, tx, schedule):
  """One optimiser step. Jitted once in train.py with the state donated."""
  dropout_rng = jax.random.fold_in(state.rng, state.step)

  def loss_fn(params):
    return pretraining_sums(model, params, batch, deterministic=False,
                            rngs={"dropout": dropout_rng})

  (loss, sums), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  sums.update(
      num_steps=jnp.ones((), jnp.float32),
      grad_norm_sum=optax.tree.norm(grads),
      param_norm_sum=optax.tree.norm(params),
      update_norm_sum=optax.tree.norm(updates),
      learning_rate_sum=schedule(state.step))
  new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
  return new_state, sums


def eval_step(params, batch, *, model):
  _, sums = pretraining_sums(model, params, batch, deterministic=True)
  return sums


def summarize(sums):
  """Metric sums (host numpy, possibly added over steps) -> the logged means."""
  def ratio(num, den):
    return float(num) / max(float(den), 1e-9)
  out = {
      "mlm_loss": ratio(sums["mlm_loss_sum"], sums["mlm_weight_sum"]),
      "nsp_loss": ratio(sums["nsp_loss_sum"], sums["nsp_weight_sum"]),
      "mlm_accuracy": ratio(sums["mlm_correct_sum"], sums["mlm_weight_sum"]),
      "nsp_accuracy": ratio(sums["nsp_correct_sum"], sums["nsp_weight_sum"]),
  }
  out["loss"] = out["mlm_loss"] + out["nsp_loss"]
  if "num_steps" in sums:
    for name in ("grad_norm", "param_norm", "update_norm", "learning_rate"):
      out[name] = ratio(sums[f"{name}_sum"], sums["num_steps"])
  return out

"""AdamW with BERT's schedule: linear warm-up, then linear or cosine decay; optionally
layer-wise learning-rate decay for fine-tuning."""
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

# BERT decays every weight matrix and embedding, never biases (`bias`, `output_bias`)
# or LayerNorm scales.
def _is_decayed_name(name):
  return not (name.endswith("bias") or name == "scale")


def make_schedule(optim_cfg, num_steps):
  peak = optim_cfg.learning_rate
  fraction = optim_cfg.get("warmup_fraction", 0.0)
  warmup = min(round(fraction * num_steps) if fraction else optim_cfg.warmup_steps,
               num_steps)
  end = peak * optim_cfg.end_learning_rate_fraction
  decay_steps = max(num_steps - warmup, 1)
  if optim_cfg.decay == "linear":
    decay = optax.linear_schedule(peak, end, decay_steps)
  elif optim_cfg.decay == "cosine":
    decay = optax.cosine_decay_schedule(peak, decay_steps, alpha=optim_cfg.end_learning_rate_fraction)
  elif optim_cfg.decay == "constant":
    decay = optax.constant_schedule(peak)
  else:
    raise ValueError(f"config.optim.decay={optim_cfg.decay!r} is unknown; "
                     "use 'linear', 'cosine' or 'constant'")
  warmup_fn = optax.linear_schedule(0.0, peak, max(warmup, 1))
  return optax.join_schedules([warmup_fn, decay], [warmup])


def decay_mask(params):
  """True where weight decay applies (by the parameter's own name).

  Works on boxed (nn.Partitioned, at init) and plain (in the step) params alike: a
  box is a leaf here, and optax accepts a mask that is a prefix of the params tree.
  """
  def is_decayed(path, _):
    return _is_decayed_name(str(getattr(path[-1], "key", "")))
  return jax.tree_util.tree_map_with_path(
      is_decayed, params, is_leaf=lambda x: isinstance(x, nn.Partitioned))


def layer_depth(path, num_layers):
  """The depth of a parameter for layer-wise decay: the embeddings 0, encoder layer i
  i + 1, everything above the last layer (pooler, heads) num_layers + 1. A scanned
  encoder's stacked "layers" params get an array of depths 1..num_layers along their
  leading axis."""
  names = [str(getattr(k, "key", k)) for k in path]
  if "embeddings" in names:
    return 0
  if "layers" in names:
    return jnp.arange(1, num_layers + 1)
  for name in names:
    match = re.fullmatch(r"layer_(\d+)", name)
    if match:
      return int(match.group(1)) + 1
  return num_layers + 1


def scale_by_layer_decay(decay, num_layers):
  """Multiplies each update by decay ** (num_layers + 1 - depth) (ELECTRA, BEiT): the
  head trains at the full rate, each layer below it at `decay` times the one above.
  With AdamW's update (rate x (Adam direction + weight decay)) this is the same as
  scaling each parameter's learning rate."""
  def update(updates, state, params=None):
    del params
    def scale(path, u):
      exponent = num_layers + 1 - layer_depth(path, num_layers)
      factor = jnp.asarray(decay, u.dtype) ** exponent
      if jnp.ndim(factor):  # scanned layers: one factor per slice of the leading axis
        factor = factor.reshape((-1,) + (1,) * (u.ndim - 1))
      return u * factor
    return jax.tree_util.tree_map_with_path(scale, updates), state
  return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def make_optimizer(optim_cfg, num_steps, num_layers=None):
  """Returns (optax transformation, learning-rate schedule).

  num_layers (the encoder's) is needed when optim_cfg.layer_decay is below 1.
  """
  schedule = make_schedule(optim_cfg, num_steps)
  parts = []
  if optim_cfg.grad_clip_norm:  # 0: no clipping (optax would scale grads to 0)
    parts.append(optax.clip_by_global_norm(optim_cfg.grad_clip_norm))
  parts.append(optax.adamw(schedule, b1=optim_cfg.b1, b2=optim_cfg.b2, eps=optim_cfg.eps,
                           weight_decay=optim_cfg.weight_decay, mask=decay_mask))
  layer_decay = optim_cfg.get("layer_decay", 1.0)
  if layer_decay != 1.0:
    if num_layers is None:
      raise ValueError("optim.layer_decay needs the encoder's num_layers")
    parts.append(scale_by_layer_decay(layer_decay, num_layers))
  return (parts[0] if len(parts) == 1 else optax.chain(*parts)), schedule

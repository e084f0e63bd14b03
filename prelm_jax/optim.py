"""AdamW with BERT's schedule: linear warm-up, then linear or cosine decay."""
import flax.linen as nn
import jax
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


def make_optimizer(optim_cfg, num_steps):
  """Returns (optax transformation, learning-rate schedule)."""
  schedule = make_schedule(optim_cfg, num_steps)
  adamw = optax.adamw(schedule, b1=optim_cfg.b1, b2=optim_cfg.b2, eps=optim_cfg.eps,
                      weight_decay=optim_cfg.weight_decay, mask=decay_mask)
  if not optim_cfg.grad_clip_norm:  # 0: no clipping (optax would scale grads to 0)
    return adamw, schedule
  return optax.chain(optax.clip_by_global_norm(optim_cfg.grad_clip_norm), adamw), schedule

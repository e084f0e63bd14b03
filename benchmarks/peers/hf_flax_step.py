"""Peer: HuggingFace `FlaxBertForPreTraining` with a jitted optax adamw step, MLM + NSP.

transformers 4.57.x is the last release with Flax models; it runs in a venv of its own
(benchmarks/train_step.py makes benchmarks/.venv-hf-flax with the same jax/flax/optax
as prelm). Protocol: common.py.
  benchmarks/.venv-hf-flax/bin/python benchmarks/peers/hf_flax_step.py '{...}'
"""
import functools
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # pylint: disable=g-import-not-at-top,wrong-import-position


def main():
  start = time.perf_counter()
  spec = common.spec_from_argv()
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  config = transformers.BertConfig(**common.bert_config(spec))
  # dtype is the compute dtype; params stay f32 (as prelm's param_dtype).
  model = transformers.FlaxBertForPreTraining(
      config, seed=spec["seed"], dtype=jnp.dtype(spec["dtype"]),
      input_shape=(1, spec["seq_len"]))
  tx = optax.adamw(spec["learning_rate"], weight_decay=0.01)
  params = model.params
  opt_state = tx.init(params)
  batch = {k: jnp.asarray(v) for k, v in common.random_batch(spec).items()}

  def loss_fn(params, batch, rng):
    out = model(batch["input_ids"], attention_mask=batch["attention_mask"],
                token_type_ids=batch["token_type_ids"], params=params, dropout_rng=rng,
                train=True)
    labels = batch["labels"]
    mask = (labels != -100).astype(jnp.float32)
    mlm = optax.softmax_cross_entropy_with_integer_labels(
        out.prediction_logits.astype(jnp.float32), jnp.where(labels == -100, 0, labels))
    nsp = optax.softmax_cross_entropy_with_integer_labels(
        out.seq_relationship_logits.astype(jnp.float32), batch["next_sentence_label"])
    return jnp.sum(mlm * mask) / jnp.maximum(jnp.sum(mask), 1.0) + jnp.mean(nsp)

  @functools.partial(jax.jit, donate_argnums=(0, 1))
  def train_step(params, opt_state, batch, rng):
    loss, grads = jax.value_and_grad(loss_fn)(params, batch, rng)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  carry = {"params": params, "opt_state": opt_state, "step": 0}
  base_rng = jax.random.PRNGKey(spec["seed"])

  def step():
    rng = jax.random.fold_in(base_rng, carry["step"])
    carry["params"], carry["opt_state"], loss = train_step(
        carry["params"], carry["opt_state"], batch, rng)
    carry["step"] += 1
    return float(loss)  # waits for the step

  def device_peak():
    stats = jax.devices()[0].memory_stats()  # None on CPU
    return stats and stats.get("peak_bytes_in_use")

  common.serve(step, time.perf_counter() - start, device_peak=device_peak, jax=jax.__version__,
               transformers=transformers.__version__,
               device_kind=jax.devices()[0].device_kind)


if __name__ == "__main__":
  main()

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import base
from prelm_jax import optim


def optim_cfg(**overrides):
  cfg = base.get_config().optim
  cfg.update(overrides)
  return cfg


def test_linear_warmup_then_linear_decay():
  schedule = optim.make_schedule(optim_cfg(learning_rate=1.0, warmup_steps=10), 110)
  np.testing.assert_allclose([schedule(s) for s in (0, 5, 10, 60, 110)],
                             [0.0, 0.5, 1.0, 0.5, 0.0], atol=1e-6)


def test_cosine_decay_and_unknown_decay():
  schedule = optim.make_schedule(optim_cfg(learning_rate=2.0, warmup_steps=0, decay="cosine"), 100)
  np.testing.assert_allclose([schedule(0), schedule(50), schedule(100)], [2.0, 1.0, 0.0], atol=1e-5)
  with pytest.raises(ValueError, match="config.optim.decay='step'"):
    optim.make_schedule(optim_cfg(decay="step"), 100)


def test_weight_decay_skips_biases_and_layernorm_on_boxed_and_plain_params():
  params = {"dense": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones((2,))},
            "LayerNorm": {"scale": jnp.ones((2,)), "bias": jnp.zeros((2,))},
            "embeddings": {"embedding": jnp.ones((3, 2))},
            "mlm_head": {"output_bias": jnp.ones((3,))}}
  expected = {"dense": {"kernel": True, "bias": False},
              "LayerNorm": {"scale": False, "bias": False},
              "embeddings": {"embedding": True},
              "mlm_head": {"output_bias": False}}
  assert optim.decay_mask(params) == expected
  boxed = {"dense": {"kernel": nn.Partitioned(jnp.ones((2, 2)), ("embed", "mlp")),
                     "bias": nn.Partitioned(jnp.ones((2,)), ("mlp",))}}
  assert optim.decay_mask(boxed) == {"dense": {"kernel": True, "bias": False}}


def test_decay_only_shrinks_decayed_params():
  tx, _ = optim.make_optimizer(optim_cfg(learning_rate=0.1, warmup_steps=0, weight_decay=0.5,
                                         decay="constant"), 10)
  params = {"kernel": jnp.ones((2, 2)), "bias": jnp.ones((2,))}
  zero_grads = {"kernel": jnp.zeros((2, 2)), "bias": jnp.zeros((2,))}
  updates, _ = tx.update(zero_grads, tx.init(params), params)
  assert float(jnp.abs(updates["bias"]).max()) == 0.0
  np.testing.assert_allclose(updates["kernel"], -0.1 * 0.5 * np.ones((2, 2)), rtol=1e-6)


@pytest.mark.parametrize("scan_layers", [False, True])
def test_layer_decay_scales_each_layer_s_update(scan_layers):
  """Depth: embeddings 0, layer i i+1, pooler and head 3 (2 layers); with decay 0.5 a
  parameter's update is 0.5 ** (3 - depth) times the undecayed one, slice by slice
  for a scanned encoder."""
  import jax  # pylint: disable=g-import-not-at-top
  from prelm_jax import registry, tasks  # pylint: disable=g-import-not-at-top
  config = registry.load("sst2")
  config.model.update(num_layers=2, hidden_size=16, num_heads=2, mlp_dim=32,
                      max_position_embeddings=16, scan_layers=scan_layers)
  config.data.max_seq_len = 16
  task = tasks.get(config, adopt_init_from=False)
  task.labels = ["0", "1"]
  model = task.build_model(64)
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), *task.model_inputs(
      task.dummy_batch()), deterministic=True))["params"]
  params = jax.tree.map(lambda s: jnp.ones(s.shape, s.dtype), nn.unbox(shapes))
  grads = jax.tree.map(lambda p: jnp.full(p.shape, 0.3, p.dtype), params)

  def updates(layer_decay):
    tx, _ = optim.make_optimizer(optim_cfg(learning_rate=0.1, warmup_steps=0, decay="constant",
                                           weight_decay=0.0, layer_decay=layer_decay),
                                 10, num_layers=2)
    return tx.update(grads, tx.init(params), params)[0]

  ratio = jax.tree.map(lambda a, b: np.asarray(a / b), updates(0.5), updates(1.0))
  encoder = ratio["encoder"]
  np.testing.assert_allclose(encoder["embeddings"]["word_embeddings"]["embedding"], 0.125)
  np.testing.assert_allclose(encoder["pooler"]["dense"]["kernel"], 1.0)
  np.testing.assert_allclose(ratio["classifier"]["dense"]["kernel"], 1.0)
  if scan_layers:
    wi = encoder["layers"]["mlp"]["wi"]["kernel"]  # [layers, ...]
    np.testing.assert_allclose(wi[0], 0.25)
    np.testing.assert_allclose(wi[1], 0.5)
  else:
    np.testing.assert_allclose(encoder["layer_0"]["mlp"]["wi"]["kernel"], 0.25)
    np.testing.assert_allclose(encoder["layer_1"]["attention"]["query"]["kernel"], 0.5)

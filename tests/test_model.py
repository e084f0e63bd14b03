"""The network: shapes, padding, tying, param names, attention, sharding."""
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType
from jax.sharding import PartitionSpec as P

from experiments import base
from prelm_jax import losses
from prelm_jax.model import build_model
from prelm_jax.model import heads
from prelm_jax.model import layers
from prelm_jax.model import variants
from prelm_jax.model.config import EncoderConfig

VOCAB = 128  # a multiple of base.py's vocab_pad_multiple: no padding rows
MAX_LEN = 16
PARAM_NAMES = {'vocab', 'embed', 'heads', 'kv', 'mlp', None}
RULES = [('activation_batch', ('data', 'fsdp')), ('vocab', 'tensor'),
         ('embed', 'fsdp'), ('heads', 'tensor'), ('mlp', 'tensor'),
         ('activation_heads', 'tensor'), ('activation_mlp', 'tensor'),
         ('kv', None), ('activation_length', None), ('activation_embed', None),
         ('activation_kv', None), ('activation_vocab', None)]


def small_config(**overrides):
  cfg = base.get_config().model
  # A large initializer_range: with BERT's 0.02 every residual branch starts
  # near zero, which would hide differences these tests look for.
  cfg.update(num_layers=2, hidden_size=32, num_heads=4, mlp_dim=64,
             max_position_embeddings=MAX_LEN, initializer_range=0.2)
  cfg.update(overrides)
  return cfg


def make_batch(lengths, seq_len, num_predictions=3, seed=0):
  """A right-padded batch; padding holds random ids, to show they're ignored."""
  rng = np.random.default_rng(seed)
  b = len(lengths)
  ids = rng.integers(5, VOCAB, size=(b, seq_len)).astype(np.int32)
  types = np.zeros((b, seq_len), np.int32)
  mask = np.zeros((b, seq_len), np.int32)
  positions = np.zeros((b, num_predictions), np.int32)
  for i, n in enumerate(lengths):
    mask[i, :n] = 1
    types[i, n // 2:n] = 1
    positions[i] = rng.choice(np.arange(1, n), num_predictions, replace=False)
  return ids, types, mask, positions


def key(seed=0):
  # rbg rather than threefry keys: eager init compiles one threefry kernel per
  # parameter shape, which made these tests ~4x slower on a 2-core CPU.
  return jax.random.key(seed, impl='rbg')


def init(model, batch, seed=0):
  return model.init(key(seed), *batch)


def jit_forward(model):
  """jit(batch -> ((mlm, nsp), (sequence_output, pooled))), deterministic.

  One compiled program per batch shape is faster than eager op-by-op here;
  the encoder's outputs are captured from the same pass.
  """
  @jax.jit
  def forward(variables, batch):
    outputs, state = model.apply(
        variables, *batch, mutable=['intermediates'],
        capture_intermediates=lambda m, method: m.name == 'encoder')
    return outputs, state['intermediates']['encoder']['__call__'][0]
  return forward


@functools.cache
def model_and_variables(**overrides):
  """A small model and its variables, shared by tests (params don't depend on
  the batch shape)."""
  model = build_model(small_config(**overrides), VOCAB)
  return model, init(model, make_batch([5, 8], 8))


def repad(batch, seq_len):
  """Extends a right-padded batch with more (garbage) padding to seq_len."""
  ids, types, mask, positions = batch
  extra = seq_len - ids.shape[1]
  pad = lambda a, v: np.pad(a, ((0, 0), (0, extra)), constant_values=v)
  return pad(ids, 7), pad(types, 1), pad(mask, 0), positions


@pytest.mark.parametrize('encoder', ['transformer', 'lstm'])
def test_shapes_and_extra_padding_changes_nothing(encoder):
  model, variables = model_and_variables(encoder=encoder)
  forward = jit_forward(model)
  short = make_batch([5, 8], 8)
  (mlm, nsp), (seq, pooled) = forward(variables, short)
  assert set(variables['params']) == {'encoder', 'mlm_head', 'nsp_head'}
  assert mlm.shape == (2, 3, VOCAB) and mlm.dtype == jnp.float32
  assert nsp.shape == (2, 2) and nsp.dtype == jnp.float32
  assert seq.shape == (2, 8, 32) and pooled.shape == (2, 32)

  (mlm_l, nsp_l), (seq_l, pooled_l) = forward(variables, repad(short, 13))
  real = short[2].astype(bool)
  np.testing.assert_allclose(seq_l[:, :8][real], seq[real], atol=1e-5)
  np.testing.assert_allclose(pooled_l, pooled, atol=1e-5)
  np.testing.assert_allclose(mlm_l, mlm, atol=1e-5)
  np.testing.assert_allclose(nsp_l, nsp, atol=1e-5)

  # The check has teeth: changing one real token does change the outputs.
  changed = list(short)
  changed[0] = short[0].copy()
  changed[0][0, 4] = 6 if short[0][0, 4] != 6 else 5
  _, (_, pooled_c) = forward(variables, changed)
  assert np.abs(pooled_c[0] - pooled[0]).max() > 1e-4


def test_bfloat16_compute_keeps_float32_params_and_logits():
  model = build_model(small_config(dtype='bfloat16'), VOCAB)
  batch = make_batch([5, 8], 8)
  # eval_shape: the dtypes are the point, and it needs no compilation.
  variables = jax.eval_shape(lambda: init(model, batch))
  assert all(x.dtype == jnp.float32
             for x in jax.tree.leaves(nn.unbox(variables)))
  mlm, nsp = jax.eval_shape(lambda v: model.apply(v, *batch), variables)
  assert mlm.dtype == nsp.dtype == jnp.float32
  seq, pooled = jax.eval_shape(
      lambda v: model.apply(v, *batch[:3], method=model.encode), variables)
  assert seq.dtype == pooled.dtype == jnp.bfloat16


def test_gelu_and_its_gradient_equal_flax_exact_gelu():
  # layers.gelu uses erf (fast on CPU), flax's exact gelu erfc: the same function.
  x = jnp.linspace(-12.0, 12.0, 4001)
  np.testing.assert_allclose(layers.gelu(x), nn.gelu(x, approximate=False),
                             rtol=1e-6, atol=1e-6)
  grad = lambda f: jax.vmap(jax.grad(f))(x)
  np.testing.assert_allclose(grad(layers.gelu), grad(lambda v: nn.gelu(v, approximate=False)),
                             rtol=1e-5, atol=1e-6)
  # Far from the tanh approximation, which differs by ~1e-3 near |x| = 2.
  assert np.abs(layers.gelu(x) - nn.gelu(x, approximate=True)).max() > 1e-4


def test_dropout_bits_on_cpu_are_threefry_s_unrolled_not_a_while_loop():
  # prelm_jax (imported above) lowers threefry unrolled on CPU (cpu_rng.py): ~5x faster
  # dropout masks, and the same bits as jax's rolled default (values below, from it).
  from prelm_jax import cpu_rng  # pylint: disable=g-import-not-at-top
  assert cpu_rng.use_unrolled_threefry_on_cpu()
  draw = jax.jit(lambda k: jax.random.bits(k, (4,)))
  assert 'while' not in draw.lower(jax.random.PRNGKey(1)).as_text()
  np.testing.assert_array_equal(draw(jax.random.PRNGKey(1)),
                                [1883912375, 2292451390, 1915204986, 1882898417])


def test_mlm_logits_at_masked_positions_equal_the_full_sequence_logits_there():
  # The head scores only the P masked rows (a speed lever): those logits, and so the
  # loss, are the full-sequence logits picked at the same positions.
  model, variables = model_and_variables()
  ids, types, mask, positions = make_batch([5, 8], 8)
  apply = jax.jit(lambda v, pos: model.apply(v, ids, types, mask, pos)[0])
  masked, full = apply(variables, positions), apply(variables, None)
  assert full.shape[1] == 8 and masked.shape[1] == positions.shape[1]
  picked = np.take_along_axis(np.asarray(full), positions[..., None], axis=1)
  np.testing.assert_allclose(masked, picked, rtol=1e-5, atol=1e-5)
  labels, weights = ids[np.arange(2)[:, None], positions], np.ones(positions.shape)
  np.testing.assert_allclose(losses.mlm_loss(masked, labels, weights)['loss_sum'],
                             losses.mlm_loss(picked, labels, weights)['loss_sum'], rtol=1e-6)


def test_bfloat16_compute_agrees_with_float32_within_bfloat16_precision():
  # bf16 compute (f32 params, f32 logits) is a speed lever on accelerators: same
  # weights, so the logits differ only by bf16 rounding (8 bits of mantissa).
  batch = make_batch([5, 8], 8)
  f32, variables = model_and_variables()
  bf16 = build_model(small_config(dtype='bfloat16'), VOCAB)
  (mlm32, nsp32), _ = jit_forward(f32)(variables, batch)
  (mlm16, nsp16), _ = jit_forward(bf16)(variables, batch)
  scale = np.abs(np.asarray(mlm32)).max()
  err = np.abs(np.asarray(mlm16) - np.asarray(mlm32)).max() / scale
  assert 1e-5 < err < 0.05, err  # really computed in bf16, and close
  np.testing.assert_allclose(nsp16, nsp32, atol=0.05 * np.abs(np.asarray(nsp32)).max())
  labels = batch[0][np.arange(2)[:, None], batch[3]]
  loss = lambda m: float(losses.mlm_loss(m, labels, np.ones(labels.shape))['loss_sum'])
  assert loss(mlm16) == pytest.approx(loss(mlm32), rel=0.02)


def test_post_ln_and_pre_ln_both_run_and_differ():
  batch = make_batch([5, 8], 8)
  outs = {}
  for pre_ln in (False, True):
    model, variables = model_and_variables(pre_ln=pre_ln)
    assert ('final_layer_norm' in variables['params']['encoder']) == pre_ln
    outs[pre_ln] = model.apply(variables, *batch[:3], method=model.encode)[0]
    assert np.all(np.isfinite(outs[pre_ln]))
  assert np.abs(outs[True] - outs[False]).max() > 1e-2


def test_dropout_uses_the_dropout_rng():
  model, variables = model_and_variables()
  batch = make_batch([5, 8], 8)
  run = lambda seed: model.apply(variables, *batch, deterministic=False,
                                 rngs={'dropout': key(seed)})[0]
  np.testing.assert_array_equal(run(1), run(1))
  assert np.abs(run(1) - run(2)).max() > 1e-3
  assert np.abs(run(1) - model.apply(variables, *batch)[0]).max() > 1e-3


def test_mlm_head_is_tied_to_word_embeddings():
  model, variables = model_and_variables()
  batch = make_batch([5, 8], 8)
  params = nn.unbox(variables)['params']
  big = [jax.tree_util.keystr(p)
         for p, x in jax.tree_util.tree_leaves_with_path(params)
         if VOCAB in x.shape and x.ndim == 2]
  assert big == ["['encoder']['embeddings']['word_embeddings']['embedding']"]

  # Labels that never occur in the input: only the output projection can
  # carry a gradient to their embedding rows.
  labels = np.array([[1, 2, 3], [2, 3, 4]])
  assert not np.isin(labels, batch[0]).any()
  def loss(p):
    mlm, _ = model.apply({'params': p}, *batch)
    out = losses.mlm_loss(mlm, labels, np.ones(labels.shape))
    return out['loss_sum']
  grad = jax.jit(jax.grad(loss))(params)
  rows = grad['encoder']['embeddings']['word_embeddings']['embedding']
  assert np.all(np.abs(rows[np.unique(labels)]).sum(-1) > 1e-6)


def test_untied_mlm_head_owns_its_output_embeddings():
  """tie_word_embeddings=False: the head scores with a [V, H] matrix of its own, so
  a label that is not in the input sends no gradient to the input embeddings."""
  model, variables = model_and_variables(tie_word_embeddings=False)
  params = nn.unbox(variables)['params']
  assert params['mlm_head']['output_embeddings'].shape == (VOCAB, 32)
  batch = make_batch([5, 8], 8)
  labels = np.array([[1, 2, 3], [2, 3, 4]])
  assert not np.isin(labels, batch[0]).any()
  def loss(p):
    mlm, _ = model.apply({'params': p}, *batch)
    return losses.mlm_loss(mlm, labels, np.ones(labels.shape))['loss_sum']
  grad = jax.jit(jax.grad(loss))(params)
  rows = grad['encoder']['embeddings']['word_embeddings']['embedding']
  np.testing.assert_array_equal(rows[np.unique(labels)], 0.0)
  assert np.abs(grad['mlm_head']['output_embeddings'][np.unique(labels)]).sum() > 0
  # The encoder's params are those of a tied model: fine-tuning loads either.
  _, tied = model_and_variables()
  same_shapes = lambda v: jax.tree.map(jnp.shape, nn.unbox(v)['params']['encoder'])
  assert same_shapes(variables) == same_shapes(tied)


def test_padded_vocabulary_rows_are_never_predicted():
  # 100 tokens padded to 128 rows (so that 'vocab' splits over e.g. tensor=4): the
  # real tokens' logits are those of the unpadded model with the same weights, and
  # the padding rows get no probability.
  padded = build_model(small_config(vocab_pad_multiple=64), 100)
  plain = build_model(small_config(vocab_pad_multiple=1), 100)
  ids, *rest = make_batch([5, 8], 8)
  batch = (ids % 100, *rest)
  params = nn.unbox(init(padded, batch))['params']
  emb = params['encoder']['embeddings']['word_embeddings']['embedding']
  assert emb.shape[0] == 128 and params['mlm_head']['output_bias'].shape == (128,)
  trimmed = jax.tree.map(lambda x: x, params)
  trimmed['encoder']['embeddings']['word_embeddings']['embedding'] = emb[:100]
  trimmed['mlm_head']['output_bias'] = params['mlm_head']['output_bias'][:100]
  (mlm, nsp), _ = jit_forward(padded)({'params': params}, batch)
  (want_mlm, want_nsp), _ = jit_forward(plain)({'params': trimmed}, batch)
  np.testing.assert_allclose(mlm[..., :100], want_mlm, atol=1e-5)
  np.testing.assert_allclose(nsp, want_nsp, atol=1e-5)
  assert np.all(jax.nn.softmax(mlm)[..., 100:] == 0)


@pytest.mark.parametrize('encoder', ['transformer', 'lstm'])
def test_every_param_has_logical_names(encoder):
  model = build_model(small_config(encoder=encoder), VOCAB)
  batch = make_batch([5, 8], 8)
  params = jax.eval_shape(lambda: init(model, batch))['params']
  leaves = jax.tree_util.tree_leaves_with_path(
      params, is_leaf=lambda x: isinstance(x, nn.Partitioned))
  assert leaves
  for path, leaf in leaves:
    where = jax.tree_util.keystr(path)
    assert isinstance(leaf, nn.Partitioned), where
    assert len(leaf.names) == leaf.value.ndim, where
    assert set(leaf.names) <= PARAM_NAMES, where


def test_classifier_head():
  cfg = EncoderConfig(vocab_size=VOCAB, hidden_size=8, num_heads=2)
  head = heads.ClassifierHead(cfg, num_classes=3)
  pooled = np.ones((2, 8), np.float32)
  variables = head.init(key(), pooled, deterministic=True)
  is_box = lambda x: isinstance(x, nn.Partitioned)
  for leaf in jax.tree.leaves(variables, is_leaf=is_box):
    assert set(leaf.names) <= PARAM_NAMES
  logits = head.apply(variables, pooled, deterministic=True)
  assert logits.shape == (2, 3) and logits.dtype == jnp.float32


@pytest.mark.parametrize('alibi', [False, True])
def test_attention_matches_numpy(alibi):
  cfg = EncoderConfig(vocab_size=VOCAB, hidden_size=8, num_heads=2, alibi=alibi)
  attention = layers.SelfAttention(cfg)
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 5, 8)).astype(np.float32)
  mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
  bias = layers.attention_bias(mask)
  variables = attention.init(key(), x, bias, deterministic=True)
  p = jax.tree.map(np.asarray, nn.unbox(variables)['params'])
  # Non-zero biases so a dropped bias term would show.
  p = jax.tree.map(lambda a: a + rng.normal(size=a.shape) * 0.1, p)
  got = attention.apply({'params': p}, x, bias, deterministic=True)

  d = 4
  want = np.zeros_like(x)
  for h in range(2):
    proj = lambda n: x @ p[n]['kernel'][:, h] + p[n]['bias'][h]
    q, k, v = proj('query'), proj('key'), proj('value')
    scores = q @ k.transpose(0, 2, 1) / np.sqrt(d)
    scores = scores + np.where(mask[:, None, :] > 0, 0.0, -1e9)
    if alibi:  # slopes 2^-4, 2^-8 for 2 heads
      i = np.arange(5)
      scores = scores - 2.0 ** (-4 * (h + 1)) * np.abs(i[:, None] - i[None, :])
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    want += (probs @ v) @ p['out']['kernel'][h]
  want += p['out']['bias']
  np.testing.assert_allclose(got, want, atol=1e-5)


def test_too_long_sequence_raises_clear_error():
  model = build_model(small_config(), VOCAB)
  batch = make_batch([5, 17], MAX_LEN + 1)
  with pytest.raises(ValueError,
                     match='17 exceeds max_position_embeddings 16'):
    init(model, batch)


def test_config_errors_are_clear():
  with pytest.raises(ValueError, match='transformer, lstm'):
    build_model(small_config(encoder='gru'), VOCAB)
  with pytest.raises(ValueError, match='tiny, mini'):
    variants.get('huge')
  with pytest.raises(TypeError):
    EncoderConfig(vocab_size=8, dtype='bf16')


@pytest.mark.parametrize('name, vocab, expected', [
    ('tiny', 8000, 1.528e6), ('base', 30522, 110.1e6)])
def test_variant_param_counts(name, vocab, expected):
  cfg = base.get_config().model
  cfg.update(variants.get(name))
  model = build_model(cfg, vocab)
  batch = make_batch([5, 8], 8)
  shapes = jax.eval_shape(lambda: init(model, batch))
  count = sum(x.size for x in jax.tree.leaves(nn.unbox(shapes)))
  assert abs(count - expected) / expected < 0.02, count


def sharded_init(model, batch, mesh):
  """As train.py does it: params created already sharded (inside the mesh and rules)."""
  abstract = jax.eval_shape(lambda: init(model, batch))
  shardings = nn.logical_to_mesh_sharding(nn.get_partition_spec(abstract), mesh, RULES)
  return jax.jit(lambda: nn.unbox(init(model, batch)), out_shardings=shardings)()


@pytest.mark.parametrize('encoder', ['transformer', 'lstm'])
def test_sharded_init_and_forward_match_unsharded(encoder):
  model = build_model(small_config(encoder=encoder), VOCAB)
  batch = make_batch([5, 8, 4, 7], 8)
  mesh = jax.make_mesh((2, 2, 2), ('data', 'fsdp', 'tensor'),
                       axis_types=(AxisType.Auto,) * 3)
  with jax.set_mesh(mesh), nn.logical_axis_rules(RULES):
    variables = sharded_init(model, batch, mesh)
    lowered = jax.jit(model.apply).lower(variables, *batch)
    got = lowered.compile()(variables, *batch)
  hlo = lowered.as_text()
  emb = variables['params']['encoder']['embeddings']['word_embeddings']
  assert emb['embedding'].sharding.spec == P('tensor', 'fsdp')

  # The activation constraints made it into the program.
  constraints = [l for l in hlo.splitlines() if 'sharding_constraint' in l]
  assert len(constraints) >= 4
  if encoder == 'transformer':  # q/k/v [B, L, heads, kv] split over tensor.
    assert any('[{"data", "fsdp"}, {}, {"tensor"}, {}]' in l
               for l in constraints)

  want = jax.jit(model.apply)(jax.device_get(variables), *batch)
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, atol=1e-5)


def test_geglu_feed_forward_shapes_params_and_grads():
  gelu_model, gelu_vars = model_and_variables()
  model, variables = model_and_variables(mlp_activation='geglu')
  layer = variables['params']['encoder']['layer_0']['mlp']
  assert nn.unbox(layer['wi']['kernel']).shape == (32, 2, 64)
  assert layer['wi']['kernel'].names == ('embed', None, 'mlp')
  assert nn.unbox(layer['wi']['bias']).shape == (2, 64)
  assert nn.unbox(layer['wo']['kernel']).shape == (64, 32)
  count = lambda v: sum(x.size for x in jax.tree.leaves(nn.unbox(v['params'])))
  # Per layer, one more [H, mlp] kernel and [mlp] bias (the gate beside the value).
  assert count(variables) - count(gelu_vars) == 2 * (32 * 64 + 64)
  batch = make_batch([5, 8], 8)
  params = nn.unbox(variables)['params']

  def loss(p):
    mlm, nsp = model.apply({'params': p}, *batch)
    return jnp.mean(mlm ** 2) + jnp.mean(nsp ** 2)
  value, grads = jax.jit(jax.value_and_grad(loss))(params)
  assert np.isfinite(value)
  wi_grad = grads['encoder']['layer_0']['mlp']['wi']['kernel']
  assert np.abs(wi_grad[:, 0]).sum() > 0 and np.abs(wi_grad[:, 1]).sum() > 0
  # A numpy reference of the layer: gelu(x W_gate + b_gate) * (x W_value + b_value) W_o.
  x = np.random.default_rng(0).normal(size=(2, 3, 32)).astype(np.float32)
  ff = layers.FeedForward(EncoderConfig(vocab_size=VOCAB, **{
      k: v for k, v in small_config(mlp_activation='geglu').items()
      if k in EncoderConfig.__dataclass_fields__}))
  ff_params = nn.unbox(ff.init(key(), x))['params']
  wi, bi = ff_params['wi']['kernel'], ff_params['wi']['bias']
  gate = np.einsum('ble,em->blm', x, wi[:, 0]) + bi[0]
  value_ = np.einsum('ble,em->blm', x, wi[:, 1]) + bi[1]
  want = (np.asarray(jax.nn.gelu(gate, approximate=False)) * value_
          ) @ ff_params['wo']['kernel'] + ff_params['wo']['bias']
  np.testing.assert_allclose(ff.apply({'params': ff_params}, x), want, atol=1e-4)


def test_geglu_is_refused_for_the_lstm_and_unknown_activations():
  with pytest.raises(ValueError, match='no feed-forward'):
    build_model(small_config(encoder='lstm', mlp_activation='geglu'), VOCAB)
  with pytest.raises(ValueError, match='mlp_activation'):
    build_model(small_config(mlp_activation='swish'), VOCAB)


@pytest.mark.parametrize('encoder', ['transformer', 'lstm'])
def test_no_sentence_head_has_no_nsp_params(encoder):
  model = build_model(small_config(encoder=encoder), VOCAB, sentence_head=False)
  batch = make_batch([5, 8], 8)
  variables = init(model, batch)
  assert 'nsp_head' not in variables['params']
  mlm, nsp = model.apply(variables, *batch)
  assert nsp is None and mlm.shape == (2, 3, VOCAB)


def test_geglu_sharded_over_tensor_matches_unsharded():
  model = build_model(small_config(mlp_activation='geglu'), VOCAB)
  batch = make_batch([5, 8, 4, 7], 8)
  mesh = jax.make_mesh((2, 2, 2), ('data', 'fsdp', 'tensor'),
                       axis_types=(AxisType.Auto,) * 3)
  with jax.set_mesh(mesh), nn.logical_axis_rules(RULES):
    variables = sharded_init(model, batch, mesh)
    got = jax.jit(model.apply)(variables, *batch)
  wi = variables['params']['encoder']['layer_0']['mlp']['wi']['kernel']
  assert wi.sharding.spec == P('fsdp', None, 'tensor')
  want = jax.jit(model.apply)(jax.device_get(variables), *batch)
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, atol=1e-5)

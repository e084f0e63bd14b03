"""model/intermediates.py: hidden states and attention probabilities of every layer,
and MLM logits at every position, for analysis and conversion."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prelm_jax.model import build_model
from prelm_jax.model import intermediates
from tests.test_model import VOCAB, init, make_batch, small_config


def _unboxed(params):
  return jax.tree.map(lambda x: getattr(x, 'value', x), params,
                      is_leaf=lambda x: hasattr(x, 'value'))


def _model(**overrides):
  model = build_model(small_config(num_layers=3, **overrides), VOCAB)
  batch = make_batch([5, 8], 8)
  return model, _unboxed(init(model, batch)['params']), batch


@pytest.mark.parametrize('scan_layers', [False, True])
def test_every_layer_is_reported_and_attention_skips_padding(scan_layers):
  model, params, (ids, types, mask, _) = _model(scan_layers=scan_layers)
  out = intermediates.encoder_outputs(model.config, params, ids, types, mask)
  assert out.hidden_states.shape == (4, 2, 8, 32)      # embeddings + 3 layers
  assert out.attentions.shape == (3, 2, 4, 8, 8)       # layers, batch, heads, q, k
  np.testing.assert_array_equal(out.hidden_states[-1], out.sequence_output)
  np.testing.assert_allclose(out.attentions.sum(-1), 1.0, rtol=1e-5)
  assert float(out.attentions[:, 0, :, :, 5:].max()) == 0.0  # row 0 has 5 real tokens
  sequence, pooled = model.apply({'params': params}, ids, types, mask,
                                 method=model.encode)
  np.testing.assert_array_equal(out.sequence_output, sequence)
  np.testing.assert_array_equal(out.pooled, pooled)
  assert not np.allclose(out.hidden_states[1], out.hidden_states[2])


def test_mlm_logits_at_every_position_match_the_gathered_ones():
  model, params, (ids, types, mask, positions) = _model()
  every, _ = model.apply({'params': params}, ids, types, mask)
  gathered, _ = model.apply({'params': params}, ids, types, mask, positions)
  assert every.shape == (2, 8, gathered.shape[-1])
  np.testing.assert_allclose(np.take_along_axis(np.asarray(every), positions[..., None], 1),
                             gathered, rtol=1e-6, atol=1e-6)


def test_the_lstm_encoder_has_no_attention_to_report():
  model, params, (ids, types, mask, _) = _model(encoder='lstm')
  out = intermediates.encoder_outputs(model.config, params, ids, types, mask)
  assert out.attentions is None and out.sequence_output.shape == (2, 8, 32)


"""What the encoder computes inside, for analysis and checkpoint conversion.

The layers `sow` their hidden states and attention probabilities into the
'intermediates' collection; flax keeps them only when a caller makes that collection
mutable, so training pays nothing for them.
"""
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp

from prelm_jax.model.pretraining import build_encoder


class EncoderOutputs(NamedTuple):
  """One batch through the encoder (B: batch, L: length, H: hidden size).

  sequence_output: [B, L, H], the last layer's output (after the final LayerNorm of a
    pre-LN encoder).
  pooled: [B, H], the pooler's tanh(dense([CLS])).
  hidden_states: [num_layers + 1, B, L, H]: the embeddings' output, then each layer's,
    as transformers' output_hidden_states; None for the LSTM encoder.
  attentions: float32 [num_layers, B, heads, L, L], each row a softmax over the keys
    (padded keys get 0), as transformers' output_attentions; None for the LSTM.
  """
  sequence_output: jax.Array
  pooled: jax.Array
  hidden_states: Optional[jax.Array]
  attentions: Optional[jax.Array]


def _layers(tree, name, num_layers):
  """The sown `name` of every layer, in order: [num_layers, ...] or None."""
  if 'layers' in tree:  # scanned: one entry, already stacked along the layer axis
    return _find(tree['layers'], name)
  found = [_find(tree.get(f'layer_{i}', {}), name) for i in range(num_layers)]
  return None if any(f is None for f in found) else jnp.stack(found)


def _find(tree, name):
  """The value sown as `name` anywhere under `tree` (sow keeps a 1-tuple), or None."""
  if name in tree:
    return tree[name][0]
  for child in tree.values():
    if isinstance(child, dict):
      found = _find(child, name)
      if found is not None:
        return found
  return None


def encoder_outputs(encoder_config, params, input_ids, token_type_ids=None,
                    attention_mask=None):
  """Runs the encoder of any prelm model (pre-training or fine-tuning) in inference mode.

  Args:
    encoder_config: the model's EncoderConfig (`model.config`).
    params: the model's params (the encoder's are read from params['encoder']).
    input_ids: int [B, L].
    token_type_ids: int [B, L]; zeros if None.
    attention_mask: [B, L], 1 at real tokens; all ones if None.

  Returns:
    EncoderOutputs.
  """
  input_ids = jnp.asarray(input_ids)
  token_type_ids = (jnp.zeros_like(input_ids) if token_type_ids is None
                    else jnp.asarray(token_type_ids))
  attention_mask = (jnp.ones_like(input_ids) if attention_mask is None
                    else jnp.asarray(attention_mask))
  (sequence, pooled), state = build_encoder(encoder_config).apply(
      {'params': params['encoder']}, input_ids, token_type_ids, attention_mask,
      deterministic=True, mutable=['intermediates'])
  sown = state.get('intermediates', {})
  layers = _layers(sown, 'hidden_states', encoder_config.num_layers)
  hidden = None
  if layers is not None and 'embedding_output' in sown:
    hidden = jnp.concatenate([sown['embedding_output'][0][None], layers])
  return EncoderOutputs(sequence, pooled, hidden,
                        _layers(sown, 'attention_probs', encoder_config.num_layers))

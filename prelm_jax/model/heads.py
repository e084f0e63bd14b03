"""Output heads on top of an encoder: MLM (tied), NSP, classification."""
import flax.linen as nn
import jax.numpy as jnp

from prelm_jax.model import layers
from prelm_jax.model.config import EncoderConfig


def gather_positions(sequence, positions):
  """Picks rows of each sequence: [B, L, H] at int [B, P] -> [B, P, H]."""
  return jnp.take_along_axis(sequence, positions[..., None], axis=1)


class MlmHead(nn.Module):
  """Masked-LM head: Dense + GELU + LayerNorm, then the tied word embeddings.

  The output projection is the transposed word-embedding matrix (passed in,
  not owned; with config.tie_word_embeddings False, a [V, H] matrix of its own),
  plus a per-token bias. As in the original BERT, only the masked
  positions are transformed: P (~20) rows instead of L (128), which skips
  ~85% of the [*, V] output matmul.
  """
  config: EncoderConfig

  @nn.compact
  def __call__(self, sequence_output, mlm_positions, word_table):
    """Scores the vocabulary at the masked positions.

    Args:
      sequence_output: [B, L, H] from the encoder.
      mlm_positions: int [B, P], indices into L (padding slots may point
        anywhere valid, e.g. 0; the loss weights drop them); None scores every
        position (P = L), for analysis and conversion.
      word_table: [V, H] word embeddings of the same model.

    Returns:
      float32 logits [B, P, V] (V: the padded vocabulary; padding rows score
      about layers.MASK_VALUE, so their softmax is exactly 0).
    """
    cfg = self.config
    x = (sequence_output if mlm_positions is None
         else gather_positions(sequence_output, mlm_positions))
    x = layers.dense(cfg, cfg.hidden_size, ('embed', None), 'transform')(x)
    x = layers.gelu(x)
    x = layers.layer_norm(cfg, 'layer_norm')(x)
    # Accumulate in float32 even for bfloat16 compute: logits feed a softmax
    # over ~30k entries.
    if not cfg.tie_word_embeddings:
      word_table = self.param(
          'output_embeddings', layers.kernel_init(cfg, ('vocab', 'embed')),
          (cfg.padded_vocab_size, cfg.hidden_size), cfg.params_dtype)
    logits = jnp.einsum('bph,vh->bpv', x,
                        word_table.astype(cfg.compute_dtype),
                        preferred_element_type=jnp.float32)
    bias = self.param('output_bias', layers.zeros_init(('vocab',)),
                      (cfg.padded_vocab_size,), cfg.params_dtype)
    bias = bias.astype(jnp.float32)
    if cfg.padded_vocab_size > cfg.vocab_size:  # padding rows: probability 0
      # Added, not selected with jnp.where: the backward pass of an add is the
      # identity, where a select costs a pass over the [B, P, V] gradient.
      real = jnp.arange(cfg.padded_vocab_size) < cfg.vocab_size
      bias = bias + jnp.where(real, 0.0, layers.MASK_VALUE)
    logits = logits + bias
    return nn.with_logical_constraint(
        logits, ('activation_batch', 'activation_length', 'activation_vocab'))


class NspHead(nn.Module):
  """Next-sentence prediction: pooled [B, H] -> float32 logits [B, 2] (packed rows:
  [B, S, H] -> [B, S, 2], one per pair slot)."""
  config: EncoderConfig

  @nn.compact
  def __call__(self, pooled):
    return layers.dense(self.config, 2, ('embed', None),
                        'dense')(pooled).astype(jnp.float32)


class ClassifierHead(nn.Module):
  """Fine-tuning head: dropout, then pooled [B, H] -> f32 [B, num_classes]."""
  config: EncoderConfig
  num_classes: int

  @nn.compact
  def __call__(self, pooled, *, deterministic):
    x = nn.Dropout(self.config.dropout_rate)(pooled,
                                             deterministic=deterministic)
    return layers.dense(self.config, self.num_classes, ('embed', None),
                        'dense')(x).astype(jnp.float32)

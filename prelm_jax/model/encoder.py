"""BertEncoder: embeddings, a stack of Transformer layers and a pooler.

It knows nothing about pre-training objectives; heads.py and pretraining.py
put those on top.
"""
import flax.linen as nn
import jax.numpy as jnp

from prelm_jax.model import layers
from prelm_jax.model.config import EncoderConfig


class TransformerLayer(nn.Module):
  """Self-attention then feed-forward, each with residual and LayerNorm.

  Post-LN (BERT): x = LN(x + f(x)). Pre-LN: x = x + f(LN(x)), which trains
  more stably without warm-up but needs a final LayerNorm on the stack.
  """
  config: EncoderConfig

  @nn.compact
  def __call__(self, x, bias, *, deterministic):
    """Runs one layer.

    Args:
      x: [B, L, H].
      bias: [B, 1, 1, L] additive attention mask.
      deterministic: disables dropout when True.

    Returns:
      [B, L, H].
    """
    cfg = self.config
    drop = nn.Dropout(cfg.dropout_rate)
    attention = layers.SelfAttention(cfg, name='attention')
    ffn = layers.FeedForward(cfg, name='mlp')
    ln_attention = layers.layer_norm(cfg, 'attention_layer_norm')
    ln_mlp = layers.layer_norm(cfg, 'mlp_layer_norm')

    if cfg.pre_ln:
      x = x + drop(attention(ln_attention(x), bias,
                             deterministic=deterministic),
                   deterministic=deterministic)
      x = x + drop(ffn(ln_mlp(x)), deterministic=deterministic)
    else:
      x = ln_attention(x + drop(attention(x, bias, deterministic=deterministic),
                                deterministic=deterministic))
      x = ln_mlp(x + drop(ffn(x), deterministic=deterministic))
    return nn.with_logical_constraint(x, layers.BLE)


class Pooler(nn.Module):
  """BERT's pooler: Dense + tanh on one summary vector per sequence."""
  config: EncoderConfig

  @nn.compact
  def __call__(self, summary):
    """Args: summary: [B, H]. Returns: [B, H]."""
    cfg = self.config
    # (embed, None): the matrix is square, and one axis name may map to a
    # mesh axis only once.
    return jnp.tanh(layers.dense(cfg, cfg.hidden_size, ('embed', None),
                                 'dense')(summary))


class BertEncoder(nn.Module):
  """The BERT encoder.

  Attributes:
    config: an EncoderConfig (see build_model).
  """
  config: EncoderConfig

  def setup(self):
    cfg = self.config
    self.embeddings = layers.Embeddings(cfg)
    self.layers = [TransformerLayer(cfg, name=f'layer_{i}')
                   for i in range(cfg.num_layers)]
    if cfg.pre_ln:
      self.final_layer_norm = layers.layer_norm(cfg, 'final_layer_norm')
    self.pooler = Pooler(cfg)

  def __call__(self, input_ids, token_type_ids, attention_mask, *,
               deterministic):
    """Encodes a batch of (padded) sequences.

    Args:
      input_ids: int [B, L]; position 0 holds [CLS].
      token_type_ids: int [B, L].
      attention_mask: [B, L], 1 at real tokens and 0 at padding.
      deterministic: disables dropout when True; otherwise dropout draws from
        the 'dropout' rng stream.

    Returns:
      (sequence_output [B, L, H], pooled [B, H]), both in the compute dtype.
      sequence_output at padded positions is meaningless.

    Raises:
      ValueError: if L exceeds config.max_position_embeddings.
    """
    x = self.embeddings(input_ids, token_type_ids, deterministic=deterministic)
    bias = layers.attention_bias(attention_mask)
    for layer in self.layers:
      x = layer(x, bias, deterministic=deterministic)
    if self.config.pre_ln:
      x = self.final_layer_norm(x)
    return x, self.pooler(x[:, 0])

  def word_table(self):
    """The [vocab, H] word embedding matrix, for a tied MLM output layer."""
    return self.embeddings.word_table

"""BertEncoder: embeddings, a stack of Transformer layers and a pooler.

It knows nothing about pre-training objectives; heads.py and pretraining.py
put those on top.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp

from prelm_jax.model import heads
from prelm_jax.model import layers
from prelm_jax.model.config import EncoderConfig


class TransformerLayer(nn.Module):
  """Self-attention then feed-forward, each with residual and LayerNorm.

  Post-LN (BERT): x = LN(x + f(x)). Pre-LN: x = x + f(LN(x)), which trains
  more stably without warm-up but needs a final LayerNorm on the stack.
  """
  config: EncoderConfig
  scanned: bool = False  # under nn.scan: return (x, None) as scan's (carry, out)

  @nn.compact
  def __call__(self, x, bias, deterministic=True):
    """Runs one layer.

    Args:
      x: [B, L, H].
      bias: [B, 1, 1, L] additive attention mask ([B, 1, L, L] for packed rows).
      deterministic: disables dropout when True (positional, so that nn.remat
        can mark it static).

    Returns:
      [B, L, H] (or ([B, L, H], None) when scanned).
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
    x = nn.with_logical_constraint(x, layers.BLE)
    self.sow('intermediates', 'hidden_states', x)  # see model/intermediates.py
    return (x, None) if self.scanned else x


def layer_class(config):
  """TransformerLayer, wrapped in nn.remat as config.remat_policy asks."""
  if config.remat_policy == 'none':
    return TransformerLayer
  policy = (None if config.remat_policy == 'full'
            else getattr(jax.checkpoint_policies, config.remat_policy))
  # static_argnums counts self: __call__(self, x, bias, deterministic).
  # prevent_cse is only needed outside scan (scan already keeps the recompute).
  return nn.remat(TransformerLayer, policy=policy, static_argnums=(3,),
                  prevent_cse=not config.scan_layers)


def scanned_layers(config):
  """All layers as one nn.scan: params get a leading 'layers' axis."""
  return nn.scan(
      layer_class(config), variable_axes={'params': 0, 'intermediates': 0},
      split_rngs={'params': True, 'dropout': True},
      in_axes=(nn.broadcast, nn.broadcast), length=config.num_layers,
      metadata_params={nn.PARTITION_NAME: 'layers'})(config, scanned=True)


class Pooler(nn.Module):
  """BERT's pooler: Dense + tanh on one summary vector per sequence."""
  config: EncoderConfig

  @nn.compact
  def __call__(self, summary):
    """Args: summary: [B, H] (or [B, S, H]). Returns: the same shape."""
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
    if cfg.scan_layers:
      self.layers = scanned_layers(cfg)
    else:
      self.layers = [layer_class(cfg)(cfg, name=f'layer_{i}')
                     for i in range(cfg.num_layers)]
    if cfg.pre_ln:
      self.final_layer_norm = layers.layer_norm(cfg, 'final_layer_norm')
    self.pooler = Pooler(cfg)

  def __call__(self, input_ids, token_type_ids, attention_mask, *,
               deterministic, segment_ids=None, position_ids=None, cls_positions=None):
    """Encodes a batch of (padded) sequences, or of packed rows of several pairs.

    Args:
      input_ids: int [B, L]; position 0 holds [CLS].
      token_type_ids: int [B, L].
      attention_mask: [B, L], 1 at real tokens and 0 at padding.
      deterministic: disables dropout when True; otherwise dropout draws from
        the 'dropout' rng stream.
      segment_ids: packed rows only: int [B, L], 1..k for the k pairs of a row, 0
        at padding; attention then stays inside each pair. None: one sequence a row.
      position_ids: int [B, L], positions restarting at each pair's [CLS]; None:
        0..L-1.
      cls_positions: int [B, S], the [CLS] of each pair slot of a row; the pooler
        then runs at each of them. None: at position 0.

    Returns:
      (sequence_output [B, L, H], pooled [B, H], or [B, S, H] with cls_positions),
      both in the compute dtype. sequence_output at padded positions is meaningless.

    Raises:
      ValueError: if L exceeds config.max_position_embeddings.
    """
    x = self.embeddings(input_ids, token_type_ids, deterministic=deterministic,
                        position_ids=position_ids)
    self.sow('intermediates', 'embedding_output', x)
    if segment_ids is None:
      bias = layers.attention_bias(attention_mask)
    else:
      bias = layers.segment_attention_bias(segment_ids, attention_mask)
    if self.config.scan_layers:
      x, _ = self.layers(x, bias, deterministic)
    else:
      for layer in self.layers:
        x = layer(x, bias, deterministic)
    if self.config.pre_ln:
      x = self.final_layer_norm(x)
    if cls_positions is None:
      return x, self.pooler(x[:, 0])
    return x, self.pooler(heads.gather_positions(x, cls_positions))

  def word_table(self):
    """The [vocab, H] word embedding matrix, for a tied MLM output layer."""
    return self.embeddings.word_table

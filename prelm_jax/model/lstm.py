"""LstmEncoder: the recurrent baseline that attention is compared with.

Same embeddings, inputs and outputs as BertEncoder, with the Transformer stack
replaced by bidirectional LSTM layers, so the two swap under the same heads.
"""
import flax.linen as nn
import jax.numpy as jnp

from prelm_jax.model import encoder as encoder_lib
from prelm_jax.model import layers
from prelm_jax.model.config import EncoderConfig


class BiLstmLayer(nn.Module):
  """Forward and backward LSTMs of hidden_size // 2 units, concatenated."""
  config: EncoderConfig

  @nn.compact
  def __call__(self, x, lengths):
    """Args: x: [B, L, H]; lengths: int [B]. Returns: [B, L, H]."""
    cfg = self.config
    def cell(name):
      # The gate axis stays unsharded (None): it is used inside the time scan,
      # where sharding it would put a collective on every step. The input
      # axis is 'embed' like other weights, so FSDP still shards it.
      return nn.OptimizedLSTMCell(
          cfg.hidden_size // 2, dtype=cfg.compute_dtype,
          param_dtype=cfg.params_dtype,
          kernel_init=layers.kernel_init(cfg, ('embed', None)),
          recurrent_kernel_init=nn.with_logical_partitioning(
              nn.initializers.orthogonal(), (None, None)),
          bias_init=layers.zeros_init((None,)), name=name)
    return nn.Bidirectional(nn.RNN(cell('forward_cell')),
                            nn.RNN(cell('backward_cell')))(
                                x, seq_lengths=lengths)


class LstmEncoder(nn.Module):
  """A stack of bidirectional LSTMs over BERT's embeddings.

  Each layer concatenates a forward and a backward LSTM of hidden_size // 2
  units, so sequence_output is [B, L, hidden_size] like BertEncoder's.
  Padding must be at the end of each row (as the data pipeline makes it):
  lengths come from attention_mask.sum(), and the backward LSTM starts at the
  last real token.

  The pooled output is Dense + tanh on the classic BiLSTM summary: the forward
  half at the last real token concatenated with the backward half at [CLS]
  (position 0), i.e. each direction's final state; neither sees padding.

  Attributes:
    config: an EncoderConfig (num_layers, hidden_size, dropout_rate are used;
      num_heads and mlp_dim are ignored).
  """
  config: EncoderConfig

  def setup(self):
    cfg = self.config
    self.embeddings = layers.Embeddings(cfg)
    self.layers = [BiLstmLayer(cfg, name=f'layer_{i}')
                   for i in range(cfg.num_layers)]
    self.dropout = nn.Dropout(cfg.dropout_rate)
    self.pooler = encoder_lib.Pooler(cfg)

  def __call__(self, input_ids, token_type_ids, attention_mask, *,
               deterministic):
    """Encodes a batch of right-padded sequences.

    Args:
      input_ids: int [B, L]; position 0 holds [CLS].
      token_type_ids: int [B, L].
      attention_mask: [B, L], 1 at real tokens then 0 at padding.
      deterministic: disables dropout when True ('dropout' rng otherwise).

    Returns:
      (sequence_output [B, L, H], pooled [B, H]) in the compute dtype.
    """
    x = self.embeddings(input_ids, token_type_ids, deterministic=deterministic)
    lengths = jnp.sum(attention_mask.astype(jnp.int32), axis=1)
    for i, layer in enumerate(self.layers):
      if i:
        x = self.dropout(x, deterministic=deterministic)
      x = layer(x, lengths)
      x = nn.with_logical_constraint(x, layers.BLE)

    half = self.config.hidden_size // 2
    last = jnp.maximum(lengths - 1, 0)
    forward_final = jnp.take_along_axis(
        x[..., :half], last[:, None, None], axis=1)[:, 0]
    backward_final = x[:, 0, half:]
    summary = jnp.concatenate([forward_final, backward_final], axis=-1)
    return x, self.pooler(summary)

  def word_table(self):
    """The [vocab, H] word embedding matrix, for a tied MLM output layer."""
    return self.embeddings.word_table

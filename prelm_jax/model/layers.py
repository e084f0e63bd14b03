"""Transformer building blocks: embeddings, self-attention, feed-forward.

Every parameter carries logical axis names (vocab, embed, heads, kv, mlp; None
for an axis that is never sharded), and the main activations carry
activation_* names. The two sets are distinct so that a rule such as
('embed', 'fsdp'), which shards weights, does not also shard the hidden
dimension of activations. sharding.py maps the names onto mesh axes.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp

from prelm_jax.model.config import EncoderConfig

# Activations: [batch, length, hidden] and friends.
BLE = ('activation_batch', 'activation_length', 'activation_embed')
BLHK = ('activation_batch', 'activation_length', 'activation_heads',
        'activation_kv')
BLM = ('activation_batch', 'activation_length', 'activation_mlp')

# Large enough that exp() underflows to exactly 0 in float32, so padded keys
# contribute nothing; finite, so a fully masked row gives no NaN.
MASK_VALUE = -1e9


def gelu(x):
  """BERT's GELU, the exact form x * Phi(x) = x/2 * (1 + erf(x / sqrt 2)).

  Not flax's nn.gelu(approximate=False), which computes the same function through
  erfc: on CPU, XLA's erfc is ~9x slower than erf (about 0.6 s of BERT-base's
  train step at seq 128, batch 32) while the two agree within 1e-6.
  """
  return 0.5 * x * (1 + jax.lax.erf(x * jnp.asarray(0.7071067811865476, x.dtype)))


def kernel_init(config, names):
  """Truncated-normal(initializer_range) initializer with logical axis names."""
  return nn.with_logical_partitioning(
      nn.initializers.truncated_normal(config.initializer_range), names)


def zeros_init(names):
  return nn.with_logical_partitioning(nn.initializers.zeros_init(), names)


def ones_init(names):
  return nn.with_logical_partitioning(nn.initializers.ones_init(), names)


def layer_norm(config, name):
  """LayerNorm over the hidden dim; flax computes its statistics in float32."""
  return nn.LayerNorm(
      epsilon=config.layer_norm_eps, dtype=config.compute_dtype,
      param_dtype=config.params_dtype, scale_init=ones_init(('embed',)),
      bias_init=zeros_init(('embed',)), name=name)


def dense(config, features, names, name):
  """A Dense layer with named kernel and bias (bias named by the out axis)."""
  return nn.Dense(
      features, dtype=config.compute_dtype, param_dtype=config.params_dtype,
      kernel_init=kernel_init(config, names), bias_init=zeros_init(names[-1:]),
      name=name)


class Embeddings(nn.Module):
  """Word + position + token-type embeddings, then LayerNorm and dropout."""
  config: EncoderConfig

  def setup(self):
    cfg = self.config
    def embed(num, names, name):
      return nn.Embed(
          num, cfg.hidden_size, dtype=cfg.compute_dtype,
          param_dtype=cfg.params_dtype,
          embedding_init=kernel_init(cfg, names), name=name)
    self.word_embeddings = embed(cfg.padded_vocab_size, ('vocab', 'embed'),
                                 'word_embeddings')
    # Small tables: their first axis is never worth sharding.
    self.position_embeddings = embed(cfg.max_position_embeddings,
                                     (None, 'embed'), 'position_embeddings')
    self.token_type_embeddings = embed(cfg.type_vocab_size, (None, 'embed'),
                                       'token_type_embeddings')
    self.layer_norm = layer_norm(cfg, 'layer_norm')
    self.dropout = nn.Dropout(cfg.dropout_rate)

  def __call__(self, input_ids, token_type_ids, *, deterministic, position_ids=None):
    """Embeds token ids.

    Args:
      input_ids: int [B, L].
      token_type_ids: int [B, L], 0 for segment A and 1 for segment B.
      deterministic: disables dropout when True.
      position_ids: int [B, L], each token's position in its own sequence (a packed
        row restarts at 0 at every pair); None: 0..L-1.

    Returns:
      [B, L, H] in the compute dtype.

    Raises:
      ValueError: if L exceeds max_position_embeddings (the position table
        would otherwise be indexed out of range, which jnp silently clamps).
    """
    length = input_ids.shape[1]
    if length > self.config.max_position_embeddings:
      raise ValueError(
          f'Sequence length {length} exceeds max_position_embeddings '
          f'{self.config.max_position_embeddings}.')
    # FSDP: gather the table's `embed` shards before the lookup (as for any weight);
    # left to itself, XLA's gather partitioner replicates the whole table instead.
    table = nn.with_logical_constraint(self.word_table, ('vocab', None))
    x = jnp.take(table, input_ids, axis=0).astype(self.config.compute_dtype)
    if position_ids is None:
      x = x + self.position_embeddings(jnp.arange(length))[None]
    else:
      # As for the word table: gather the (small) table's `embed` shards before a
      # lookup by batch-dependent ids, which XLA would otherwise fully replicate.
      positions = nn.with_logical_constraint(self.position_embeddings.embedding,
                                             (None, None))
      x = x + jnp.take(positions.astype(self.config.compute_dtype), position_ids, axis=0)
    # A one-hot matmul over the 2-row table, as google-research/bert does: it partitions
    # like any matmul, where a gather from an FSDP-sharded table makes XLA replicate.
    type_table = self.token_type_embeddings.embedding.astype(self.config.compute_dtype)
    x = x + jnp.einsum('blt,th->blh',
                       jax.nn.one_hot(token_type_ids, type_table.shape[0], dtype=x.dtype),
                       type_table)
    x = nn.with_logical_constraint(x, BLE)
    x = self.layer_norm(x)
    return self.dropout(x, deterministic=deterministic)

  @property
  def word_table(self):
    """The [vocab, hidden] word embedding matrix, for tied output layers."""
    return self.word_embeddings.embedding


def attention_bias(attention_mask, dtype=jnp.float32):
  """Turns a [B, L] 1/0 key mask into an additive [B, 1, 1, L] bias."""
  mask = attention_mask[:, None, None, :].astype(bool)
  return jnp.where(mask, 0.0, MASK_VALUE).astype(dtype)


def segment_attention_bias(segment_ids, attention_mask, dtype=jnp.float32):
  """The block-diagonal additive [B, 1, L, L] bias of packed rows.

  Query i may attend key j only if both belong to the same pair (segment_ids equal)
  and j is a real token (segment id > 0, attention_mask 1): each pair then sees
  exactly what it would see alone in a row of its own (pairs are contiguous, so
  ALiBi's |i - j| inside a pair is the same as in the pair's own row).

  Args:
    segment_ids: int [B, L], 1..k for the k pairs of a row, 0 at padding.
    attention_mask: [B, L], 1 at real tokens.
    dtype: of the bias.
  """
  real_key = (segment_ids > 0) & attention_mask.astype(bool)
  same = segment_ids[:, :, None] == segment_ids[:, None, :]
  mask = (same & real_key[:, None, :])[:, None]
  return jnp.where(mask, 0.0, MASK_VALUE).astype(dtype)


class EinsumDense(nn.Module):
  """y = einsum(equation, x, kernel) + bias, with full-rank named params.

  Used instead of nn.DenseGeneral, whose initializer builds a flattened 2-D
  kernel and then unboxes it: under nn.logical_axis_rules that applies the
  3-D names to the 2-D array and fails (flax 0.12.8), even in apply, where
  flax re-evaluates the initializer's shape.

  Attributes:
    config: supplies dtypes and initializer_range.
    equation: einsum from (x, kernel) to the output, e.g. 'ble,ehd->blhd'.
    kernel_shape: the kernel's shape.
    kernel_names: logical axis names of the kernel, one per axis.
    bias_rank: the bias covers the kernel's last bias_rank axes.
  """
  config: EncoderConfig
  equation: str
  kernel_shape: tuple
  kernel_names: tuple
  bias_rank: int = 1

  @nn.compact
  def __call__(self, x):
    cfg = self.config
    kernel = self.param('kernel', kernel_init(cfg, self.kernel_names),
                        self.kernel_shape, cfg.params_dtype)
    bias = self.param('bias', zeros_init(self.kernel_names[-self.bias_rank:]),
                      self.kernel_shape[-self.bias_rank:], cfg.params_dtype)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias,
                                              dtype=cfg.compute_dtype)
    return jnp.einsum(self.equation, x, kernel) + bias


def alibi_bias(num_heads, length):
  """ALiBi's float32 [H, L, L] bias -slope_h * |i - j|, slopes 2^(-8 h / H), h = 1..H.

  A fixed preference for nearby tokens that differs per head: attention sees word
  order from the first step, where learned position embeddings must first be
  discovered through near-uniform attention.
  """
  slopes = 2.0 ** (-8.0 * jnp.arange(1, num_heads + 1) / num_heads)
  distance = jnp.abs(jnp.arange(length)[:, None] - jnp.arange(length)[None, :])
  return -slopes[:, None, None] * distance[None].astype(jnp.float32)


class SelfAttention(nn.Module):
  """Multi-head self-attention: softmax(Q K^T / sqrt(d_k) + mask) V (+ ALiBi's
  distance bias with config.alibi)."""
  config: EncoderConfig

  @nn.compact
  def __call__(self, x, bias, *, deterministic):
    """Attends over all unmasked positions.

    Args:
      x: [B, L, H] in the compute dtype.
      bias: additive float32 [B, 1, 1, L] mask from attention_bias(), or [B, 1, L, L]
        from segment_attention_bias() for packed rows.
      deterministic: disables dropout on the attention probabilities.

    Returns:
      [B, L, H] in the compute dtype.
    """
    cfg = self.config
    def project(name):
      return EinsumDense(
          cfg, 'ble,ehd->blhd', (cfg.hidden_size, cfg.num_heads, cfg.head_dim),
          ('embed', 'heads', 'kv'), bias_rank=2, name=name)(x)
    q, k, v = (nn.with_logical_constraint(project(n), BLHK)
               for n in ('query', 'key', 'value'))

    q = q / jnp.sqrt(cfg.head_dim).astype(q.dtype)
    scores = jnp.einsum('bqhd,bkhd->bhqk', q, k)
    scores = nn.with_logical_constraint(
        scores, ('activation_batch', 'activation_heads', 'activation_length',
                 None))
    if cfg.alibi:
      bias = bias + alibi_bias(cfg.num_heads, x.shape[1])[None]
    # Softmax in float32: in bfloat16 the row sums lose ~3 significant digits.
    probs = jax.nn.softmax(scores.astype(jnp.float32) + bias, axis=-1)
    # Kept only when a caller asks for 'intermediates' (model/intermediates.py).
    self.sow('intermediates', 'attention_probs', probs)
    probs = nn.Dropout(cfg.attention_dropout_rate)(
        probs, deterministic=deterministic).astype(cfg.compute_dtype)
    out = jnp.einsum('bhqk,bkhd->bqhd', probs, v)
    out = nn.with_logical_constraint(out, BLHK)

    out = EinsumDense(
        cfg, 'blhd,hde->ble', (cfg.num_heads, cfg.head_dim, cfg.hidden_size),
        ('heads', 'kv', 'embed'), name='out')(out)
    return nn.with_logical_constraint(out, BLE)


class FeedForward(nn.Module):
  """Position-wise Dense(mlp_dim) -> GELU -> Dense(hidden); with config.mlp_activation
  'geglu', gelu(gate) * value from one Dense to [2, mlp_dim] (Shazeer 2020)."""
  config: EncoderConfig

  @nn.compact
  def __call__(self, x):
    """Args: x: [B, L, H]. Returns: [B, L, H], both in the compute dtype."""
    cfg = self.config
    if cfg.mlp_activation == 'geglu':
      # Gate and value on an axis of their own, not the two halves of one 2*mlp_dim
      # axis: each tensor-parallel shard of `mlp` then holds matching gate and value
      # columns, and the split needs no communication.
      h = EinsumDense(cfg, 'ble,egm->blgm', (cfg.hidden_size, 2, cfg.mlp_dim),
                      ('embed', None, 'mlp'), bias_rank=2, name='wi')(x)
      h = gelu(h[..., 0, :]) * h[..., 1, :]
    else:
      h = dense(cfg, cfg.mlp_dim, ('embed', 'mlp'), 'wi')(x)
      h = gelu(h)
    h = nn.with_logical_constraint(h, BLM)
    out = dense(cfg, cfg.hidden_size, ('mlp', 'embed'), 'wo')(h)
    return nn.with_logical_constraint(out, BLE)

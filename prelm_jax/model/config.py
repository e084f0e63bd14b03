"""EncoderConfig: the hashable, validated form of config.model.

Flax module attributes must be hashable, and a ConfigDict is not, so
build_model converts config.model into this frozen dataclass once.
"""
import dataclasses

import jax.numpy as jnp

ENCODERS = ('transformer', 'lstm')
# config.model.remat_policy -> what nn.remat saves ('full': nothing, recompute all).
# config.model.mlp_activation: BERT's GELU, or GeGLU (Shazeer 2020, transformer only).
MLP_ACTIVATIONS = ('gelu', 'geglu')
REMAT_POLICIES = ('none', 'full', 'dots_saveable',
                  'dots_with_no_batch_dims_saveable', 'nothing_saveable')


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
  """Dimensions and options of an encoder; field names match config.model."""
  vocab_size: int  # the tokenizer's; the embedding table has padded_vocab_size rows
  encoder: str = 'transformer'
  num_layers: int = 12
  hidden_size: int = 768
  num_heads: int = 12
  mlp_dim: int = 3072
  max_position_embeddings: int = 512
  type_vocab_size: int = 2
  dropout_rate: float = 0.1
  attention_dropout_rate: float = 0.1
  pre_ln: bool = False
  initializer_range: float = 0.02
  layer_norm_eps: float = 1e-12
  dtype: str = 'float32'  # compute dtype
  param_dtype: str = 'float32'
  remat_policy: str = 'none'  # see REMAT_POLICIES
  scan_layers: bool = False   # nn.scan over Transformer layers
  # Embedding rows are padded to a multiple of this, so that the `vocab` axis splits
  # evenly over the tensor-parallel devices whatever size the vocabulary was trained
  # to (Megatron's make-vocab-size-divisible-by). The padded rows are never predicted.
  # 1 (no padding) for configs saved before the key existed.
  vocab_pad_multiple: int = 1
  # False: the MLM head owns its output embeddings instead of reusing the input ones
  # (decoupled, Chung et al. 2021 "Rethinking embedding coupling"). Only the
  # pre-training head changes; the encoder's params are the same either way.
  tie_word_embeddings: bool = True
  # True: each head adds -slope_h * |i - j| to its attention scores (ALiBi, Press et
  # al. 2022, symmetric for an encoder), on top of the learned position embeddings.
  alibi: bool = False
  # 'geglu': the feed-forward is gelu(x W_gate) * (x W_value) W_o, one [H, 2, mlp_dim]
  # input kernel; per layer H * mlp_dim + mlp_dim more params than 'gelu'.
  mlp_activation: str = 'gelu'

  def __post_init__(self):
    if self.encoder not in ENCODERS:
      raise ValueError(f'Unknown config.model.encoder {self.encoder!r}; '
                       f'known: {", ".join(ENCODERS)}.')
    if self.encoder == 'transformer' and self.hidden_size % self.num_heads:
      raise ValueError(f'hidden_size {self.hidden_size} is not divisible by '
                       f'num_heads {self.num_heads}.')
    if self.encoder == 'lstm' and self.hidden_size % 2:
      # Each direction of the bidirectional LSTM gets half the hidden size.
      raise ValueError(f'The lstm encoder needs an even hidden_size, got '
                       f'{self.hidden_size}.')
    if self.mlp_activation not in MLP_ACTIVATIONS:
      raise ValueError(f'Unknown config.model.mlp_activation '
                       f'{self.mlp_activation!r}; known: {", ".join(MLP_ACTIVATIONS)}.')
    if self.encoder == 'lstm' and self.mlp_activation != 'gelu':
      raise ValueError('The lstm encoder has no feed-forward layer: '
                       f'mlp_activation {self.mlp_activation!r} does not apply.')
    if self.remat_policy not in REMAT_POLICIES:
      raise ValueError(f'Unknown config.model.remat_policy '
                       f'{self.remat_policy!r}; known: '
                       f'{", ".join(REMAT_POLICIES)}.')
    for name in ('dtype', 'param_dtype'):
      jnp.dtype(getattr(self, name))  # Fails early on a typo like 'bf16'.

  @property
  def compute_dtype(self):
    return jnp.dtype(self.dtype)

  @property
  def params_dtype(self):
    return jnp.dtype(self.param_dtype)

  @property
  def padded_vocab_size(self):
    return -(-self.vocab_size // self.vocab_pad_multiple) * self.vocab_pad_multiple

  @property
  def head_dim(self):
    return self.hidden_size // self.num_heads

  @classmethod
  def from_config(cls, model_cfg, vocab_size):
    """Builds an EncoderConfig from a config.model ConfigDict (or any mapping).

    Args:
      model_cfg: config.model; keys that are not fields here are ignored.
      vocab_size: size of the tokenizer's vocabulary (lives in config.data).

    Returns:
      An EncoderConfig.
    """
    names = [f.name for f in dataclasses.fields(cls) if f.name != 'vocab_size']
    # Keys added after the first release: a config.json saved before them lacks them.
    optional = ('remat_policy', 'scan_layers', 'vocab_pad_multiple', 'tie_word_embeddings',
                'alibi', 'mlp_activation')
    missing = [n for n in names if n not in model_cfg and n not in optional]
    if missing:
      raise KeyError(f'config.model lacks {missing}.')
    return cls(vocab_size=int(vocab_size),
               **{n: model_cfg[n] for n in names if n in model_cfg})

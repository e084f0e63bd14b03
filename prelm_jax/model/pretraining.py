"""BertForPreTraining (encoder + MLM head + an NSP/SOP head or none) and build_model."""
import flax.linen as nn

from prelm_jax.model import encoder as encoder_lib
from prelm_jax.model import heads
from prelm_jax.model import lstm
from prelm_jax.model.config import EncoderConfig


def build_encoder(config):
  """Returns the encoder module named 'encoder' that config.encoder selects."""
  if config.encoder == 'transformer':
    return encoder_lib.BertEncoder(config, name='encoder')
  if config.encoder == 'lstm':
    return lstm.LstmEncoder(config, name='encoder')
  raise ValueError(f'Unknown encoder {config.encoder!r}; '
                   'known: transformer, lstm.')


class BertForPreTraining(nn.Module):
  """An encoder with BERT's pre-training heads.

  The encoder's params live at params['encoder'], so fine-tuning can load
  them alone and call `apply(..., method=BertForPreTraining.encode)`.

  Attributes:
    config: an EncoderConfig; config.encoder picks transformer or lstm.
    sentence_head: whether there is a two-way sentence-pair head (params
      'nsp_head', for NSP or SOP); False (objective none, MLM only): no such params.
  """
  config: EncoderConfig
  sentence_head: bool = True

  def setup(self):
    self.encoder = build_encoder(self.config)
    self.mlm_head = heads.MlmHead(self.config)
    if self.sentence_head:
      self.nsp_head = heads.NspHead(self.config)

  def encode(self, input_ids, token_type_ids, attention_mask, *,
             deterministic=True, segment_ids=None, position_ids=None,
             cls_positions=None):
    """Returns the encoder's (sequence_output [B, L, H], pooled [B, H] or [B, S, H]).

    segment_ids, position_ids, cls_positions: packed rows only (BertEncoder.__call__).
    """
    packed = dict(segment_ids=segment_ids, position_ids=position_ids,
                  cls_positions=cls_positions)
    packed = {k: v for k, v in packed.items() if v is not None}
    if packed and self.config.encoder != 'transformer':
      # A recurrence runs across the whole row: it cannot keep the pairs apart.
      raise ValueError(f'The {self.config.encoder} encoder cannot read packed rows '
                       '(config.data.packing); use the transformer encoder.')
    return self.encoder(input_ids, token_type_ids, attention_mask,
                        deterministic=deterministic, **packed)

  def __call__(self, input_ids, token_type_ids, attention_mask, mlm_positions=None,
               segment_ids=None, position_ids=None, cls_positions=None, *,
               deterministic=True):
    """Runs the encoder and both heads.

    Args:
      input_ids: int [B, L].
      token_type_ids: int [B, L].
      attention_mask: [B, L], 1 at real tokens, 0 at (trailing) padding.
      mlm_positions: int [B, P], positions whose tokens are predicted; None: all
        L positions.
      segment_ids: packed rows (config.data.packing) only: int [B, L], 1..k for the
        k sentence pairs of a row, 0 at padding; attention stays inside each pair.
      position_ids: packed rows only: int [B, L], restarting at 0 at each pair.
      cls_positions: packed rows only: int [B, S], each pair slot's [CLS] position;
        the sentence head scores each slot.
      deterministic: disables dropout when True; training passes False and a
        'dropout' rng.

    Returns:
      (mlm_logits float32 [B, P, V], nsp_logits float32 [B, 2], or [B, S, 2] with
      cls_positions); nsp_logits is None without a sentence head. The params are
      the same with and without packing.
    """
    sequence_output, pooled = self.encode(
        input_ids, token_type_ids, attention_mask, deterministic=deterministic,
        segment_ids=segment_ids, position_ids=position_ids,
        cls_positions=cls_positions)
    mlm_logits = self.mlm_head(sequence_output, mlm_positions,
                               self.encoder.word_table())
    return mlm_logits, self.nsp_head(pooled) if self.sentence_head else None


def build_model(model_cfg, vocab_size, *, sentence_head=True):
  """Builds the pre-training model that config.model describes.

  Args:
    model_cfg: config.model (a ConfigDict); see experiments/base.py.
    vocab_size: the tokenizer's vocabulary size (config.data.vocab_size).
    sentence_head: False for config.data.sentence_objective none (no NSP/SOP head).

  Returns:
    A BertForPreTraining (an nn.Module) holding a frozen EncoderConfig.

  Raises:
    ValueError: for an unknown model_cfg.encoder or inconsistent dimensions.
  """
  return BertForPreTraining(EncoderConfig.from_config(model_cfg, vocab_size),
                            sentence_head=sentence_head)

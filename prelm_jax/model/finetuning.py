"""Fine-tuning models: the shared encoder plus one task head.

The encoder sits at params['encoder'] exactly as in BertForPreTraining, so a
pre-trained run's encoder params load into these unchanged (state.py, init_from);
the heads start fresh.
"""
import flax.linen as nn
import jax.numpy as jnp

from prelm_jax.model import heads
from prelm_jax.model import layers
from prelm_jax.model.config import EncoderConfig
from prelm_jax.model.pretraining import build_encoder


class BertForSequenceClassification(nn.Module):
  """Pooled [CLS] -> dropout -> dense: [B, num_outputs] (1 output: a regression score)."""
  config: EncoderConfig
  num_outputs: int

  @nn.compact
  def __call__(self, input_ids, token_type_ids, attention_mask, *, deterministic=True):
    _, pooled = build_encoder(self.config)(input_ids, token_type_ids, attention_mask,
                                           deterministic=deterministic)
    return heads.ClassifierHead(self.config, self.num_outputs, name='classifier')(
        pooled, deterministic=deterministic)


class BertForTokenClassification(nn.Module):
  """Every position's encoding -> dropout -> dense: [B, L, num_labels]."""
  config: EncoderConfig
  num_labels: int

  @nn.compact
  def __call__(self, input_ids, token_type_ids, attention_mask, *, deterministic=True):
    sequence, _ = build_encoder(self.config)(input_ids, token_type_ids, attention_mask,
                                             deterministic=deterministic)
    x = nn.Dropout(self.config.dropout_rate)(sequence, deterministic=deterministic)
    return layers.dense(self.config, self.num_labels, ('embed', None),
                        'classifier')(x).astype(jnp.float32)

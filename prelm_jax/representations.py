"""What a loaded model makes of text: vectors, attention maps, embedding neighbours.

Any prelm model works (pre-training or fine-tuning: both keep the encoder at
params['encoder']); analysis.Run calls these with its own model, params and tokenizer.
Texts are encoded as fine-tuning encodes them ([CLS] A [SEP], or [CLS] A [SEP] B [SEP]
for an (a, b) pair; data/finetune_encode.py), cut to the run's max_seq_len.
"""
import re
from typing import NamedTuple

import jax
import numpy as np

from prelm_jax import errors
from prelm_jax.data import finetune_encode
from prelm_jax.data import finetune_tables
from prelm_jax.model import intermediates
from prelm_jax.model.pretraining import build_encoder

# Compiled once per (encoder config, batch shape); the config is a frozen dataclass.
_encoder_outputs = jax.jit(intermediates.encoder_outputs, static_argnums=0)
# Bracketed vocabulary entries: the special tokens, and BERT vocabularies' [unused*]
# rows, which were never trained and so are nobody's meaningful neighbour.
_BRACKETED = re.compile(r"^\[[^\[\]]+\]$")


class Encoded(NamedTuple):
  """N texts through the encoder (H: hidden size; padding stripped).

  pooled: float32 [N, H], the pooler's tanh(dense([CLS])).
  tokens: N lists of the WordPieces each text became, [CLS] and [SEP] included.
  vectors: N float32 arrays [T_i, H], one row per token of `tokens`.
  """
  pooled: np.ndarray
  tokens: list
  vectors: list


def encode_texts(tokenizer, texts, max_seq_len):
  """Model inputs for strings or (a, b) pairs: int32 [N, max_seq_len] arrays."""
  texts = [texts] if isinstance(texts, str) else list(texts)
  parts = [(t,) if isinstance(t, str) else tuple(t) for t in texts]
  counts = {len(p) for p in parts}
  if not texts or len(counts) != 1 or not counts <= {1, 2} or not all(
      isinstance(s, str) for p in parts for s in p):
    raise errors.DataError(f"texts {texts!r}: pass a string, or a non-empty list of strings "
                           "or of (a, b) pairs of strings (all one kind)")
  examples = [finetune_tables.Example(p, None, i + 1) for i, p in enumerate(parts)]
  return finetune_encode.encode_examples(examples, tokenizer, max_seq_len)[0]


def _outputs(model, params, arrays):
  return _encoder_outputs(model.config, params, arrays["input_ids"],
                          arrays["token_type_ids"], arrays["attention_mask"])


def _tokens(tokenizer, ids, length):
  return [tokenizer.id_to_token(int(i)) for i in ids[:length]]


def encode(model, params, tokenizer, texts, *, max_seq_len, layer=-1, batch_size=64):
  """Pooled and per-token vectors of `texts`.

  Args:
    model, params, tokenizer: a loaded run's (analysis.load_run).
    texts: a string, or a list of strings or of (a, b) pairs.
    max_seq_len: longer texts are cut to this many tokens (the run's data.max_seq_len).
    layer: whose output the per-token vectors are: -1 the last layer, 0 the
      embeddings, i the i-th layer (hidden_states' index; the LSTM has -1 only).
    batch_size: texts per forward pass.

  Returns:
    Encoded.
  """
  arrays = encode_texts(tokenizer, texts, max_seq_len)
  lengths = arrays["attention_mask"].sum(axis=1)
  pooled, tokens, vectors = [], [], []
  for start in range(0, len(lengths), batch_size):
    batch = {k: v[start:start + batch_size] for k, v in arrays.items()}
    out = _outputs(model, params, batch)
    if layer == -1:
      chosen = out.sequence_output
    elif out.hidden_states is None:
      raise errors.PrelmError(f"layer={layer}: this encoder ({model.config.encoder}) "
                              "reports its last layer only; pass layer=-1")
    else:
      chosen = out.hidden_states[layer]
    pooled.append(np.asarray(out.pooled, np.float32))
    chosen = np.asarray(chosen, np.float32)
    for row, length in enumerate(lengths[start:start + batch_size]):
      tokens.append(_tokens(tokenizer, batch["input_ids"][row], length))
      vectors.append(chosen[row, :length])
  return Encoded(np.concatenate(pooled), tokens, vectors)


def attention_maps(model, params, tokenizer, text, *, max_seq_len):
  """Every layer's and head's attention over one text (or one (a, b) pair).

  Returns:
    (float32 [layers, heads, T, T], the T tokens): row q of a map is query token q's
    softmax over the key tokens (padding stripped, so rows sum to 1).
  """
  arrays = encode_texts(tokenizer, [text], max_seq_len)
  out = _outputs(model, params, arrays)
  if out.attentions is None:
    raise errors.PrelmError(f"this run's encoder ({model.config.encoder}) has no attention "
                            "to show; attention maps need a transformer run")
  length = int(arrays["attention_mask"][0].sum())
  maps = np.asarray(out.attentions[:, 0, :, :length, :length], np.float32)
  return maps, _tokens(tokenizer, arrays["input_ids"][0], length)


def word_embeddings(model, params, tokenizer):
  """The word-embedding table's rows of the real tokens: float32 [vocab_size, H]."""
  table = build_encoder(model.config).apply({"params": params["encoder"]},
                                            method=lambda encoder: encoder.word_table())
  # Rows past the tokenizer's vocabulary pad the table for sharding (vocab_pad_multiple).
  return np.asarray(table[:tokenizer.vocab_size], np.float32)


def nearest_tokens(model, params, tokenizer, token, k=10):
  """The k tokens whose word embeddings are closest to `token`'s by cosine similarity.

  The token itself and bracketed entries ([PAD], [CLS], ... and [unused*]) are left out.

  Returns:
    [(token, cosine similarity)], most similar first.
  """
  token_id = tokenizer.token_to_id(token)
  if token_id is None and tokenizer.lowercase:
    token_id = tokenizer.token_to_id(token.lower())
  if token_id is None:
    pieces = [tokenizer.id_to_token(i) for i in tokenizer.encode_lines([token])[0]]
    raise errors.DataError(f"{token!r} is not in the vocabulary ({tokenizer.vocab_size} "
                           f"tokens); it splits into {pieces}: ask for one of those")
  table = word_embeddings(model, params, tokenizer)
  unit = table / np.maximum(np.linalg.norm(table, axis=1, keepdims=True), 1e-12)
  similarity = unit @ unit[token_id]
  specials = {tokenizer.pad_id, tokenizer.unk_id, tokenizer.cls_id, tokenizer.sep_id,
              tokenizer.mask_id}
  skipped = {token_id} | specials | {
      i for i, t in enumerate(tokenizer.tokens) if _BRACKETED.match(t)}
  ranked = [int(i) for i in np.argsort(-similarity, kind="stable") if int(i) not in skipped]
  return [(tokenizer.id_to_token(i), float(similarity[i])) for i in ranked[:k]]

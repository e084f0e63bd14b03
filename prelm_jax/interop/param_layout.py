"""prelm's own variations of one set of weights: nested or flat, vocabulary rows padded
or not, layers scanned or not. Conversion (hf_names.py) works on the plain form: flat
{path tuple: array}, one `layer_i` per layer, exactly the tokenizer's rows."""
import re

import numpy as np

# Params with a row per vocabulary entry (padded to config.model.vocab_pad_multiple).
VOCAB_ROWS = (("encoder", "embeddings", "word_embeddings", "embedding"),
              ("mlm_head", "output_embeddings"), ("mlm_head", "output_bias"))


def flatten(tree, prefix=()):
  """Nested dicts -> {path tuple: leaf}."""
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      out.update(flatten(value, prefix + (key,)))
    else:
      out[prefix + (key,)] = value
  return out


def nest(flat):
  """{path tuple: leaf} -> nested dicts."""
  out = {}
  for path, value in flat.items():
    node = out
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = value
  return out


def pad_vocab(flat, rows):
  """Zero rows appended up to `rows`: the padding is never looked up, and the MLM head
  gives it probability 0 whatever its weights."""
  def pad(a):
    return np.concatenate([a, np.zeros((rows - a.shape[0],) + a.shape[1:], a.dtype)])
  return {p: pad(a) if p in VOCAB_ROWS else a for p, a in flat.items()}


def strip_vocab(flat, vocab_size):
  return {p: a[:vocab_size] if p in VOCAB_ROWS else a for p, a in flat.items()}


def stack_layers(flat, num_layers):
  """encoder/layer_i/... -> encoder/layers/... with a leading [num_layers] axis (nn.scan)."""
  out = {p: a for p, a in flat.items() if not _layer_index(p)}
  for path in [p for p in flat if _layer_index(p) == "0"]:
    rest = path[2:]
    out[("encoder", "layers") + rest] = np.stack(
        [flat[("encoder", f"layer_{i}") + rest] for i in range(num_layers)])
  return out


def unstack_layers(flat):
  """The inverse of stack_layers; a flat tree without scanned layers comes back as is."""
  out = {}
  for path, a in flat.items():
    if path[:2] == ("encoder", "layers"):
      for i in range(a.shape[0]):
        out[("encoder", f"layer_{i}") + path[2:]] = a[i]
    else:
      out[path] = a
  return out


def _layer_index(path):
  match = path[0] == "encoder" and re.fullmatch(r"layer_(\d+)", path[1])
  return match.group(1) if match else None

"""The one map between HuggingFace BERT tensor names and prelm params, both ways (numpy).

HF names are those of transformers' BertForPreTraining: the encoder under `bert.`, the
MLM head under `cls.predictions.`, NSP under `cls.seq_relationship.`. The prelm side is
a flat {path tuple: array} of an unscanned model whose vocabulary rows are not padded;
param_layout.py pads rows and stacks layers.

Layouts: a torch Linear weight is [out, in], a flax kernel [in, out]. prelm keeps the
attention heads as an axis of their own (query/key/value kernels [H, heads, head_dim],
the output kernel [heads, head_dim, H]); HF splits the query/key/value features with
view(..., heads, head_dim), so feature h * head_dim + d is head h, dimension d.
"""
import dataclasses
import re

import numpy as np

from prelm_jax.interop import InteropError

ENCODER, POOLER, MLM_HEAD, NSP_HEAD = "encoder", "pooler", "MLM head", "NSP head"
PARTS = (ENCODER, POOLER, MLM_HEAD, NSP_HEAD)
WORD_EMBEDDINGS = "bert.embeddings.word_embeddings.weight"
DECODER = "cls.predictions.decoder.weight"  # HF ties it to WORD_EMBEDDINGS by default
DECODER_BIAS = "cls.predictions.decoder.bias"  # and this to cls.predictions.bias
# Saved by some transformers versions; position ids are 0..L-1, nothing to convert.
DERIVED = ("bert.embeddings.position_ids", DECODER_BIAS)


# How an array changes between the layouts; `heads` is the number of attention heads.
def copy_to_prelm(a, heads):
  del heads
  return a


def dense_to_prelm(w, heads):
  del heads
  return w.T


def qkv_kernel_to_prelm(w, heads):
  return w.T.reshape(w.shape[1], heads, w.shape[0] // heads)


def qkv_bias_to_prelm(b, heads):
  return b.reshape(heads, b.shape[0] // heads)


def out_kernel_to_prelm(w, heads):
  return w.T.reshape(heads, w.shape[1] // heads, w.shape[0])


# Looked up at call time, so a test can swap in a wrong conversion and see parity fail.
TO_PRELM = {"copy": copy_to_prelm, "dense": dense_to_prelm,
            "qkv_kernel": qkv_kernel_to_prelm, "qkv_bias": qkv_bias_to_prelm,
            "out_kernel": out_kernel_to_prelm}
TO_HF = {"copy": lambda a: a, "dense": lambda k: k.T,
         "qkv_kernel": lambda k: k.reshape(k.shape[0], -1).T,
         "qkv_bias": lambda b: b.reshape(-1),
         "out_kernel": lambda k: k.reshape(-1, k.shape[-1]).T}


@dataclasses.dataclass(frozen=True)
class Entry:
  hf: str       # the HF name
  path: tuple   # where prelm keeps it
  layout: str   # a key of TO_PRELM and TO_HF
  part: str     # one of PARTS


def _layer_entries(i):
  hf, path = f"bert.encoder.layer.{i}.", ("encoder", f"layer_{i}")
  table = [(f"attention.self.{n}.{w}", ("attention", n, k), f"qkv_{k}")
           for n in ("query", "key", "value") for w, k in (("weight", "kernel"),
                                                           ("bias", "bias"))]
  table += [
      ("attention.output.dense.weight", ("attention", "out", "kernel"), "out_kernel"),
      ("attention.output.dense.bias", ("attention", "out", "bias"), "copy"),
      ("attention.output.LayerNorm.weight", ("attention_layer_norm", "scale"), "copy"),
      ("attention.output.LayerNorm.bias", ("attention_layer_norm", "bias"), "copy"),
      ("intermediate.dense.weight", ("mlp", "wi", "kernel"), "dense"),
      ("intermediate.dense.bias", ("mlp", "wi", "bias"), "copy"),
      ("output.dense.weight", ("mlp", "wo", "kernel"), "dense"),
      ("output.dense.bias", ("mlp", "wo", "bias"), "copy"),
      ("output.LayerNorm.weight", ("mlp_layer_norm", "scale"), "copy"),
      ("output.LayerNorm.bias", ("mlp_layer_norm", "bias"), "copy"),
  ]
  return [Entry(hf + name, path + sub, layout, ENCODER) for name, sub, layout in table]


def entries(num_layers, *, tied=True):
  """Every tensor of a BertForPreTraining with `num_layers` layers, in HF's order.

  Args:
    num_layers: the encoder's depth.
    tied: whether the MLM output layer reuses the word embeddings (HF's default); if
      not, cls.predictions.decoder.weight is the head's own output_embeddings.
  """
  emb = ("encoder", "embeddings")
  out = [Entry(f"bert.embeddings.{n}.weight", emb + (n, "embedding"), "copy", ENCODER)
         for n in ("word_embeddings", "position_embeddings", "token_type_embeddings")]
  out += [Entry("bert.embeddings.LayerNorm.weight", emb + ("layer_norm", "scale"), "copy",
                ENCODER),
          Entry("bert.embeddings.LayerNorm.bias", emb + ("layer_norm", "bias"), "copy",
                ENCODER)]
  for i in range(num_layers):
    out += _layer_entries(i)
  pooler = ("encoder", "pooler", "dense")
  out += [Entry("bert.pooler.dense.weight", pooler + ("kernel",), "dense", POOLER),
          Entry("bert.pooler.dense.bias", pooler + ("bias",), "copy", POOLER)]
  mlm = "cls.predictions."
  out += [
      Entry(mlm + "transform.dense.weight", ("mlm_head", "transform", "kernel"), "dense",
            MLM_HEAD),
      Entry(mlm + "transform.dense.bias", ("mlm_head", "transform", "bias"), "copy",
            MLM_HEAD),
      Entry(mlm + "transform.LayerNorm.weight", ("mlm_head", "layer_norm", "scale"), "copy",
            MLM_HEAD),
      Entry(mlm + "transform.LayerNorm.bias", ("mlm_head", "layer_norm", "bias"), "copy",
            MLM_HEAD),
      Entry(mlm + "bias", ("mlm_head", "output_bias"), "copy", MLM_HEAD)]
  if not tied:
    out.append(Entry(DECODER, ("mlm_head", "output_embeddings"), "copy", MLM_HEAD))
  out += [Entry("cls.seq_relationship.weight", ("nsp_head", "dense", "kernel"), "dense",
                NSP_HEAD),
          Entry("cls.seq_relationship.bias", ("nsp_head", "dense", "bias"), "copy",
                NSP_HEAD)]
  return out


def canonical(tensors):
  """{name: array} under BertForPreTraining's names.

  BertModel saves its tensors without the `bert.` prefix, and checkpoints written
  before transformers 2.x name LayerNorm's params gamma/beta. The MLM output bias is
  the decoder's bias where there is one: HF's forward adds that one, and only a tied
  head (transformers' default) makes it cls.predictions.bias as well.
  """
  out = {}
  for name, array in tensors.items():
    if re.match(r"(embeddings|encoder|pooler)\.", name):
      name = "bert." + name
    name = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", name)
    name = re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", name)
    out[name] = array
  if DECODER_BIAS in out:
    out["cls.predictions.bias"] = out[DECODER_BIAS]
  return out


@dataclasses.dataclass
class Converted:
  params: dict    # {path: array}: the parts found, in prelm's layout
  parts: tuple    # the PARTS present
  tied: bool      # the MLM output layer is the word embeddings
  ignored: tuple  # HF tensors that prelm has no place for (e.g. a classifier)


def to_prelm(tensors, num_layers, num_heads, expected, source):
  """Converts HF tensors to prelm params.

  Args:
    tensors: {HF name: numpy array}, any of the BertModel, BertForMaskedLM and
      BertForPreTraining layouts.
    num_layers, num_heads: from the model's config.
    expected: {path: shape} of the prelm model (unscanned, vocabulary not padded).
    source: the file the tensors came from, for messages.

  Returns:
    Converted. A part (pooler, MLM head, NSP head) is either complete or absent.

  Raises:
    InteropError: no encoder, a part with some of its tensors missing, or a tensor
      whose shape is not the one the config implies.
  """
  named = canonical(tensors)
  tied = True
  if DECODER in named and WORD_EMBEDDINGS in named:
    tied = (named[DECODER].shape == named[WORD_EMBEDDINGS].shape
            and np.array_equal(named[DECODER], named[WORD_EMBEDDINGS]))
  table = entries(num_layers, tied=tied)
  params, parts = {}, []
  for part in PARTS:
    mine = [e for e in table if e.part == part]
    absent = [e.hf for e in mine if e.hf not in named]
    if len(absent) == len(mine) and part != ENCODER:
      continue
    if absent:
      shown = ", ".join(absent[:3]) + (f" and {len(absent) - 3} more" if len(absent) > 3
                                       else "")
      raise InteropError(f"{source} lacks {len(absent)} of the {len(mine)} tensors of the "
                         f"BERT {part}: {shown}; is it a complete BERT checkpoint?")
    for e in mine:
      params[e.path] = _convert(named[e.hf], e, num_heads, expected.get(e.path), source)
    parts.append(part)
  used = {e.hf for e in table if e.part in parts} | {DECODER, *DERIVED}
  ignored = tuple(sorted(n for n in named if n not in used))
  return Converted(params, tuple(parts), tied, ignored)


def _convert(array, entry, num_heads, shape, source):
  def mismatch():
    return InteropError(f"{source}: {entry.hf} has shape {tuple(array.shape)}, which does "
                        f"not fit the model its config describes (prelm expects "
                        f"{tuple(shape)} for it); is config.json the one of these weights?")
  try:
    out = TO_PRELM[entry.layout](array, num_heads)
  except ValueError:  # a reshape that does not fit
    raise mismatch() from None
  if shape is not None and tuple(out.shape) != tuple(shape):
    raise mismatch()
  return out


def to_hf(params, num_layers):
  """prelm params ({path: array}, unscanned, unpadded) -> {BertForPreTraining name: array}.

  The decoder is written only when the head has its own output embeddings (HF leaves
  tied ones out too); then transformers 5 unties the decoder's bias as well, so it gets
  a copy of the output bias.
  """
  tied = ("mlm_head", "output_embeddings") not in params
  out = {e.hf: np.ascontiguousarray(TO_HF[e.layout](params[e.path]))
         for e in entries(num_layers, tied=tied)}
  if not tied:
    out[DECODER_BIAS] = out["cls.predictions.bias"]
  return out

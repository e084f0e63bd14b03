"""Google's original TensorFlow BERT checkpoints (google-research/bert's releases:
bert_config.json, bert_model.ckpt.{index,data-*}, vocab.txt), read as HF-named tensors.

The name map is pure numpy, so it is tested without TensorFlow; reading the checkpoint
needs tf.train.load_checkpoint (pip install 'prelm_jax[tf]'). Google's modeling.py
computes GELU with the tanh approximation; HF's port of these weights (and prelm) use
the exact erf form, which differs from it by less than 1e-3.
"""
import glob
import os
import re

from prelm_jax.interop import InteropError
from prelm_jax.interop import hf_files

CONFIG = "bert_config.json"
CHECKPOINT = "bert_model.ckpt"
# Google's names whose HF tensors are not [out, in] kernels turned round.
SPECIAL = {"cls/predictions/output_bias": "cls.predictions.bias",
           "cls/seq_relationship/output_weights": "cls.seq_relationship.weight",  # [2, H]
           "cls/seq_relationship/output_bias": "cls.seq_relationship.bias"}


def hf_name(tf_name):
  """(HF name, whether the array is transposed) for a Google variable; None for what
  is not part of the model (optimizer slots, global_step)."""
  if tf_name in SPECIAL:
    return SPECIAL[tf_name], False
  if not tf_name.startswith(("bert/", "cls/")) or re.search(r"/adam_[mv]$", tf_name):
    return None
  name = re.sub(r"layer_(\d+)", r"layer.\1", tf_name).replace("/", ".")
  if name.endswith("_embeddings"):
    return name + ".weight", False
  for tf_end, hf_end in ((".gamma", ".weight"), (".beta", ".bias"), (".bias", ".bias")):
    if name.endswith(tf_end):
      return name[:-len(tf_end)] + hf_end, False
  if name.endswith(".kernel"):  # a TF kernel is [in, out]; torch's Linear [out, in]
    return name[:-len(".kernel")] + ".weight", True
  return None


def to_hf(variables):
  """{Google variable name: array} -> {HF name: array in HF's layout}; the rest dropped."""
  out = {}
  for tf_name, array in variables.items():
    mapped = hf_name(tf_name)
    if mapped is not None:
      name, transposed = mapped
      out[name] = array.T if transposed else array
  return out


def checkpoint_prefix(directory):
  """bert_model.ckpt, or the directory's only other TF checkpoint."""
  if os.path.exists(os.path.join(directory, CHECKPOINT + ".index")):
    return os.path.join(directory, CHECKPOINT)
  found = sorted(glob.glob(os.path.join(directory, "*.ckpt*.index")))
  if len(found) != 1:
    raise InteropError(
        f"{directory} has {CONFIG} but " + ("no TF checkpoint (bert_model.ckpt.index)"
                                            if not found else
                                            f"{len(found)} TF checkpoints; keep one")
        + "; Google's BERT releases hold bert_model.ckpt.{index,data-00000-of-00001}")
  return found[0][:-len(".index")]


def load_variables(prefix):
  """{name: numpy array} of a TF checkpoint (tests replace this: no TensorFlow there)."""
  try:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise InteropError(f"{prefix} is a TensorFlow checkpoint; reading it needs tensorflow: "
                       "pip install 'prelm_jax[tf]'") from None
  reader = tf.train.load_checkpoint(prefix)
  return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
          if hf_name(name) is not None}


def lowercase_of(directory):
  """tokenizer_config.json's do_lower_case when there is one; else Google's directory
  names say it (uncased_L-12_H-768_A-12, cased_L-12_H-768_A-12); else True."""
  lowercase, source = hf_files.tokenizer_lowercase(directory)
  if source.startswith(hf_files.TOKENIZER_CONFIG):
    return lowercase, source
  name = os.path.basename(os.path.normpath(directory)).lower()
  if re.search(r"(^|[^n])cased", name) and "uncased" not in name:
    return False, f"the directory name {name!r} says cased"
  return True, source


def read(directory):
  """Reads Google's checkpoint directory as an hf_files.Source."""
  config_path = os.path.join(directory, CONFIG)
  config = hf_files.read_json(config_path, "BERT config")
  prefix = checkpoint_prefix(directory)
  tensors = to_hf(load_variables(prefix))
  lowercase, lowercase_from = lowercase_of(directory)
  return hf_files.Source(directory, "Google TF checkpoint", prefix, config_path, config,
                         tensors, hf_files.vocab_path(directory), lowercase, lowercase_from)

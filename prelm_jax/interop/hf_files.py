"""Reading a HuggingFace BERT directory without running anything from it.

Weights: model.safetensors (or a sharded model.safetensors.index.json) whenever there is
one, since the format holds nothing but arrays; else pytorch_model.bin through
torch.load(weights_only=True), which rebuilds tensors and plain containers only and
refuses a pickle that would call anything else (a custom class, os.system in a
__reduce__). torch is imported only for a .bin file.
"""
import dataclasses
import json
import os
import pickle
import re

import numpy as np
import safetensors

from prelm_jax.interop import InteropError
from prelm_jax.interop import hf_config

CONFIG = "config.json"
SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
TORCH_BIN = "pytorch_model.bin"
VOCAB = "vocab.txt"
TOKENIZER_CONFIG = "tokenizer_config.json"
# Weights of other frameworks that an HF directory may hold instead; named when refused.
UNREAD = ("tf_model.h5", "flax_model.msgpack", "model.ckpt.index")


@dataclasses.dataclass
class Source:
  """A checkpoint read into memory, with what the import needs to know about it."""
  path: str          # the directory
  kind: str          # what was read, for messages and imported_from.json
  weights: str       # the weights file (or index) read
  config_path: str
  config: dict       # config.json (Google: bert_config.json)
  tensors: dict      # HF name -> numpy array
  vocab_path: str
  lowercase: bool
  lowercase_from: str  # where `lowercase` came from, said on the console


def read_json(path, what):
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except (OSError, ValueError) as e:
    raise InteropError(f"{path} is not readable JSON ({e}); is it the {what}?") from None


def tokenizer_lowercase(directory):
  """(do_lower_case, where that came from): tokenizer_config.json's, else BERT's True."""
  path = os.path.join(directory, TOKENIZER_CONFIG)
  if os.path.exists(path):
    settings = read_json(path, "tokenizer settings")
    if isinstance(settings.get("do_lower_case"), bool):
      return settings["do_lower_case"], f"{TOKENIZER_CONFIG} do_lower_case"
  return True, f"no do_lower_case in a {TOKENIZER_CONFIG}: BERT's default"


def vocab_path(directory):
  path = os.path.join(directory, VOCAB)
  if not os.path.isfile(path):
    raise InteropError(f"{directory} has no {VOCAB}; prelm needs BERT's WordPiece vocabulary "
                       "file beside the weights (one token per line)")
  return path


def read(directory):
  """Reads an HF BERT directory: config.json, the weights, vocab.txt, do_lower_case."""
  config_path = os.path.join(directory, CONFIG)
  config = read_json(config_path, "model's HuggingFace config")
  hf_config.check_is_bert(config, config_path)  # before reading GBs of another model
  weights, kind, tensors = read_weights(directory)
  lowercase, lowercase_from = tokenizer_lowercase(directory)
  return Source(directory, kind, weights, config_path, config, tensors,
                vocab_path(directory), lowercase, lowercase_from)


def read_weights(directory):
  """(file read, kind, {name: array}); safetensors first."""
  for name, reader in ((SAFETENSORS, _safetensors), (SAFETENSORS_INDEX, _sharded),
                       (TORCH_BIN, _torch_bin)):
    path = os.path.join(directory, name)
    if os.path.isfile(path):
      return path, name, reader(path)
  other = [n for n in UNREAD if os.path.exists(os.path.join(directory, n))]
  raise InteropError(
      f"{directory} has no {SAFETENSORS} or {TORCH_BIN}"
      + (f" ({', '.join(other)} is not read: save the model with transformers' "
         "save_pretrained to get model.safetensors)" if other else ""))


def _safetensors(path):
  try:
    with safetensors.safe_open(path, framework="numpy") as f:
      return {k: f.get_tensor(k) for k in f.keys()}
  except TypeError:
    # numpy has no bfloat16; jax's numpy arrays do (ml_dtypes).
    with safetensors.safe_open(path, framework="flax") as f:
      return {k: np.asarray(f.get_tensor(k)) for k in f.keys()}
  except Exception as e:  # pylint: disable=broad-except
    raise InteropError(f"{path} is not a readable safetensors file ({e})") from None


def _sharded(path):
  index = read_json(path, "index of a sharded safetensors checkpoint")
  shards = sorted(set(index.get("weight_map", {}).values()))
  if not shards:
    raise InteropError(f"{path} has no weight_map; is it a safetensors index?")
  tensors = {}
  for shard in shards:
    shard_path = os.path.join(os.path.dirname(path), shard)
    if not os.path.isfile(shard_path):
      raise InteropError(f"{path} names the shard {shard}, which is not there")
    tensors.update(_safetensors(shard_path))
  return tensors


def _torch_bin(path):
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise InteropError(f"reading {path} needs torch: pip install 'prelm_jax[hf]' (or save "
                       "the model as model.safetensors, which needs nothing)") from None
  try:
    state = torch.load(path, map_location="cpu", weights_only=True)
  except pickle.UnpicklingError as e:
    needed = re.findall(r"GLOBAL ([\w.]+)", str(e))
    what = f" (it calls {needed[0]})" if needed else ""
    raise InteropError(
        f"{path} is a pickle that needs more than tensors to load{what}, so it was not "
        "loaded: prelm reads .bin files with torch.load(weights_only=True), which runs no "
        "code; get model.safetensors for this model, or re-save a trusted copy's state "
        "dict") from None
  except Exception as e:  # pylint: disable=broad-except
    first = str(e).splitlines()[0] if str(e) else type(e).__name__
    raise InteropError(f"{path} is not a readable torch checkpoint ({first})") from None
  if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
    state = state["state_dict"]
  if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                            for v in state.values()):
    raise InteropError(f"{path} does not hold a state dict (a mapping of names to "
                       "tensors); save the model with save_pretrained")
  # numpy has no bfloat16: such weights are widened to float32 (exactly).
  return {k: (v.float() if v.dtype == torch.bfloat16 else v).numpy()
          for k, v in state.items()}

"""`prelm export-hf`: a prelm pre-training run becomes a HuggingFace directory that
transformers' BertForPreTraining.from_pretrained and BertTokenizer(Fast).from_pretrained
load: config.json, model.safetensors (BertForPreTraining's names, float32), vocab.txt,
tokenizer_config.json and special_tokens_map.json.

The padding rows of the vocabulary (config.model.vocab_pad_multiple) are left out and
scanned layers are unstacked; a pre-LN, ALiBi or LSTM model is refused, since HF's
BertModel has no such option.
"""
import os
import shutil

import jax
import numpy as np
from safetensors import numpy as safetensors_numpy

from prelm_jax import analysis
from prelm_jax import jsonio
from prelm_jax import progress
from prelm_jax import workdir as workdir_lib
from prelm_jax.data import tokenizer as tokenizer_lib
from prelm_jax.interop import InteropError
from prelm_jax.interop import hf_config
from prelm_jax.interop import hf_files
from prelm_jax.interop import hf_names
from prelm_jax.interop import param_layout
from prelm_jax.interop import run_files

SPECIAL_TOKENS_MAP = "special_tokens_map.json"
# BertTokenizer's keyword -> the token (tokenizer.py's SPECIAL_TOKENS).
SPECIAL = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]",
           "sep_token": "[SEP]", "mask_token": "[MASK]"}


def read_run_config(workdir):
  path = os.path.join(workdir, workdir_lib.CONFIG_FILE)
  if not os.path.isfile(path):
    raise InteropError(f"{workdir} is not a prelm run (no {workdir_lib.CONFIG_FILE}); pass "
                       "the --workdir of a `prelm train`")
  config = hf_files.read_json(path, "config of a prelm run")
  if not all(isinstance(config.get(s), dict) for s in ("model", "data")):
    hint = " (a HuggingFace model's, it seems)" if "model_type" in config else ""
    raise InteropError(f"{workdir} is not a prelm run: its {workdir_lib.CONFIG_FILE} is not "
                       f"prelm's{hint}; pass the --workdir of a `prelm train`")
  return config


def checkpoint_step(workdir, step):
  steps = workdir_lib.checkpoint_steps(workdir)
  if not steps:
    raise InteropError(f"{workdir} has no checkpoint yet; run `prelm train` until it "
                       "saves one (config.train.checkpoint_every)")
  if step is not None and step not in steps:
    raise InteropError(f"{workdir} has no checkpoint at step {step} (it has {list(steps)})")
  return steps[-1] if step is None else step


def tokenizer_files(tokenizer, max_length):
  """{file name: JSON} of HF's BertTokenizer for prelm's WordPiece (same normalisation:
  BERT's, with accents stripped exactly when lowercasing)."""
  settings = {"tokenizer_class": "BertTokenizer", "do_lower_case": tokenizer.lowercase,
              "strip_accents": None, "tokenize_chinese_chars": True,
              "model_max_length": max_length, **SPECIAL}
  return {hf_files.TOKENIZER_CONFIG: settings, SPECIAL_TOKENS_MAP: dict(SPECIAL)}


def export_run(workdir, out_dir, *, step=None, say=progress.say):
  """Writes the run in `workdir` (its latest checkpoint, or `step`) to `out_dir`.

  Returns:
    The absolute path of the new HF directory.

  Raises:
    InteropError: not a prelm run, a run HF BERT cannot hold, no checkpoint, or an
      `out_dir` that holds files already; nothing is written then.
  """
  workdir = os.path.abspath(os.path.expanduser(workdir))
  config = read_run_config(workdir)
  hf_config.check_exportable(config, workdir)
  step = checkpoint_step(workdir, step)
  out_dir = run_files.check_new_directory(out_dir, "HF_DIR")
  _, _, params, tokenizer = analysis.load_run(workdir, step)
  flat = param_layout.unstack_layers(param_layout.flatten(jax.device_get(params)))
  flat = param_layout.strip_vocab(flat, tokenizer.vocab_size)
  flat = {p: np.asarray(a, np.float32) for p, a in flat.items()}  # bfloat16 params too
  tensors = hf_names.to_hf(flat, config["model"]["num_layers"])
  tied = hf_names.DECODER not in tensors
  pad_id = tokenizer.token_to_id(tokenizer_lib.SPECIAL_TOKENS[0])
  with run_files.staged(out_dir) as staging:
    jsonio.write_json(os.path.join(staging, hf_files.CONFIG),
                      hf_config.hf_config(config, tokenizer.vocab_size, pad_id, tied))
    # transformers refuses a safetensors file without format metadata.
    safetensors_numpy.save_file(tensors, os.path.join(staging, hf_files.SAFETENSORS),
                                metadata={"format": "pt"})
    shutil.copyfile(os.path.join(workdir, workdir_lib.VOCAB_FILE),
                    os.path.join(staging, hf_files.VOCAB))
    max_length = config["model"]["max_position_embeddings"]
    for name, content in tokenizer_files(tokenizer, max_length).items():
      jsonio.write_json(os.path.join(staging, name), content)
  say(f"Exported {workdir} (step {step}) -> {out_dir}: BertForPreTraining, vocabulary "
      f"{tokenizer.vocab_size}, lowercase={tokenizer.lowercase}")
  return out_dir

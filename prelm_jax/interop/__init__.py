"""Checkpoints of other code bases, both ways: HuggingFace BERT directories and Google's
original TensorFlow BERT checkpoints become prelm runs (`prelm import-hf`), and a prelm
pre-training run becomes a HuggingFace BertForPreTraining directory (`prelm export-hf`).

  hf_names     the tensor name map, HF <-> prelm params (pure numpy)
  google_tf    Google's variable names -> HF names; its reader needs tensorflow
  hf_config    HF config.json <-> prelm config keys; what cannot be converted
  hf_files     reading an HF directory without running code from it
  run_files    writing an imported run as prelm writes its own
  hf_import, hf_export, cli
"""
from prelm_jax import errors


class InteropError(errors.PrelmError):
  """A checkpoint or directory that cannot be converted as asked; the message says why."""

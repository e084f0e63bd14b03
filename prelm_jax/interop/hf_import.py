"""`prelm import-hf`: a HuggingFace BERT directory (or Google's TF checkpoint) becomes a
new prelm pre-training run at step 0.

The architecture comes from the checkpoint's config; everything else (data, training,
optimiser, model.scan_layers, vocab_pad_multiple, dtypes) from the prelm config given
(experiments/base.py by default). Heads the checkpoint lacks (BertModel: pooler only,
no MLM/NSP; BertForMaskedLM: no pooler, no NSP) start as `prelm train` would start them.
"""
import dataclasses
import datetime
import hashlib
import os

import jax
import numpy as np

from prelm_jax import errors
from prelm_jax import progress
from prelm_jax import registry
from prelm_jax import validation
from prelm_jax.data import tokenizer as tokenizer_lib
from prelm_jax.interop import InteropError
from prelm_jax.interop import google_tf
from prelm_jax.interop import hf_config
from prelm_jax.interop import hf_files
from prelm_jax.interop import hf_names
from prelm_jax.interop import param_layout
from prelm_jax.interop import run_files
from prelm_jax.model import config as model_config
from prelm_jax.model import pretraining


@dataclasses.dataclass
class Imported:
  workdir: str
  config: object        # the run's ConfigDict
  fresh: tuple          # hf_names.PARTS that were initialised, not read
  ignored: tuple        # tensors of the checkpoint prelm has no place for
  provenance: dict      # imported_from.json


def read_source(path):
  """The checkpoint in directory `path`: HF (config.json) or Google's (bert_config.json)."""
  if not os.path.isdir(path):
    raise InteropError(f"{path} is not a directory; pass a HuggingFace BERT directory "
                       "(config.json, model.safetensors, vocab.txt)")
  if os.path.exists(os.path.join(path, hf_files.CONFIG)):
    return hf_files.read(path)
  if os.path.exists(os.path.join(path, google_tf.CONFIG)):
    return google_tf.read(path)
  raise InteropError(f"{path} has no {hf_files.CONFIG} (a HuggingFace model) or "
                     f"{google_tf.CONFIG} (Google's TF BERT); is it a model directory?")


def configure(config, source):
  """`config` with the checkpoint's architecture and tokenizer settings (in place)."""
  if config.get("task", "pretrain") != "pretrain":
    raise InteropError(f"import-hf writes a pre-training run, but the config given is a "
                       f"{config.task!r} one; fine-tune the imported run afterwards with "
                       "--config.init_from=WORKDIR")
  for key, value in hf_config.prelm_settings(source.config, source.config_path).items():
    section, name = key.split(".")
    config[section][name] = value
  config.model.encoder, config.model.pre_ln, config.model.alibi = "transformer", False, False
  config.data.lowercase = source.lowercase
  # A sequence cannot be longer than the position table.
  config.data.max_seq_len = min(config.data.max_seq_len, config.model.max_position_embeddings)
  try:
    validation.check_model(config.model)
    validation.check_data(config.data, config.model)
    validation.check_train(config.train)
    validation.check_optim(config.optim)
  except errors.ConfigError as e:
    raise InteropError(f"the imported config ({source.config_path}'s architecture on the "
                       f"prelm config) is refused: {e}") from None
  return config


def check_vocab(source, config):
  """vocab.txt against the embedding rows and config.json; returns its text."""
  with open(source.vocab_path, "rb") as f:
    text = f.read().decode("utf-8", errors="replace")
  lines = text.split("\n")
  if lines and not lines[-1]:
    lines.pop()
  rows = hf_names.canonical(source.tensors).get(hf_names.WORD_EMBEDDINGS)
  rows = None if rows is None else rows.shape[0]
  expected = config.data.vocab_size
  if len(lines) != expected or (rows is not None and rows != expected):
    raise InteropError(
        f"{source.vocab_path} has {len(lines)} tokens, {source.config_path} says vocab_size "
        f"{expected}" + (f" and {source.weights} has {rows} embedding rows" if rows else "")
        + "; they must agree: is vocab.txt the one these weights were trained with?")
  # Checked as every prelm vocabulary is (the special tokens, no duplicates).
  try:
    tokenizer_lib.load_wordpiece(source.vocab_path, config.data.lowercase,
                                 fix="fix it in the model directory")
  except errors.DataError as e:
    raise InteropError(str(e)) from None
  return text if text.endswith("\n") else text + "\n"


def expected_shapes(config):
  """{path: shape} of the plain (unscanned, unpadded) model of `config`, with an MLM
  output layer of its own in case the checkpoint has one."""
  encoder_config = model_config.EncoderConfig.from_config(config.model, config.data.vocab_size)
  plain = dataclasses.replace(encoder_config, scan_layers=False, vocab_pad_multiple=1,
                              remat_policy="none", tie_word_embeddings=False)
  model = pretraining.BertForPreTraining(plain)
  ids = np.zeros((1, 1), np.int32)
  shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), ids, ids, ids))
  boxed = param_layout.flatten(shapes["params"])
  return {p: getattr(s, "value", s).shape for p, s in boxed.items()}


def _sha256(path):
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def convert(source, config):
  """The checkpoint `source` as the step-0 state of a run of `config` (changed in place).

  Returns:
    (state, hf_names.Converted): state.params holds every converted tensor, and what
    the checkpoint lacks as `prelm train` would initialise it.
  """
  config = configure(config, source)
  check_vocab(source, config)
  m = config.model
  converted = hf_names.to_prelm(source.tensors, m.num_layers, m.num_heads,
                                expected_shapes(config), source.weights)
  m.tie_word_embeddings = converted.tied
  state, shardings = run_files.initial_state(config, config.data.vocab_size)
  fresh = param_layout.flatten(jax.device_get(state.params))
  rows = model_config.EncoderConfig.from_config(m, config.data.vocab_size).padded_vocab_size
  params = param_layout.pad_vocab(converted.params, rows)
  if m.scan_layers:
    params = param_layout.stack_layers(params, m.num_layers)
  for path, array in params.items():  # the conversion's own check; never expected to fail
    if path not in fresh or fresh[path].shape != array.shape:
      raise AssertionError(f"converted {path} {array.shape} does not fit the model")
  merged = {p: np.asarray(params.get(p, a), a.dtype) for p, a in fresh.items()}
  state = state.replace(params=jax.device_put(param_layout.nest(merged), shardings.params))
  return state, converted


def import_checkpoint(source_dir, workdir, config=None, *, say=progress.say):
  """Converts the checkpoint in `source_dir` into a new prelm run in `workdir`.

  Args:
    source_dir: an HF BERT directory (config.json, model.safetensors or
      pytorch_model.bin, vocab.txt[, tokenizer_config.json]) or Google's (bert_config.json,
      bert_model.ckpt.*, vocab.txt).
    workdir: a directory that does not exist yet (or is empty).
    config: the prelm config for everything but the architecture (default: base); it
      is changed in place.
    say: prints a line for the person at the console.

  Returns:
    Imported.

  Raises:
    InteropError (a PrelmError): anything that keeps the checkpoint from converting;
      nothing is written then.
  """
  workdir = run_files.check_new_directory(workdir, "WORKDIR")
  source = read_source(source_dir)
  config = registry.load("base") if config is None else config
  state, converted = convert(source, config)
  vocab_text = check_vocab(source, config)
  m, vocab_size = config.model, config.data.vocab_size
  fresh_parts = tuple(p for p in hf_names.PARTS if p not in converted.parts)
  provenance = {
      "source": os.path.abspath(source.path), "format": source.kind,
      "weights": os.path.abspath(source.weights),
      "weights_sha256": _sha256(source.weights) if os.path.isfile(source.weights) else None,
      "architectures": source.config.get("architectures"),
      "fresh": list(fresh_parts), "ignored": list(converted.ignored),
      "tie_word_embeddings": converted.tied, "lowercase": source.lowercase,
      "lowercase_from": source.lowercase_from, "step": 0, "workdir": workdir,
      "imported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(
          timespec="seconds")}
  with run_files.staged(workdir) as staging:
    run_files.write_run(staging, config, vocab_text, state, vocab_size, provenance)

  say(f"Imported {source.path} ({source.kind}{_architectures(source)}): "
      f"{m.num_layers} layers, hidden {m.hidden_size}, {m.num_heads} heads, vocabulary "
      f"{vocab_size} (lowercase={source.lowercase}: {source.lowercase_from}) -> {workdir}, "
      "step 0")
  if fresh_parts:
    say(f"Initialised fresh, as prelm train would (not in {os.path.basename(source.weights)}"
        f"): {', '.join(fresh_parts)}")
  if converted.ignored:
    shown = ", ".join(converted.ignored[:4]) + (", ..." if len(converted.ignored) > 4 else "")
    say(f"Not imported (prelm has no place for them): {shown}")
  if not converted.tied:
    say("The MLM output layer has weights of its own (not the word embeddings): "
        "config.model.tie_word_embeddings=False")
  say(f"Continue pre-training: prelm train --config {workdir}/{run_files.EXPERIMENT_FILE} "
      f"--workdir {workdir} (to config.train.num_steps={config.train.num_steps}); "
      f"fine-tune: --config.init_from={workdir}")
  return Imported(workdir, config, fresh_parts, converted.ignored, provenance)


def _architectures(source):
  names = source.config.get("architectures")
  return f", {', '.join(names)}" if names else ""

"""Every config value checked before anything is written, built or compiled.

`check(config, mesh)` runs one function per config section; each raises
errors.ConfigError with one line that names the key, the value, what is allowed and the
fix. Values that only the corpus can judge (the vocabulary's alphabet) are checked where
the corpus is read, still before anything is written (train.load_data).
"""
import math

import jax

from prelm_jax import errors
from prelm_jax import nonfinite
from prelm_jax import sharding
from prelm_jax.data import finetune_sources
from prelm_jax.data import masking
from prelm_jax.data import mixture
from prelm_jax.data import finetune_tables
from prelm_jax.data import plain_text
from prelm_jax.data import text_sources
from prelm_jax.model import config as model_config

DECAYS = ("linear", "cosine", "constant")
# float16 would need loss scaling, which the step does not do; bfloat16 has float32's range.
DTYPES = ("float32", "bfloat16")
_MIN_SEQ_LEN = 5  # [CLS] a [SEP] b [SEP]


def _fail(key, value, allowed, fix):
  raise errors.ConfigError(f"config.{key}={value!r} is not allowed: {allowed}; {fix}")


def _at_least(section, key, low, *, prefix, fix=None):
  value = section[key]
  if not isinstance(value, (int, float)) or value < low:
    _fail(prefix + key, value, f"it must be >= {low}",
          fix or f"pass --config.{prefix}{key}=<a number >= {low}>")


def _between(section, key, low, high, *, prefix, low_open=False, high_open=False):
  value = section[key]
  ok_low = value > low if low_open else value >= low
  ok_high = value < high if high_open else value <= high
  if not (ok_low and ok_high):
    interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    _fail(prefix + key, value, f"it must lie in {interval}",
          f"pass --config.{prefix}{key}=<a value in {interval}>")


def check_model(model):
  p = "model."
  if model.encoder not in model_config.ENCODERS:
    _fail(p + "encoder", model.encoder, f"it must be one of {', '.join(model_config.ENCODERS)}",
          "use --config.model.encoder=transformer (or lstm, the baseline)")
  for key in ("num_layers", "hidden_size", "num_heads", "mlp_dim",
              "max_position_embeddings", "vocab_pad_multiple"):
    _at_least(model, key, 1, prefix=p)
  _at_least(model, "type_vocab_size", 2, prefix=p,
            fix="BERT's segments A and B need --config.model.type_vocab_size=2")
  for key in ("dropout_rate", "attention_dropout_rate"):
    _between(model, key, 0, 1, prefix=p, high_open=True)
  _at_least(model, "initializer_range", 0, prefix=p)
  _between(model, "layer_norm_eps", 0, 1, prefix=p, low_open=True)
  if model.encoder == "transformer" and model.hidden_size % model.num_heads:
    raise errors.ConfigError(
        f"config.model.hidden_size={model.hidden_size} is not divisible by "
        f"config.model.num_heads={model.num_heads}; each head gets hidden_size / num_heads "
        "dimensions: pick sizes that divide")
  if model.encoder == "lstm" and model.hidden_size % 2:
    raise errors.ConfigError(
        f"config.model.hidden_size={model.hidden_size} is odd; the lstm encoder gives each "
        "direction half of it: use an even size")
  for key in ("dtype", "param_dtype"):
    if model[key] == "float16":
      _fail(p + key, "float16", f"it must be one of {', '.join(DTYPES)}",
            f"float16 needs loss scaling, which prelm does not do; use "
            f"--config.model.{key}=bfloat16 (float32's range, no scaling needed)")
    if model[key] not in DTYPES:
      _fail(p + key, model[key], f"it must be one of {', '.join(DTYPES)}",
            f"use --config.model.{key}=float32 or bfloat16")
  activation = model.get("mlp_activation", "gelu")
  if activation not in model_config.MLP_ACTIVATIONS:
    _fail(p + "mlp_activation", activation,
          f"it must be one of {', '.join(model_config.MLP_ACTIVATIONS)}",
          "use --config.model.mlp_activation=gelu (BERT's) or geglu")
  if model.encoder == "lstm" and activation != "gelu":
    _fail(p + "mlp_activation", activation, "the lstm encoder has no feed-forward layer",
          "drop --config.model.mlp_activation, or use --config.model.encoder=transformer")
  if model.remat_policy not in model_config.REMAT_POLICIES:
    _fail(p + "remat_policy", model.remat_policy,
          f"it must be one of {', '.join(model_config.REMAT_POLICIES)}",
          "use --config.model.remat_policy=none (or full to save the most memory)")


def _check_text_files(data):
  """config.data.paths/documents/bad_utf8: set only for text_files, and sound there."""
  p = "data."
  if data.documents not in plain_text.DOCUMENT_MODES:
    _fail(p + "documents", data.documents,
          f"it must be one of {', '.join(plain_text.DOCUMENT_MODES)}",
          "use --config.data.documents=blank_lines (paragraphs) or file")
  if data.bad_utf8 not in text_sources.BAD_UTF8_POLICIES:
    _fail(p + "bad_utf8", data.bad_utf8,
          f"it must be one of {', '.join(text_sources.BAD_UTF8_POLICIES)}",
          "use --config.data.bad_utf8=error (stop at the first bad byte) or replace")
  datasets = {cfg.dataset for cfg, _ in mixture.sources(data)}
  if "text_files" not in datasets:
    if data.paths:
      # Otherwise the run would quietly train on another corpus than the files named.
      what = (f"config.data.mixture={data.mixture!r}" if data.get("mixture") else
              f"config.data.dataset={data.dataset!r}")
      _fail(p + "paths", data.paths, f"{what} reads no files",
            "add --config.data.dataset=text_files (or text_files to the mixture), or "
            "drop --config.data.paths")
    return
  if not data.paths.strip():
    _fail(p + "paths", data.paths, "dataset text_files needs your files",
          "pass e.g. --config.data.paths='~/books/*.txt' (globs, comma-separated)")
  if not text_sources.find_files(data.paths):
    _fail(p + "paths", data.paths, "it matches no file", "check the folder and the "
          "pattern (relative globs start at the working directory)")


def check_data(data, model):
  p = "data."
  _check_text_files(data)
  _at_least(data, "vocab_size", 6, prefix=p,
            fix="the 5 special tokens need company: use e.g. --config.data.vocab_size=8000")
  if data.max_seq_len < _MIN_SEQ_LEN:
    _fail(p + "max_seq_len", data.max_seq_len, f"must be >= {_MIN_SEQ_LEN}",
          f"[CLS] A [SEP] B [SEP] needs --config.data.max_seq_len >= {_MIN_SEQ_LEN}")
  if data.max_seq_len > model.max_position_embeddings:
    raise errors.ConfigError(
        f"config.data.max_seq_len={data.max_seq_len} exceeds "
        f"config.model.max_position_embeddings={model.max_position_embeddings}; "
        "lower the first or raise the second")
  _at_least(data, "max_predictions_per_seq", 1, prefix=p)
  objective = data.get("sentence_objective", "nsp")
  if objective not in masking.SENTENCE_OBJECTIVES:
    _fail(p + "sentence_objective", objective,
          f"it must be one of {', '.join(masking.SENTENCE_OBJECTIVES)}",
          "use --config.data.sentence_objective=nsp (BERT's), sop (ALBERT's) or none")
  if not isinstance(data.get("whole_word_masking", False), bool):
    _fail(p + "whole_word_masking", data.whole_word_masking, "it must be True or False",
          "pass --config.data.whole_word_masking=True (or False, BERT's default)")
  _check_packing(data, model)
  _check_preparation(data)
  _between(data, "mask_prob", 0, 1, prefix=p, low_open=True)
  for key in ("mask_token_prob", "random_token_prob", "nsp_random_prob", "short_seq_prob"):
    _between(data, key, 0, 1, prefix=p)
  if data.mask_token_prob + data.random_token_prob > 1:
    raise errors.ConfigError(
        f"config.data.mask_token_prob={data.mask_token_prob} + random_token_prob="
        f"{data.random_token_prob} = {data.mask_token_prob + data.random_token_prob:g} "
        "exceeds 1 (the rest of the selected tokens are kept as they are); lower them "
        "so they sum to <= 1, e.g. BERT's 0.8 and 0.1")


def _check_packing(data, model):
  """config.data.packing: a bool, S >= 1 pair slots, and an encoder that keeps pairs apart."""
  p = "data."
  packing = data.get("packing", False)
  if not isinstance(packing, bool):
    _fail(p + "packing", packing, "it must be True or False",
          "pass --config.data.packing=True (several pairs per row) or False")
  slots = data.get("max_pairs_per_row", 8)
  if isinstance(slots, bool) or not isinstance(slots, int) or slots < 1:
    _fail(p + "max_pairs_per_row", slots, "it must be an integer >= 1",
          "pass e.g. --config.data.max_pairs_per_row=8")
  if packing and model.encoder != "transformer":
    # A recurrence runs across the whole row: the pairs of a packed row would leak
    # into each other.
    raise errors.ConfigError(
        f"config.data.packing=True needs the transformer encoder, but "
        f"config.model.encoder={model.encoder!r} cannot keep the pairs of a row apart; "
        "pass --config.data.packing=False, or --config.model.encoder=transformer")


def _check_preparation(data):
  """The preparation stage's settings and the mixture (data/prepare.py, mixture.py)."""
  p = "data."
  _at_least(data, "prepare_workers", 1, prefix=p)
  _at_least(data, "input_threads", 1, prefix=p)
  _at_least(data, "prepare_unit_docs", 1, prefix=p)
  _at_least(data, "prepare_unit_bytes", 1, prefix=p)
  _at_least(data, "vocab_sample_bytes", 0, prefix=p,
            fix="0 trains on the whole train split; e.g. 200_000_000 on a sample")
  sources = mixture.sources(data)  # a malformed mixture or a weight <= 0: one line
  if len(sources) > 1 and data.get("packing", False):
    raise errors.ConfigError(
        f"config.data.mixture={data.mixture!r} with config.data.packing=True is not "
        "supported yet (rows are planned within one corpus); pass "
        "--config.data.packing=False, or train on one dataset")


FORMATS = ("table", "conll", "conllu")
# Fine-tuning inputs: a file, or a prepared TFDS dataset as tfds:NAME:SPLIT.
FINETUNE_PATH_KEYS = ("train_path", "dev_path", "test_path")


def check_finetune_data(config):
  """The fine-tuning inputs (the task validates what only it knows, e.g. the scheme)."""
  data = config.data
  if data.format not in FORMATS:
    _fail("data.format", data.format, f"it must be one of {', '.join(FORMATS)}",
          "use table (.tsv/.csv/.jsonl), conll or conllu")
  if config.get("task") == "classify":
    finetune_tables.check_text_columns("pair" if data.sentence_pair else "single",
                                       data.text_columns)
  _at_least(data, "train_examples", 0, prefix="data.",
            fix="use 0 for the whole training file, or a number of examples")
  for key in FINETUNE_PATH_KEYS:
    if finetune_sources.is_tfds(data.get(key)):
      finetune_sources.parse(data[key], key=key)  # tfds:NAME:SPLIT, both given
  if config.init_step < -1:
    _fail("init_step", config.init_step, "it must be >= -1",
          "use -1 (the latest checkpoint of init_from) or one of its steps")


def check_train(train):
  p = "train."
  for key in ("num_steps", "batch_size", "eval_batch_size", "log_every", "eval_every",
              "checkpoint_every", "keep_checkpoints", "grad_accum_steps",
              "max_consecutive_skips"):
    _at_least(train, key, 1, prefix=p)
  _at_least(train, "num_epochs", 0, prefix=p,
            fix="use 0 to count the budget in train.num_steps, or a number of epochs")
  _at_least(train, "restore_step", -1, prefix=p,
            fix="use -1 (the latest checkpoint) or a saved step")
  if train.nonfinite_policy not in nonfinite.POLICIES:
    _fail(p + "nonfinite_policy", train.nonfinite_policy,
          f"it must be one of {nonfinite.POLICIES}", "use 'stop' or 'skip'")


def check_optim(optim):
  p = "optim."
  if not optim.learning_rate > 0:
    _fail(p + "learning_rate", optim.learning_rate, "it must be > 0",
          "pass a positive rate, e.g. --config.optim.learning_rate=1e-4")
  _at_least(optim, "warmup_steps", 0, prefix=p)
  _between(optim, "warmup_fraction", 0, 1, prefix=p, high_open=True)
  if optim.decay not in DECAYS:
    _fail(p + "decay", optim.decay, f"it must be one of {', '.join(DECAYS)}",
          "use --config.optim.decay=linear (BERT's)")
  _between(optim, "end_learning_rate_fraction", 0, 1, prefix=p)
  _at_least(optim, "weight_decay", 0, prefix=p)
  for key in ("b1", "b2"):
    _between(optim, key, 0, 1, prefix=p, high_open=True)
  if not optim.eps > 0:
    _fail(p + "eps", optim.eps, "it must be > 0", "use e.g. --config.optim.eps=1e-6")
  _between(optim, "layer_decay", 0, 1, prefix=p, low_open=True)
  _at_least(optim, "grad_clip_norm", 0, prefix=p,
            fix="use e.g. --config.optim.grad_clip_norm=1.0 (BERT's), or 0 for no clipping")


def _sharded_dims(model):
  """Logical axis name -> (the size it must divide, where that size comes from)."""
  dims = {"embed": (model.hidden_size, "config.model.hidden_size"),
          # The embedding table is padded to a multiple of this (model/config.py).
          "vocab": (model.vocab_pad_multiple, "config.model.vocab_pad_multiple")}
  if model.encoder == "transformer":
    dims.update(heads=(model.num_heads, "config.model.num_heads"),
                kv=(model.hidden_size // model.num_heads,
                    "the head size hidden_size / num_heads"),
                mlp=(model.mlp_dim, "config.model.mlp_dim"))
    if model.scan_layers:
      dims["layers"] = (model.num_layers, "config.model.num_layers")
  return dims


def check_mesh(config, mesh):
  """The rules name real mesh axes, split the model evenly, and batches divide."""
  rules = sharding.config_rules(config, mesh)  # MeshError for an unknown mesh axis
  dims = _sharded_dims(config.model)
  for name, axes in rules:
    if name not in dims or axes is None:
      continue
    axes = axes if isinstance(axes, tuple) else (axes,)
    split = math.prod(mesh.shape[a] for a in axes)
    size, what = dims[name]
    if size % split:
      where = " x ".join(f"{a}={mesh.shape[a]}" for a in axes)
      raise errors.ConfigError(
          f"{what}={size} does not split evenly over mesh {where} (logical axis {name!r} "
          f"-> {axes}); use a multiple of {split}, or a mesh whose "
          f"{'/'.join(axes)} size divides {size}")
  dp = sharding.data_parallel_size(mesh)
  processes = jax.process_count()
  for name in ("batch_size", "eval_batch_size"):
    size = config.train[name]
    for divisor, what in ((dp, "the data-parallel size (mesh data x fsdp)"),
                          (processes, "the number of processes")):
      if size % divisor:
        raise errors.ConfigError(
            f"config.train.{name}={size} is not divisible by {what} = {divisor}; "
            f"use a multiple of {divisor}, e.g. {math.ceil(size / divisor) * divisor}")
  accum = config.train.grad_accum_steps
  if config.train.batch_size % (accum * dp):
    raise errors.ConfigError(
        f"config.train.batch_size={config.train.batch_size} does not split into "
        f"grad_accum_steps={accum} micro-batches that are each a multiple of the "
        f"data-parallel size {dp}; use a batch_size that is a multiple of {accum * dp}")


def check(config, mesh):
  """Raises errors.ConfigError (or sharding.MeshError) for the first bad value."""
  check_model(config.model)
  check_data(config.data, config.model)
  check_train(config.train)
  check_optim(config.optim)
  if config.get("task", "pretrain") != "pretrain":
    check_finetune_data(config)
  check_mesh(config, mesh)

"""What every fine-tuning task shares: starting from a pre-trained run, reading the
train/dev/test data (files, or prepared TFDS datasets named tfds:NAME:SPLIT), the
vocabulary, budgets in epochs, and evaluation on every dev prediction (metrics such as
F1 or Spearman need them all, so the eval step returns per-example predictions that
are gathered on the host).

Starting point (config.init_from):
  a prelm run directory: its encoder architecture (config.json's model section) and its
    vocab.txt are adopted; with config.init_params (default) its encoder weights too,
    from its latest checkpoint or config.init_step. The head starts fresh.
  "": from scratch; the vocabulary is trained on the training file.
"""
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np

from prelm_jax import errors
from prelm_jax import workdir as workdir_lib
from prelm_jax.data import array_batches
from prelm_jax.data import tokenizer as tokenizer_lib
from prelm_jax.data import vocabulary
from prelm_jax.tasks import base

# config.model keys that define the encoder's weights: taken from the init_from run.
ARCHITECTURE_KEYS = ("encoder", "num_layers", "hidden_size", "num_heads", "mlp_dim",
                     "max_position_embeddings", "type_vocab_size", "pre_ln",
                     "layer_norm_eps", "scan_layers", "vocab_pad_multiple", "alibi",
                     "mlp_activation")


def read_run_config(run_dir, flag="config.init_from"):
  """config.json of a prelm run directory, or a one-line error naming `flag`."""
  path = os.path.join(run_dir, workdir_lib.CONFIG_FILE)
  if not os.path.isdir(run_dir) or not os.path.exists(path):
    raise errors.ConfigError(
        f"{flag}={run_dir!r} is not a prelm run (no {workdir_lib.CONFIG_FILE} there); pass "
        "the --workdir of a finished `prelm train`, or \"\" to train from scratch")
  with open(path) as f:
    return json.load(f)


def init_checkpoint_step(config):
  """The init_from run's checkpoint to load: config.init_step, or its latest."""
  run = config.init_from
  steps = sorted(int(n) for n in os.listdir(os.path.join(run, workdir_lib.CHECKPOINTS_DIR))
                 if n.isdigit()) if os.path.isdir(
                     os.path.join(run, workdir_lib.CHECKPOINTS_DIR)) else []
  if not steps:
    raise errors.ConfigError(f"config.init_from={run!r} has no checkpoint; train it first "
                             "(or pass another run)")
  if config.init_step >= 0 and config.init_step not in steps:
    raise errors.ConfigError(f"config.init_step={config.init_step} is not a checkpoint of "
                             f"{run} (it has {steps}); pick one of those, or -1 for the latest")
  return config.init_step if config.init_step >= 0 else steps[-1]


def adopt_pretrained_architecture(config, defaults):
  """Copies the encoder's architecture and vocabulary settings from config.init_from.

  A value the user set (one that differs from `defaults`, the base experiment) and
  that differs from the run's is a conflict: refused in one line.
  """
  if not config.init_from:
    return
  saved = read_run_config(config.init_from)
  if config.init_params:
    init_checkpoint_step(config)  # fails early when there is nothing to load
  wanted = {f"model.{k}": saved.get("model", {}).get(k, config.model.get(k))
            for k in ARCHITECTURE_KEYS}
  for key in ("lowercase", "vocab_size"):  # the run's vocab.txt is used as it is
    wanted[f"data.{key}"] = saved.get("data", {}).get(key, config.data[key])
  for key, value in wanted.items():
    section, name = key.split(".")
    current, default = config[section][name], defaults[section][name]
    if current != value and current != default:
      raise errors.ConfigError(
          f"config.{key}={current!r} conflicts with the pre-trained run's {value!r} "
          f"({config.init_from}/{workdir_lib.CONFIG_FILE}); drop --config.{key}, or "
          "start from another run")
    config[section][name] = value


class FinetuneTask(base.Task):
  """Base of ClassifyTask and TagTask; subclasses read, encode, score and write."""

  progress_metrics = ("loss",)
  keeps_best = True

  # --- for subclasses -----------------------------------------------------------------
  def read(self, path):
    raise NotImplementedError

  def records_from_texts(self, texts):
    """Unlabelled records of raw texts typed in a notebook (analysis.Run.predict)."""
    raise NotImplementedError

  def decode_predictions(self, predictions, examples):
    """What a person reads, one item per record of `examples` ((records, arrays)):
    a label, a score or (word, tag) pairs."""
    raise NotImplementedError

  def label_list(self, train, evals):
    """The label vocabulary from `train`; `evals` ({path: records}) may hold no other."""
    raise NotImplementedError

  def texts_of(self, records):
    """Text for training a vocabulary from scratch."""
    raise NotImplementedError

  def encode(self, records, tokenizer):
    """(arrays with batch_spec's keys (plus host-only ones), number truncated)."""
    raise NotImplementedError

  def host_metrics(self, predictions, dev):
    raise NotImplementedError

  def _sums(self, logits, batch):
    """loss_sum, correct_sum, weight_sum of a batch's logits (see losses.py)."""
    raise NotImplementedError

  def _predictions(self, logits):
    """What is predicted from the logits (a class id, a score, a tag id per position)."""
    raise NotImplementedError

  # --- shared: the model, its loss and its cost -------------------------------------------
  def model_inputs(self, batch):
    return batch["input_ids"], batch["token_type_ids"], batch["attention_mask"]

  def loss_and_sums(self, model, params, batch, *, deterministic, rngs=None,
                    denominators=None):
    logits = model.apply({"params": params}, *self.model_inputs(batch),
                         deterministic=deterministic, rngs=rngs)
    sums = self._sums(logits, batch)
    den = sums["weight_sum"] if denominators is None else denominators
    return sums["loss_sum"] / jnp.maximum(den, 1.0), sums

  def eval_outputs(self, model, params, batch):
    logits = model.apply({"params": params}, *self.model_inputs(batch),
                         deterministic=True)
    return self._sums(logits, batch), self._predictions(logits)

  def predict(self, model, params, batch):
    logits = model.apply({"params": params}, *self.model_inputs(batch), deterministic=True)
    return self._predictions(logits)

  def predict_arrays(self, model, params, arrays, *, batch_size=64):
    """Predictions for encoded examples (encode_unlabelled's arrays), as evaluation
    makes them: `prelm predict` and notebooks (analysis.Run.predict) label with this.

    Returns:
      numpy predictions, one row per example (decode_predictions reads them).
    """
    spec = self.batch_spec()
    inputs = {k: v for k, v in arrays.items() if k in spec}
    predict = jax.jit(lambda p, b: self.predict(model, p, b))
    predictions = np.concatenate([
        np.asarray(predict(params, {k: jnp.asarray(v) for k, v in batch.items()}))
        for batch in array_batches.eval_batches(inputs, batch_size=batch_size)])
    return predictions[:len(arrays["input_ids"])]  # the last batch's padding rows go

  def analytic_flops(self, num_params):
    """6 * N * tokens (an encoder plus a small head: no better count is needed)."""
    tokens = self.config.train.batch_size * self.config.data.max_seq_len
    return 6 * num_params * tokens, 6 * num_params * tokens

  def write_predictions(self, path, predictions, dev):
    raise NotImplementedError

  # --- shared ---------------------------------------------------------------------------
  def _path(self, key):
    path = self.config.data[key]
    if not path:
      raise errors.ConfigError(f"config.data.{key} is not set: pass "
                               f"--config.data.{key}=FILE (or tfds:NAME:SPLIT, a "
                               "prepared TFDS dataset, e.g. tfds:glue/sst2:train)")
    return path

  def attach_run(self, workdir):
    """For a finished run (notebooks, `prelm predict`): its label list."""
    path = os.path.join(workdir, workdir_lib.LABELS_FILE)
    if os.path.exists(path):
      with open(path, encoding="utf-8") as f:
        self.labels = f.read().split("\n")[:-1]

  def prepare_data(self, wd):
    data = self.config.data
    train = self._subset(self.read(self._path("train_path")))
    evals = {"dev": self.read(self._path("dev_path"))}
    if data.test_path:
      evals["test"] = self.read(data.test_path)
    self.labels = self.label_list(
        train, {data[f"{name}_path"]: records for name, records in evals.items()})
    saved = os.path.join(wd.path, workdir_lib.LABELS_FILE)
    if os.path.exists(saved) and wd.has_checkpoints:
      with open(saved, encoding="utf-8") as f:
        if f.read().split("\n")[:-1] != self.labels:
          raise errors.DataError(
              f"the labels of {self.config.data.train_path} differ from those the run in "
              f"{wd.path} was trained with ({saved}); use the same files, or a new --workdir")
    path = wd.file(workdir_lib.VOCAB_FILE)
    if workdir_lib.vocab_belongs_to_run(wd, self.config.to_dict()):
      tokenizer, is_new = tokenizer_lib.load_wordpiece(
          path, self.config.data.lowercase), False
    elif self.config.init_from:
      tokenizer, is_new = tokenizer_lib.load_wordpiece(
          os.path.join(self.config.init_from, workdir_lib.VOCAB_FILE),
          self.config.data.lowercase), True
    else:
      data = self.config.data
      tokenizer, is_new = vocabulary.load_or_train(
          data, self.config.to_dict(), wd, lambda: tokenizer_lib.train_wordpiece(
              self.texts_of(train), data.vocab_size, data.lowercase))
    return base.PreparedData(tokenizer, is_new, {"train": train, **evals},
                             files={workdir_lib.LABELS_FILE: "".join(l + "\n" for l in self.labels)})

  def _subset(self, train):
    """config.data.train_examples records of `train` (0: all), drawn at random with
    data.train_subset_seed and kept in file order: the same subset for every run
    seed, so that runs differ only in init and batch order."""
    wanted = self.config.data.train_examples
    if not wanted:
      return train
    if wanted > len(train):
      raise errors.ConfigError(
          f"config.data.train_examples={wanted} exceeds the {len(train)} examples of "
          f"{self.config.data.train_path}; lower it, or 0 for all")
    rng = np.random.default_rng(self.config.data.train_subset_seed)
    return [train[i] for i in sorted(rng.permutation(len(train))[:wanted])]

  def num_steps(self, prepared):
    """config.train.num_epochs (> 0) in steps, rounded up; None: num_steps as given."""
    epochs = self.config.train.get("num_epochs", 0)
    if not epochs:
      return None
    per_epoch = math.ceil(len(prepared.inputs["train"]) / self.config.train.batch_size)
    return max(1, math.ceil(epochs * per_epoch)), per_epoch

  def pipelines(self, prepared, *, process_index, process_count):
    config, inputs = self.config, prepared.inputs
    spec = self.batch_spec()
    train_arrays, _ = self.encode(inputs["train"], prepared.tokenizer)
    device = lambda arrays: {k: v for k, v in arrays.items() if k in spec}
    process = dict(process_index=process_index, process_count=process_count)
    train = array_batches.ArrayBatches(device(train_arrays),
                                       batch_size=config.train.batch_size,
                                       seed=config.seed, **process)
    # Eval sets by the split name metrics.jsonl uses: "eval" (dev) and "test".
    self.eval_data, eval_sets = {}, {}
    for split, name in (("eval", "dev"), ("test", "test")):
      if name in inputs:
        arrays, _ = self.encode(inputs[name], prepared.tokenizer)
        self.eval_data[split] = (inputs[name], arrays)
        eval_sets[split] = array_batches.eval_batches(
            device(arrays), batch_size=config.train.eval_batch_size, **process)
    self.dev = self.eval_data["eval"]
    return base.Pipelines(train, eval_sets)

  def eval_metrics(self, summary, predictions, split="eval"):
    """The summary plus the metrics that need every prediction of the eval set."""
    records, _ = self.eval_data[split]
    return {**summary, **self.host_metrics(predictions[:len(records)],
                                           self.eval_data[split])}

  def summary_lines(self, result):
    m = result.final_metrics
    shown = lambda metrics: ", ".join(f"{k} {metrics[k]:.4f}" for k in self.reported_metrics
                                      if k in metrics)
    lines = [f"Dev after {m['step']} steps ({self.config.data.dev_path}): {shown(m)}",
             f"Predictions: {result.workdir}/{workdir_lib.PREDICTIONS_FILE}"]
    if "test" in m:
      test = m["test"]
      lines += [f"Test with the best dev evaluation's params (step {test['step']}, "
                f"{self.config.data.test_path}): {shown(test)}",
                f"Predictions: {result.workdir}/{workdir_lib.TEST_PREDICTIONS_FILE}"]
    return lines

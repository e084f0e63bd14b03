"""Notebook helpers: a finished (or running) run's params, metrics and what its model does.

  run = analysis.load_run("runs/bert_tiny_pydocs")
  run.metrics                      # metrics.jsonl as a DataFrame
  run.fill_mask("the [MASK] statement")
  run.encode(["a text", "another"]).pooled
  run.attention_maps("a text")     # [layers, heads, T, T], tokens
  run.nearest_tokens("list")
  run.predict(["a review"])        # fine-tuned runs: labels, scores or word tags

Plots of runs are in plots.py. Loading reads the params alone (never the optimizer
state) and puts them on this process's devices, whatever mesh the run trained on.
"""
import dataclasses
import json
import os
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from prelm_jax import checkpointing
from prelm_jax import errors
from prelm_jax import library_logs
from prelm_jax import metrics as metrics_lib
from prelm_jax import optim
from prelm_jax import representations
from prelm_jax import sharding
from prelm_jax import state as state_lib
from prelm_jax import tasks
from prelm_jax import workdir as workdir_lib
from prelm_jax.data import tokenizer as tokenizer_lib
from prelm_jax.tasks import finetune

MASK = "[MASK]"


def encode_with_masks(tokenizer, text):
  """[CLS] text [SEP] with every literal "[MASK]" turned into the mask token id."""
  ids = [tokenizer.cls_id]
  pieces = text.split(MASK)
  for i, piece in enumerate(pieces):
    if piece.strip():
      ids.extend(tokenizer.encode_lines([piece])[0])
    if i < len(pieces) - 1:
      ids.append(tokenizer.mask_id)
  ids.append(tokenizer.sep_id)
  return ids


def fill_mask(model, params, tokenizer, text, top_k=5):
  """Top-k tokens for each [MASK] in `text`: a list (one per mask) of (token, prob)."""
  ids = encode_with_masks(tokenizer, text)
  positions = [i for i, t in enumerate(ids) if t == tokenizer.mask_id]
  if not positions:
    raise errors.DataError(f"no {MASK} in {text!r}: write {MASK} where a word should be "
                           "guessed")
  input_ids = jnp.asarray([ids], jnp.int32)
  mlm_logits, _ = model.apply(
      {"params": params}, input_ids, jnp.zeros_like(input_ids), jnp.ones_like(input_ids),
      jnp.asarray([positions], jnp.int32), deterministic=True)
  probs = np.asarray(jax.nn.softmax(mlm_logits[0].astype(jnp.float32), axis=-1))
  out = []
  for row in probs:
    best = np.argsort(-row)[:top_k]
    out.append([(tokenizer.id_to_token(int(i)), float(row[i])) for i in best])
  return out


@dataclasses.dataclass(repr=False, eq=False)  # params are arrays: no field-wise ==
class Run:
  """A run loaded by load_run; unpacks as `config, model, params, tokenizer = run`.

  Attributes:
    config: config.json (the run's config, its mesh included).
    model: the flax module (BertForPreTraining, or a fine-tuning model).
    params: the params of checkpoint `step`, on the devices load_run was given.
    tokenizer: the run's WordPiece (vocab.txt).
    task: the run's Task (tasks/); `task.name` is pretrain, classify or tag.
    workdir: the run directory.
    step: the step the params are from.
  """
  config: ml_collections.ConfigDict
  model: nn.Module
  params: Any
  tokenizer: tokenizer_lib.WordPiece
  task: Any
  workdir: str
  step: int

  def __iter__(self):
    # What load_run returned before it returned a Run: the tuple unpacking keeps working.
    return iter((self.config, self.model, self.params, self.tokenizer))

  def __repr__(self):
    return (f"Run({self.workdir!r}, task {self.task.name}, step {self.step}, "
            f"checkpoints {list(self.steps)})")

  @property
  def steps(self):
    """The steps of the run's complete checkpoints, read now (a live run adds some)."""
    return workdir_lib.checkpoint_steps(self.workdir)

  @property
  def metrics(self):
    """metrics.jsonl as a pandas DataFrame (columns step, split and the metrics), read now."""
    return metrics_lib.read_table(self.workdir)

  def fill_mask(self, text, top_k=5):
    """Top-k tokens for each [MASK] in `text`: a list (one per mask) of (token, prob)."""
    if self.task.name != "pretrain":
      raise errors.PrelmError(f"{self.workdir} is a {self.task.name!r} run: its model has no "
                              "MLM head to fill in [MASK]; load the pre-training run it "
                              "started from (config.init_from)")
    return fill_mask(self.model, self.params, self.tokenizer, text, top_k)

  def encode(self, texts, *, layer=-1, batch_size=64):
    """representations.Encoded of a string or a list of strings / (a, b) pairs: pooled
    [N, H], and per text its tokens and their vectors [T, H] (padding stripped)."""
    return representations.encode(self.model, self.params, self.tokenizer, texts,
                                  max_seq_len=self.config.data.max_seq_len, layer=layer,
                                  batch_size=batch_size)

  def attention_maps(self, text):
    """(float32 [layers, heads, T, T], the T tokens) of one text or (a, b) pair."""
    return representations.attention_maps(self.model, self.params, self.tokenizer, text,
                                          max_seq_len=self.config.data.max_seq_len)

  def nearest_tokens(self, token, k=10):
    """[(token, cosine)] of the k nearest word embeddings (itself and specials left out)."""
    return representations.nearest_tokens(self.model, self.params, self.tokenizer, token, k)

  def predict(self, texts, *, batch_size=64):
    """A fine-tuned run's predictions, as `prelm predict` makes them.

    Args:
      texts: a list of strings, or of (a, b) pairs for a pair run (rte, stsb); for a
        tagging run, strings (split into words on whitespace) or lists of words.
      batch_size: examples per forward pass.

    Returns:
      One item per text: its label (classification), score (regression) or list of
      (word, tag) pairs (tagging).
    """
    if not isinstance(self.task, finetune.FinetuneTask):
      raise errors.PrelmError(f"{self.workdir} is a {self.task.name!r} run: predict needs a "
                              "fine-tuned one (task classify or tag); for a pre-trained "
                              "model, see fill_mask")
    records = self.task.records_from_texts([texts] if isinstance(texts, str) else texts)
    if not records:
      return []
    arrays = self.task.encode_unlabelled(records, self.tokenizer)
    predictions = self.task.predict_arrays(self.model, self.params, arrays,
                                           batch_size=batch_size)
    return self.task.decode_predictions(predictions, (records, arrays))


def _read_config(workdir):
  """config.json of a run directory, or a one-line error saying what is missing."""
  path = os.path.join(workdir, workdir_lib.CONFIG_FILE)
  if not os.path.isfile(path):
    missing = ("does not exist" if not os.path.isdir(workdir)
               else f"has no {workdir_lib.CONFIG_FILE}")
    raise workdir_lib.WorkdirError(
        f"{workdir} is not a prelm run: it {missing}; pass the --workdir of a `prelm train` "
        "run (e.g. runs/bert_tiny_pydocs after `make demo`)")
  try:
    with open(path) as f:
      return ml_collections.ConfigDict(json.load(f))
  except (OSError, ValueError) as e:
    raise workdir_lib.WorkdirError(f"{path} is unreadable ({e}); is {workdir} a prelm "
                                   "run?") from None


@library_logs.quiet()  # orbax warns that a read-only manager is read-only
def load_run(workdir, step=None, *, best=False, devices=None):
  """A run's config, model, params and tokenizer, restored onto this process's devices.

  Works on a laptop for a run trained on any mesh: orbax restores onto the target
  shardings given here and reads the params alone (not the optimizer state). Prints
  nothing on success.

  Args:
    workdir: the run directory (`prelm train --workdir`).
    step: the checkpoint to read; None: the latest.
    best: a fine-tuned run's best evaluation's params (<workdir>/best) when it kept
      them (else the checkpoint as without it).
    devices: where the params go: None, one device (jax.local_devices()[0]); a list,
      a copy on each (replicated, so each can run a batch of its own).

  Returns:
    A Run (which also unpacks as `config, model, params, tokenizer`).

  Raises:
    WorkdirError: no run there (no config.json), no checkpoint, or no such step.
  """
  workdir = os.path.abspath(os.fspath(workdir))  # orbax takes absolute paths only
  config = _read_config(workdir)
  steps = workdir_lib.checkpoint_steps(workdir)
  checkpoints = os.path.join(workdir, workdir_lib.CHECKPOINTS_DIR)
  if not steps:
    raise workdir_lib.WorkdirError(
        f"{workdir} has no checkpoint yet ({checkpoints} is empty or missing); let "
        "`prelm train` run until it saves one (config.train.checkpoint_every)")
  if step is not None and step not in steps:
    raise workdir_lib.WorkdirError(f"{workdir} has no checkpoint at step {step}; it has "
                                   f"{list(steps)}")
  step = steps[-1] if step is None else step
  tokenizer = tokenizer_lib.load_wordpiece(os.path.join(workdir, workdir_lib.VOCAB_FILE),
                                           config.data.lowercase)
  task = tasks.get(config)
  task.attach_run(workdir)
  model = task.build_model(tokenizer.vocab_size)
  tx, _ = optim.make_optimizer(config.optim, config.train.num_steps, config.model.num_layers)
  devices = jax.local_devices()[:1] if devices is None else list(devices)
  # A mesh of our own, not the run's: data-parallel over `devices`, so every weight is
  # replicated and no dimension need divide the device count.
  mesh = sharding.create_mesh({"data": len(devices), "fsdp": 1, "tensor": 1}, devices)
  abstract, _, _ = state_lib.abstract_state_and_shardings(task, model, tx, mesh)
  best_dir = os.path.join(workdir, workdir_lib.BEST_DIR)
  if best and os.path.isdir(best_dir) and os.listdir(best_dir):
    best_mngr = ocp.CheckpointManager(best_dir, options=ocp.CheckpointManagerOptions(
        read_only=True))
    step = best_mngr.latest_step()
    params = best_mngr.restore(step, args=ocp.args.StandardRestore(abstract.params))
  else:
    mngr = checkpointing.manager(checkpoints, config.train.keep_checkpoints, read_only=True)
    params = checkpointing.restore_params(mngr, step, abstract.params)
  return Run(config, model, params, tokenizer, task, workdir, step)

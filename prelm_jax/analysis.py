"""Notebook helpers: load a run's model on one CPU device, fill in [MASK]s."""
import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from prelm_jax import checkpointing
from prelm_jax import library_logs
from prelm_jax import optim
from prelm_jax import sharding
from prelm_jax import state as state_lib
from prelm_jax import tasks
from prelm_jax import workdir as workdir_lib
from prelm_jax.data import tokenizer as tokenizer_lib

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
    raise ValueError(f"no {MASK} in {text!r}")
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


@library_logs.quiet()  # orbax warns that a read-only manager is read-only
def load_run(workdir, step=None, *, best=False):
  """(config, model, params, tokenizer) of a run, restored onto one local device.

  Works on a laptop for a run trained on any mesh: orbax restores onto the target
  shardings given here, a one-device mesh, and reads the params alone (not the
  optimizer state). With best=True, a fine-tuned run's best evaluation's params
  (<workdir>/best) are read when there are any. Prints nothing on success.
  """
  with open(os.path.join(workdir, workdir_lib.CONFIG_FILE)) as f:
    config = ml_collections.ConfigDict(json.load(f))
  tokenizer = tokenizer_lib.load_wordpiece(os.path.join(workdir, workdir_lib.VOCAB_FILE),
                                           config.data.lowercase)
  task = tasks.get(config)
  task.attach_run(workdir)
  model = task.build_model(tokenizer.vocab_size)
  tx, _ = optim.make_optimizer(config.optim, config.train.num_steps, config.model.num_layers)
  config.mesh.update(data=1, fsdp=1, tensor=1, dcn_data=1, dcn_fsdp=1, dcn_tensor=1)
  mesh = sharding.create_mesh(config.mesh, devices=jax.local_devices()[:1])
  checkpoints = os.path.join(workdir, workdir_lib.CHECKPOINTS_DIR)
  mngr = checkpointing.manager(checkpoints, config.train.keep_checkpoints, read_only=True)
  step = mngr.latest_step() if step is None else step
  if step is None:
    raise FileNotFoundError(f"no checkpoint in {checkpoints}")
  abstract, _, _ = state_lib.abstract_state_and_shardings(task, model, tx, mesh)
  best_dir = os.path.join(workdir, workdir_lib.BEST_DIR)
  if best and os.path.isdir(best_dir) and os.listdir(best_dir):
    best_mngr = ocp.CheckpointManager(best_dir, options=ocp.CheckpointManagerOptions(
        read_only=True))
    params = best_mngr.restore(best_mngr.latest_step(),
                               args=ocp.args.StandardRestore(abstract.params))
  else:
    params = checkpointing.restore_params(mngr, step, abstract.params)
  return config, model, params, tokenizer

"""A converted model written as prelm writes its own runs, and a new directory for it.

An imported run holds what `prelm train` leaves (config.json, vocab.txt, checkpoints/0
with params, a fresh optimizer state, the dropout key and meta), so `prelm train`
resumes it from step 0, fine-tuning's config.init_from and analysis.load_run read it;
plus imported_from.json (where it came from) and experiment.py (the --config that
continues it). Both directions write into a hidden sibling directory that is renamed
once complete: a failed conversion leaves nothing half-written.
"""
import contextlib
import os
import shutil

import flax.linen as nn
import jax
import ml_collections

from prelm_jax import checkpointing
from prelm_jax import jsonio
from prelm_jax import library_logs
from prelm_jax import optim
from prelm_jax import sharding
from prelm_jax import state as state_lib
from prelm_jax import tasks
from prelm_jax import workdir as workdir_lib
from prelm_jax.interop import InteropError

IMPORTED_FROM_FILE = "imported_from.json"
EXPERIMENT_FILE = "experiment.py"
# config.json is the run's config at any time (a resumed run with other settings
# replaces it after its first checkpoint), so reading it keeps the two in step.
EXPERIMENT_TEXT = '''"""The config of the run in this directory (config.json beside this
file), which `prelm import-hf` wrote. Continue pre-training it (from its step 0 to
config.train.num_steps; overrides as usual):

  prelm train --config {workdir}/experiment.py --workdir {workdir}
"""
import json
import pathlib

import ml_collections


def get_config(arg=None):
  del arg
  text = (pathlib.Path(__file__).parent / "config.json").read_text()
  return ml_collections.ConfigDict(json.loads(text))
'''


def check_new_directory(path, what):
  """The absolute path of `path`, which must not exist or be an empty directory."""
  path = os.path.abspath(os.path.expanduser(path))
  if os.path.isdir(path) and os.listdir(path):
    held = sorted(os.listdir(path))
    shown = ", ".join(held[:4]) + (", ..." if len(held) > 4 else "")
    if {"model.safetensors", "pytorch_model.bin"} & set(held):
      run = " a HuggingFace checkpoint"  # its config.json is HF's, not a run's
    else:
      run = " a prelm run" if workdir_lib.CONFIG_FILE in held else ""
    raise InteropError(f"{what} {path} already holds{run} ({shown}); nothing is "
                       "overwritten: pass a new directory")
  if os.path.exists(path) and not os.path.isdir(path):
    raise InteropError(f"{what} {path} is a file; pass a new directory")
  return path


@contextlib.contextmanager
def staged(path):
  """Yields a hidden directory beside `path` that becomes `path` when the block ends
  without an error (and is removed when it does not)."""
  parent = os.path.dirname(path)
  os.makedirs(parent, exist_ok=True)
  staging = os.path.join(parent, f".{os.path.basename(path)}.partial-{os.getpid()}")
  shutil.rmtree(staging, ignore_errors=True)
  os.makedirs(staging)
  try:
    yield staging
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise
  if os.path.isdir(path):
    os.rmdir(path)  # empty: checked by check_new_directory
  os.rename(staging, path)


def one_device_mesh(config):
  mesh_cfg = ml_collections.ConfigDict(config.mesh.to_dict())
  mesh_cfg.update(data=1, fsdp=1, tensor=1, dcn_data=1, dcn_fsdp=1, dcn_tensor=1)
  return sharding.create_mesh(mesh_cfg, devices=jax.local_devices()[:1])


def initial_state(config, vocab_size):
  """(state, its shardings) of a new pre-training run of `config` on one local device,
  initialised exactly as `prelm train` would (config.seed)."""
  task = tasks.get(config)
  model = task.build_model(vocab_size)
  tx, _ = optim.make_optimizer(config.optim, config.train.num_steps,
                               config.model.num_layers)
  mesh = one_device_mesh(config)
  with jax.set_mesh(mesh), nn.logical_axis_rules(sharding.config_rules(config)):
    _, shardings, init = state_lib.abstract_state_and_shardings(task, model, tx, mesh)
    state = jax.jit(lambda rng: nn.unbox(init(rng)), out_shardings=shardings)(
        jax.random.PRNGKey(config.seed))
  return state, shardings


@library_logs.quiet()
def write_run(directory, config, vocab_text, state, vocab_size, provenance):
  """Writes a run holding `state` as its step-0 checkpoint into `directory` (exists)."""
  jsonio.write_json(os.path.join(directory, workdir_lib.CONFIG_FILE), config.to_dict())
  with open(os.path.join(directory, workdir_lib.VOCAB_FILE), "w", encoding="utf-8") as f:
    f.write(vocab_text)
  mngr = checkpointing.manager(os.path.join(directory, workdir_lib.CHECKPOINTS_DIR),
                               config.train.keep_checkpoints)
  try:
    checkpointing.save(mngr, state, data_position=0, vocab_size=vocab_size)
    mngr.wait_until_finished()
  finally:
    mngr.close()
  jsonio.write_json(os.path.join(directory, IMPORTED_FROM_FILE), provenance)
  with open(os.path.join(directory, EXPERIMENT_FILE), "w", encoding="utf-8") as f:
    f.write(EXPERIMENT_TEXT.format(workdir=provenance["workdir"]))

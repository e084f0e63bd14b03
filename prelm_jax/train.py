"""run(config, workdir): pre-train with MLM + NSP on a device mesh, resuming if possible."""
import dataclasses
import functools
import math
import os
import sys
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
from tqdm import tqdm

from prelm_jax import checkpoint_guard
from prelm_jax import checkpointing
from prelm_jax import distributed
from prelm_jax import metrics as metrics_lib
from prelm_jax import nonfinite
from prelm_jax import optim
from prelm_jax import preemption
from prelm_jax import sharding
from prelm_jax import train_step as step_lib
from prelm_jax import workdir as workdir_lib
from prelm_jax.data import corpus
from prelm_jax.data import pretrain
from prelm_jax.data import tokenizer as tokenizer_lib
from prelm_jax.model import pretraining

FINAL_METRICS_FILE = "final_metrics.json"


@dataclasses.dataclass
class RunResult:
  final_metrics: dict   # the last evaluation, as in final_metrics.json
  state: step_lib.TrainState
  model: nn.Module
  tokenizer: tokenizer_lib.WordPiece
  workdir: str


def say(message):
  """A line for the person at the console (process 0 only)."""
  if jax.process_index() == 0:
    tqdm.write(message)


class ConfigError(ValueError):
  """A config that cannot run, found before any expensive work."""


def check_config(config, mesh):
  """Raises ConfigError for settings that would fail later, after minutes of work."""
  if config.data.max_seq_len > config.model.max_position_embeddings:
    raise ConfigError(
        f"config.data.max_seq_len={config.data.max_seq_len} exceeds "
        f"config.model.max_position_embeddings={config.model.max_position_embeddings}; "
        "lower the first or raise the second")
  sharding.config_rules(config, mesh)  # a rule naming a missing mesh axis: MeshError
  try:
    nonfinite.check_policy(config.train)
  except ValueError as e:
    raise ConfigError(str(e)) from None
  dp = sharding.data_parallel_size(mesh)
  for name in ("batch_size", "eval_batch_size"):
    size = config.train[name]
    for divisor, what in ((dp, "the data-parallel size (mesh data x fsdp)"),
                          (jax.process_count(), "the number of processes")):
      if size % divisor:
        raise ConfigError(
            f"config.train.{name}={size} is not divisible by {what} = {divisor}; "
            f"use a multiple of {divisor}, e.g. {math.ceil(size / divisor) * divisor}")
  accum = config.train.grad_accum_steps
  if accum < 1 or config.train.batch_size % (accum * dp):
    raise ConfigError(
        f"config.train.batch_size={config.train.batch_size} does not split into "
        f"grad_accum_steps={accum} micro-batches that are each a multiple of the "
        f"data-parallel size {dp}; use grad_accum_steps >= 1 and a batch_size that is a "
        f"multiple of {max(accum, 1) * dp}")


def dummy_inputs(data_cfg):
  ids = jnp.zeros((1, data_cfg.max_seq_len), jnp.int32)
  positions = jnp.zeros((1, data_cfg.max_predictions_per_seq), jnp.int32)
  return ids, ids, ids, positions


def init_state_boxed(rng, *, model, tx, data_cfg):
  """The initial TrainState with nn.Partitioned leaves (they carry the logical names)."""
  params_rng, dropout_rng = jax.random.split(rng)
  params = model.init(params_rng, *dummy_inputs(data_cfg), deterministic=True)["params"]
  return step_lib.TrainState(step=jnp.zeros((), jnp.int32), params=params,
                             opt_state=tx.init(params), rng=dropout_rng)


def _unbox_abstract(tree):
  """nn.unbox for shapes only (nn.unbox would add sharding constraints, which need arrays)."""
  is_box = lambda x: isinstance(x, nn.Partitioned)
  return jax.tree.map(lambda x: x.value if is_box(x) else x, tree, is_leaf=is_box)


def abstract_state_and_shardings(model, tx, config, mesh):
  """(abstract unboxed state with shardings, state shardings) without allocating anything."""
  init = functools.partial(init_state_boxed, model=model, tx=tx, data_cfg=config.data)
  abstract_boxed = jax.eval_shape(init, jax.random.PRNGKey(config.seed))
  shardings = sharding.logical_shardings(abstract_boxed, mesh,
                                         sharding.config_rules(config))
  abstract = checkpointing.abstract_like(_unbox_abstract(abstract_boxed), shardings)
  return abstract, shardings, init


def jit_train_step(config, model, tx, schedule, state_shardings, mesh):
  """The jitted train step, state donated; `prelm plan` compiles this same function."""
  return jax.jit(
      functools.partial(step_lib.train_step, model=model, tx=tx, schedule=schedule,
                        grad_accum_steps=config.train.grad_accum_steps,
                        nonfinite_policy=config.train.nonfinite_policy,
                        debug_nan_at_step=config.train.debug_nan_at_step),
      in_shardings=(state_shardings, sharding.batch_sharding(mesh)),
      out_shardings=(state_shardings, None), donate_argnums=0)


def create_or_restore_state(model, tx, config, mesh, mngr):
  """Restore order: the workdir's latest checkpoint, else a fresh sharded init."""
  abstract, shardings, init = abstract_state_and_shardings(model, tx, config, mesh)
  latest = checkpoint_guard.restore_step(mngr, config.train.restore_step)
  if latest is not None:
    say(f"Resuming from the checkpoint at step {latest} in {mngr.directory}")
    if 0 <= config.train.restore_step != latest:
      say(f"(config.train.restore_step={config.train.restore_step} was applied before, see "
          f"{checkpoint_guard.APPLIED_FILE}; delete that file to go back to it again)")
    vocab_path = os.path.join(os.path.dirname(str(mngr.directory)), "vocab.txt")
    state, _ = checkpoint_guard.restore(mngr, latest, abstract, vocab_path)
    if latest == config.train.restore_step:
      moved = checkpoint_guard.set_aside_later_checkpoints(mngr, latest)
      if moved:
        say(f"Moved the later checkpoints {moved} to "
            f"{checkpoint_guard.SET_ASIDE_DIR}/ (kept, not deleted)")
    return state, shardings
  # Created already sharded: each device materialises only its own shards.
  state = jax.jit(lambda rng: nn.unbox(init(rng)), out_shardings=shardings)(
      jax.random.PRNGKey(config.seed))
  return state, shardings


def evaluate(eval_fn, params, eval_batches, mesh):
  totals = None
  for batch in eval_batches:
    sums = eval_fn(params, sharding.global_batch(batch, mesh))
    totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
  return step_lib.summarize(jax.device_get(totals))


def load_data(config, workdir):
  """Documents, the WordPiece vocabulary (trained once per workdir) and both pipelines."""
  data_dir = config.data.tfds_data_dir or None
  # Process 0 prepares the dataset and writes vocab.txt; the others then read them
  # rather than race it for the same paths on a shared filesystem.
  with distributed.process_zero_first("data and vocab"):
    train_texts = corpus.load_documents(config.data.dataset, "train", data_dir)
    eval_texts = corpus.load_documents(config.data.dataset, "validation", data_dir)
    tokenizer = tokenizer_lib.get_or_train(
        os.path.join(workdir, "vocab.txt"), train_texts, config.data.vocab_size,
        config.data.lowercase)
  process = dict(process_index=jax.process_index(), process_count=jax.process_count())
  train_data = pretrain.PretrainData(
      config.data, tokenizer, train_texts, batch_size=config.train.batch_size,
      seed=config.seed, **process)
  eval_batches = pretrain.eval_batches(
      config.data, tokenizer, eval_texts, batch_size=config.train.eval_batch_size,
      seed=config.seed + 1, **process)
  return tokenizer, train_data, eval_batches


def run(config, workdir, *, allow_config_change=False, stop_at=None):
  """Trains `config` in `workdir`, resuming from its latest checkpoint.

  Args:
    config: the experiment's ConfigDict.
    workdir: run directory; created if missing, resumed if it has checkpoints.
    allow_config_change: resume even if the saved model/data config differs.
    stop_at: leave after this step with a checkpoint, as a preempted job would.

  Returns:
    RunResult. Its final_metrics (None when stopped early) are also written to
    <workdir>/final_metrics.json.
  """
  workdir = workdir_lib.prepare(workdir)
  mesh = sharding.create_mesh(config.mesh)
  check_config(config, mesh)
  workdir_lib.check_and_save_config(
      workdir, config.to_dict(), allow_config_change=allow_config_change,
      write=jax.process_index() == 0)

  checkpoint_guard.check_vocab_present(workdir)
  try:
    tokenizer, train_data, eval_batches = load_data(config, workdir)
  except UnicodeDecodeError as e:
    raise ConfigError(f"a corpus or vocab.txt file is not UTF-8 text ({e}); fix or "
                      f"delete it (vocab.txt is in {workdir})") from None
  except ValueError as e:  # empty corpus or split, malformed vocab.txt: already clear
    raise ConfigError(str(e)) from None
  model = pretraining.build_model(config.model, tokenizer.vocab_size)
  num_steps = config.train.num_steps
  end_step = num_steps if stop_at is None else min(stop_at, num_steps)
  tx, schedule = optim.make_optimizer(config.optim, num_steps)
  mngr = checkpointing.manager(os.path.join(workdir, "checkpoints"),
                               config.train.keep_checkpoints)
  writer = metrics_lib.MetricsWriter(workdir)
  final = None
  try:
    with jax.set_mesh(mesh), nn.logical_axis_rules(sharding.config_rules(config)):
      state, state_shardings = create_or_restore_state(model, tx, config, mesh, mngr)
      restored = int(jax.device_get(state.step))  # records past it will be rewritten
      writer.start_at(restored, drop_eval_at_step=restored == num_steps)
      train_fn = jit_train_step(config, model, tx, schedule, state_shardings, mesh)
      eval_fn = jax.jit(functools.partial(step_lib.eval_step, model=model),
                        in_shardings=(state_shardings.params,
                                      sharding.batch_sharding(mesh)))
      evaluate_now = lambda params: evaluate(eval_fn, params, eval_batches, mesh)

      with preemption.Watch(mngr) as watch:
        state = train_loop(config, state, train_fn, evaluate_now, train_data, mesh, mngr,
                           writer, end_step, watch=watch)
      with checkpoint_guard.explain_save_errors(mngr):
        checkpointing.save(mngr, state, data_position=end_step)
      if end_step == num_steps:
        final_eval = evaluate_now(state.params)
        writer.write(end_step, "eval", final_eval)
        final = {"step": end_step, "split": "eval", **final_eval}
  finally:
    with checkpoint_guard.explain_save_errors(mngr):
      mngr.wait_until_finished()
    mngr.close()
    writer.close()
  if final is not None and jax.process_index() == 0:
    metrics_lib.write_json(os.path.join(workdir, FINAL_METRICS_FILE), final)
  return RunResult(final, state, model, tokenizer, workdir)


def train_loop(config, state, train_fn, evaluate_now, train_data, mesh, mngr, writer,
               end_step, watch=None):
  """Steps from state.step to end_step: log every N, evaluate every K, save every M.

  Non-finite values are checked (nonfinite.py) at every log and before every save, so
  a bad state is never saved. `watch` (a preemption.Watch) stops the loop after the
  step a signal arrived in, with a checkpoint: raises preemption.Preempted.
  """
  workdir = os.path.dirname(str(mngr.directory))
  tracker = nonfinite.init_tracker()
  check_nonfinite = lambda done: nonfinite.check(
      tracker, config.train, step=done, workdir=workdir, last_checkpoint=mngr.latest_step())
  start_step = int(jax.device_get(state.step))
  tokens_per_step = config.train.batch_size * config.data.max_seq_len
  sums, window_start, window_steps = None, time.perf_counter(), 0
  batches = train_data.iterate(start_step)
  # In a batch job's log file (no terminal) a bar redrawn 10 times a second would fill
  # it with carriage returns; there it prints at most once every 30 s.
  progress = tqdm(total=config.train.num_steps, initial=start_step, desc="train",
                  unit="step", disable=jax.process_index() != 0, dynamic_ncols=True,
                  mininterval=0.1 if sys.stderr.isatty() else 30.0)
  for step in range(start_step, end_step):
    state, step_sums = train_fn(state, sharding.global_batch(next(batches), mesh))
    # Summed on device; the host waits for values only when it logs.
    sums = step_sums if sums is None else jax.tree.map(jnp.add, sums, step_sums)
    window_steps += 1
    progress.update(1)
    done = step + 1
    tracker = nonfinite.update_tracker(tracker, step_sums, done)

    if done % config.train.log_every == 0 or done == end_step:
      check_nonfinite(done)
      summary = step_lib.summarize(jax.device_get(sums))
      elapsed = time.perf_counter() - window_start
      summary["steps_per_sec"] = window_steps / elapsed
      summary["tokens_per_sec"] = window_steps * tokens_per_step / elapsed
      writer.write(done, "train", summary)
      progress.set_postfix(loss=f"{summary['loss']:.3f}",
                           mlm_acc=f"{summary['mlm_accuracy']:.3f}")
      sums, window_start, window_steps = None, time.perf_counter(), 0
    if done % config.train.eval_every == 0 and done != config.train.num_steps:
      writer.write(done, "eval", evaluate_now(state.params))
    if done % config.train.checkpoint_every == 0:
      check_nonfinite(done)
      with checkpoint_guard.explain_save_errors(mngr):
        checkpointing.save(mngr, state, data_position=done)
    if watch is not None and watch.should_stop(done):
      check_nonfinite(done)
      with checkpoint_guard.explain_save_errors(mngr):
        checkpointing.save(mngr, state, data_position=done)
        mngr.wait_until_finished()  # durable before the process exits
      progress.close()
      say(f"Stopping on {watch.signal_name or 'a preemption notice'} after step {done}")
      raise preemption.Preempted(done, mngr.directory)
  progress.close()
  return state

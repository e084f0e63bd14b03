"""run(config, workdir): train the config's task on a device mesh, resuming if possible.

run() goes through the door before it writes anything: every config value
(validation.py), the workdir (workdir.py), the corpus and the vocabulary are checked
first; only then is the workdir created. Between start-up stages it stops on a
preemption signal (exit 42, nothing to save).
"""
import dataclasses
import itertools
import os
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.experimental import multihost_utils
import numpy as np
from prelm_jax import checkpoint_guard
from prelm_jax import checkpointing
from prelm_jax import distributed
from prelm_jax import errors
from prelm_jax import jsonio
from prelm_jax import metrics as metrics_lib
from prelm_jax import nonfinite
from prelm_jax import optim
from prelm_jax import preemption
from prelm_jax import progress as progress_lib
from prelm_jax import provenance
from prelm_jax import sharding
from prelm_jax import state as state_lib
from prelm_jax import tasks
from prelm_jax import train_step as step_lib
from prelm_jax import validation
from prelm_jax import workdir as workdir_lib
from prelm_jax.data import tokenizer as tokenizer_lib



@dataclasses.dataclass
class RunResult:
  final_metrics: dict   # the last evaluation, as in final_metrics.json
  state: state_lib.TrainState
  model: nn.Module
  tokenizer: tokenizer_lib.WordPiece
  workdir: str
  task: tasks.base.Task


def say(message):
  """A line for the person at the console (process 0 only)."""
  progress_lib.say(message, enabled=jax.process_index() == 0)


def evaluate(task, eval_fn, params, eval_sets, mesh, split="eval"):
  """(metrics, every example's prediction or None) over one eval set."""
  totals, predictions = None, []
  for batch in eval_sets[split]:
    sums, preds = eval_fn(params, sharding.global_batch(batch, mesh))
    totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
    if preds is not None:  # the rows of every process, in global order
      predictions.append(multihost_utils.process_allgather(preds, tiled=True))
  summary = step_lib.summarize(jax.device_get(totals), task)
  if not predictions:
    return summary, None
  predictions = np.concatenate(predictions)
  return task.eval_metrics(summary, predictions, split), predictions


def create_workdir(wd, config, prepared):
  """The first write of a run: the directory, config.json (new runs), vocab.txt and the
  task's own files (e.g. a label list)."""
  workdir_lib.create(wd)
  if jax.process_index() == 0:
    workdir_lib.save_config_if_new(wd, config.to_dict())
    if prepared.vocab_is_new:
      prepared.tokenizer.save(wd.file(workdir_lib.VOCAB_FILE))
    for name, text in prepared.files.items():
      if not os.path.exists(wd.file(name)):
        with open(wd.file(name), "w", encoding="utf-8") as f:
          f.write(text)


def apply_epoch_budget(task, prepared):
  """A budget in epochs becomes config.train.num_steps, with an evaluation per epoch."""
  budget = task.num_steps(prepared)
  if budget is not None:
    task.config.train.num_steps, task.config.train.eval_every = budget


def load_data(task, wd):
  """The task's inputs, vocabulary and pipelines; creates the workdir once they passed.

  Process 0 reads (and on first use prepares) the data, settles the vocabulary and
  creates the workdir first; the other processes then read what it wrote rather than
  race it for the same paths on a shared filesystem.
  """
  with distributed.process_zero_first("data and vocab"):
    prepared = task.prepare_data(wd)
    apply_epoch_budget(task, prepared)
    check_reached_step(task.config, wd)
    preemption.stop_if_requested("reading the data and vocabulary")
    create_workdir(wd, task.config, prepared)
  return prepared.tokenizer, task.pipelines(
      prepared, process_index=jax.process_index(), process_count=jax.process_count())


def check_workdir(config, wd, allow_config_change):
  """Everything about the workdir that can be refused before anything is written."""
  workdir_lib.check_config(wd, config.to_dict(), allow_config_change=allow_config_change)
  checkpoint_guard.check_vocab_present(wd.path)
  check_reached_step(config, wd)


def check_reached_step(config, wd):
  reached = checkpoint_guard.step_to_resume(wd.path, wd.checkpoint_steps,
                                            config.train.restore_step)
  if reached is not None and config.train.num_steps < reached:
    raise errors.ConfigError(
        f"config.train.num_steps={config.train.num_steps} is below step {reached}, which "
        f"{wd.path} has already reached; pass --config.train.num_steps={reached} or more "
        "to go on (or a new --workdir to start over)")


def schedule_change_notice(config, wd, restored):
  """One line when a resumed run's step budget reshapes its learning-rate schedule."""
  saved = (wd.saved_config or {}).get("train", {}).get("num_steps")
  if not restored or saved is None or saved == config.train.num_steps:
    return None
  _, new = optim.make_optimizer(config.optim, config.train.num_steps)
  _, old = optim.make_optimizer(config.optim, saved)
  return (f"config.train.num_steps changed {saved} -> {config.train.num_steps}: the "
          f"learning-rate schedule ({config.optim.decay} decay) now ends at step "
          f"{config.train.num_steps}, so the rate at step {restored} is "
          f"{float(new(restored)):.3g} instead of {float(old(restored)):.3g}")


def banner(experiment, num_params, mesh, wd):
  """The one line a run starts with: what, how big, where it runs, where it writes."""
  devices = jax.devices()
  mesh_text = ", ".join(f"{k}={v}" for k, v in mesh.shape.items())
  state = (f"resuming, checkpoints {list(wd.checkpoint_steps)}" if wd.has_checkpoints
           else "new run")
  return (f"prelm: {experiment or 'experiment'} | {num_params / 1e6:.2f}M params | "
          f"{len(devices)} {devices[0].platform} device{'s' * (len(devices) > 1)}, "
          f"mesh {mesh_text} | workdir {wd.path} ({state})")


def run(config, workdir, *, allow_config_change=False, stop_at=None, experiment=None):
  """Trains `config` in `workdir`, resuming from its latest checkpoint.

  Args:
    config: the experiment's ConfigDict.
    workdir: run directory; created if missing, resumed if it has checkpoints.
    allow_config_change: resume even if the saved model/data config differs.
    stop_at: leave after this step with a checkpoint, as a preempted job would.
    experiment: the experiment's name, for the banner line.

  Returns:
    RunResult. Its final_metrics (None when stopped early) are also written to
    <workdir>/final_metrics.json.

  Raises:
    errors.PrelmError (a subclass naming the problem) before anything is written for
    a bad config, workdir, corpus or vocabulary; preemption.Preempted on a signal.
  """
  with preemption.watching():
    return _run(config, workdir, allow_config_change, stop_at, experiment)


def _run(config, workdir, allow_config_change, stop_at, experiment):
  # The door: nothing is written until load_data has checked the data and vocabulary.
  mesh = sharding.create_mesh(config.mesh)
  task = tasks.get(config, adopt_init_from=True)
  validation.check(config, mesh)
  wd = workdir_lib.inspect(workdir)
  check_workdir(config, wd, allow_config_change)
  preemption.stop_if_requested("checking the config")
  tokenizer, data = load_data(task, wd)
  preemption.stop_if_requested("building the input pipeline")

  model = task.build_model(tokenizer.vocab_size)
  num_steps = config.train.num_steps
  end_step = num_steps if stop_at is None else min(stop_at, num_steps)
  tx, schedule = optim.make_optimizer(config.optim, num_steps, config.model.num_layers)
  mngr = checkpointing.manager(wd.file(workdir_lib.CHECKPOINTS_DIR),
                               config.train.keep_checkpoints)
  writer = metrics_lib.MetricsWriter(wd.path)
  final = best = None
  try:
    with jax.set_mesh(mesh), nn.logical_axis_rules(sharding.config_rules(config)):
      state, state_shardings = state_lib.create_or_restore(task, model, tx, mesh, mngr,
                                                           tokenizer.vocab_size)
      num_params = sum(x.size for x in jax.tree.leaves(state.params))
      say(banner(experiment, num_params, mesh, wd))
      restored = int(jax.device_get(state.step))  # records past it will be rewritten
      if jax.process_index() == 0:  # only now: a start refused by the restore left no trace
        provenance.append(wd.file(provenance.PROVENANCE_FILE),
                          restored if wd.has_checkpoints else None)
      notice = schedule_change_notice(config, wd, restored)
      if notice:
        say(notice)
      preemption.stop_if_requested("creating the model state")
      writer.start_at(restored, drop_eval_at_step=restored == num_steps)
      train_fn = state_lib.jit_train_step(task, model, tx, schedule, state_shardings, mesh)
      eval_fn = state_lib.jit_eval_step(task, model, state_shardings.params, mesh)
      saver = Saver(mngr, wd, config, tokenizer.vocab_size, restored)
      best = checkpointing.BestParams(wd.file(workdir_lib.BEST_DIR), task.best_metric) if (
          task.keeps_best) else None

      def evaluate_now(state):
        """Evaluates, logs, and keeps the params if they are the best so far."""
        done = int(jax.device_get(state.step))
        metrics, predictions = evaluate(task, eval_fn, state.params, data.eval_sets, mesh)
        writer.write(done, "eval", metrics)
        if best is not None:
          best.offer(done, state.params, metrics)
        return metrics, predictions

      state = train_loop(task, state, train_fn, evaluate_now, data.train, mesh, saver,
                         end_step, watch=preemption.Watch(mngr), writer=writer)
      saver.save(state, end_step)
      if end_step == num_steps:
        final_eval, predictions = evaluate_now(state)
        final = {"step": end_step, "split": "eval", **final_eval}
        if predictions is not None and jax.process_index() == 0:
          task.write_predictions(wd.file(workdir_lib.PREDICTIONS_FILE), predictions, task.dev)
        if "test" in data.eval_sets:
          final["test"] = evaluate_test(task, eval_fn, state.params, best, data.eval_sets,
                                        mesh, writer, wd)
  finally:
    with checkpoint_guard.explain_save_errors(mngr):
      mngr.wait_until_finished()
    mngr.close()
    writer.close()
    if best is not None:
      best.close()
  if final is not None and jax.process_index() == 0:
    jsonio.write_json(wd.file(workdir_lib.FINAL_METRICS_FILE), final)
  return RunResult(final, state, model, tokenizer, wd.path, task)


def evaluate_test(task, eval_fn, params, best, eval_sets, mesh, writer, wd):
  """The test set, once at the end, with the params of the best dev evaluation (the
  last params when the task keeps no best): choose on dev, report on test."""
  kept = best.restore(params) if best is not None else None
  step, params = kept if kept else (None, params)
  metrics, predictions = evaluate(task, eval_fn, params, eval_sets, mesh, "test")
  end_step = task.config.train.num_steps
  writer.write(end_step, "test", metrics)
  if predictions is not None and jax.process_index() == 0:
    task.write_predictions(wd.file(workdir_lib.TEST_PREDICTIONS_FILE), predictions,
                           task.eval_data["test"])
  return {"step": end_step if step is None else step, **metrics}


class Saver:
  """Checkpoint saves of one attempt: a full disk explained, and config.json replaced
  by a resumed run's own config once its first checkpoint is complete."""

  def __init__(self, mngr, wd, config, vocab_size, restored_step):
    self.mngr = mngr
    self._wd, self._config, self._vocab_size = wd, config, vocab_size
    self._restored_step = restored_step
    self._config_pending = wd.has_checkpoints

  def save(self, state, step, *, wait=False):
    with checkpoint_guard.explain_save_errors(self.mngr):
      saved = checkpointing.save(self.mngr, state, data_position=step,
                                 vocab_size=self._vocab_size)
      if wait or (saved and self._config_pending):
        self.mngr.wait_until_finished()  # durable before config.json or exit relies on it
    if saved and self._config_pending:
      self._config_pending = False
      if jax.process_index() == 0:
        kept = workdir_lib.replace_config_after_first_save(
            self._wd, self._config.to_dict(), self._restored_step)
        if kept:
          say(f"config.json now describes this run; the config of the checkpoints up to "
              f"step {self._restored_step} is kept as {kept}")


def throughput(sums, steps, elapsed, padded_tokens_per_step):
  """The logged rates of a window of `steps` steps that took `elapsed` seconds.

  tokens_per_sec counts real tokens (the steps' attention_mask sums, `real_tokens` of
  the train step's sums); padded_tokens_per_sec counts every position of every row
  (batch_size * max_seq_len a step), padding included.
  """
  return {"steps_per_sec": steps / elapsed,
          "tokens_per_sec": float(sums["real_tokens"]) / elapsed,
          "padded_tokens_per_sec": steps * padded_tokens_per_step / elapsed}


def train_loop(task, state, train_fn, evaluate_now, train_data, mesh, saver, end_step,
               *, writer, watch=None):
  """Steps from state.step to end_step: log every N, evaluate every K, save every M.

  The step is compiled before the first batch is trained on, so a preemption signal
  during the compile stops the run with nothing trained (and nothing to save).
  Non-finite values are checked (nonfinite.py) at every log and before every save, so
  a bad state is never saved. `watch` (a preemption.Watch) stops the loop after the
  step a signal arrived in, with a checkpoint: raises preemption.Preempted.
  """
  config, mngr = task.config, saver.mngr
  workdir = os.path.dirname(str(mngr.directory))
  tracker = nonfinite.init_tracker()
  check_nonfinite = lambda done: nonfinite.check(
      tracker, config.train, step=done, workdir=workdir, last_checkpoint=mngr.latest_step())
  start_step = int(jax.device_get(state.step))
  tokens_per_step = config.train.batch_size * config.data.max_seq_len  # padding too
  batches = (sharding.global_batch(b, mesh) for b in train_data.iterate(start_step))
  if start_step < end_step:
    say("Compiling the train step...")
    first_batch = next(batches)
    train_fn = train_fn.lower(state, first_batch).compile()
    preemption.stop_if_requested("compiling the train step")
    batches = itertools.chain([first_batch], batches)
  sums, window_start, window_steps = None, time.perf_counter(), 0
  progress = progress_lib.Progress(config.train.num_steps, start_step,
                                   enabled=jax.process_index() == 0)
  input_wait = 0.0  # seconds the loop waited for its next batch in this window
  for step in range(start_step, end_step):
    wait_start = time.perf_counter()
    batch = next(batches)
    input_wait += time.perf_counter() - wait_start
    state, step_sums = train_fn(state, batch)
    # Summed on device; the host waits for values only when it logs.
    sums = step_sums if sums is None else jax.tree.map(jnp.add, sums, step_sums)
    window_steps += 1
    done = step + 1
    tracker = nonfinite.update_tracker(tracker, step_sums, done)

    if done % config.train.log_every == 0 or done == end_step:
      check_nonfinite(done)
      host_sums = jax.device_get(sums)
      summary = step_lib.summarize(host_sums, task)
      elapsed = time.perf_counter() - window_start
      summary.update(throughput(host_sums, window_steps, elapsed, tokens_per_step))
      # > 0.05 means the input pipeline, not the step, sets the pace.
      summary["input_wait_fraction"] = input_wait / elapsed
      writer.write(done, "train", summary)
      progress.set_postfix(**{k: f"{summary[k]:.3f}" for k in task.progress_metrics})
      sums, window_start, window_steps, input_wait = None, time.perf_counter(), 0, 0.0
    progress.update(1)
    if done % config.train.eval_every == 0 and done != config.train.num_steps:
      evaluate_now(state)
    if done % config.train.checkpoint_every == 0:
      check_nonfinite(done)
      saver.save(state, done)
    if watch is not None and watch.should_stop(done):
      check_nonfinite(done)
      saver.save(state, done, wait=True)  # durable before the process exits
      progress.close()
      say(f"Stopping on {watch.signal_name or 'a preemption notice'} after step {done}")
      raise preemption.Preempted(done, mngr.directory)
  progress.close()
  return state

"""Preemption: SIGTERM/SIGINT -> finish the step, save, wait until durable, exit 42.

Schedulers (SLURM, Kubernetes, preemptible TPU VMs) send SIGTERM some seconds before
they kill a job. The loop asks `Watch.should_stop(step)` after every step; once it says
yes, train.py saves a checkpoint at that step, waits for the write to finish and raises
Preempted, which `prelm train` turns into exit code PREEMPTED_EXIT_CODE. Running the
same command again resumes from that checkpoint.

- One process: Python handlers for SIGTERM and SIGINT set a flag. A second signal gets
  the default action (kill / KeyboardInterrupt) for someone who really means it.
- Several processes (jax.distributed initialised): jax's preemption sync manager owns
  SIGTERM (and the TPU maintenance-event notice); it propagates the notice and has all
  processes agree on the step to stop at. `should_stop` asks it through orbax's
  CheckpointManager.reached_preemption, so every process stops at the same step. No
  Python handler is installed there: it would replace jax's, and a Ctrl-C on one host
  cannot be agreed on without a collective, so SIGINT keeps its default.
"""
import signal
import sys
import threading

import jax

# Distinct from errors (1, 2) and from a signal death (128 + n), so that a launcher or
# a retry loop knows to requeue the job: the workdir holds a checkpoint to resume.
PREEMPTED_EXIT_CODE = 42


def exit_on_sigterm_before_training():
  """Single process: a SIGTERM before the loop (corpus, vocabulary, compile) exits 42.

  Nothing needs saving then (the dataset and vocab.txt are written atomically), but the
  exit code must still tell a launcher to requeue. Watch replaces this handler for
  the loop and puts it back after.
  """
  def handle(signum, frame):
    del frame
    print(f"prelm: {signal.Signals(signum).name} before the first step: nothing to save; "
          "run the same command again to resume", file=sys.stderr)
    sys.exit(PREEMPTED_EXIT_CODE)
  if threading.current_thread() is threading.main_thread():
    signal.signal(signal.SIGTERM, handle)


class Preempted(Exception):
  """Training stopped on a preemption signal after saving a checkpoint at `step`."""

  def __init__(self, step, directory):
    super().__init__(f"preempted: checkpoint saved at step {step} in {directory}; run the "
                     "same command again to resume")
    self.step = step


class Watch:
  """Context manager: installs the handlers on entry, restores the old ones on exit."""

  def __init__(self, mngr):
    self._mngr = mngr
    self._requested = None  # the signal's name once one arrived
    self._old = {}
    self._multi = jax.process_count() > 1

  def _handle(self, signum, frame):
    del frame
    self._requested = signal.Signals(signum).name
    self._restore()  # a second signal acts as usual

  def _restore(self):
    for signum, handler in self._old.items():
      signal.signal(signum, handler)
    self._old = {}

  def __enter__(self):
    # signal.signal only works in the main thread; elsewhere (e.g. a notebook worker)
    # the run simply is not preemptible by signal.
    if threading.current_thread() is threading.main_thread():
      signums = () if self._multi else (signal.SIGTERM, signal.SIGINT)
      for signum in signums:
        self._old[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc):
    self._restore()
    return False

  @property
  def signal_name(self):
    return self._requested

  def should_stop(self, step):
    """True once training should stop after `step` (the same step on every process)."""
    if self._multi:
      # Must be called at every step on every process (jax's protocol).
      return bool(self._mngr.reached_preemption(step))
    return self._requested is not None

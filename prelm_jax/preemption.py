"""Preemption: SIGTERM/SIGINT -> finish the step, save, wait until durable, exit 42.

Schedulers (SLURM, Kubernetes, preemptible TPU VMs) send SIGTERM some seconds before
they kill a job. The loop asks `Watch.should_stop(step)` after every step; once it says
yes, train.py saves a checkpoint at that step, waits for the write to finish and raises
Preempted, which `prelm train` turns into exit code PREEMPTED_EXIT_CODE. Running the
same command again resumes from that checkpoint. During start-up (corpus, vocabulary,
state, compile) train.py calls `stop_if_requested` between stages: a signal there ends
the run with the same exit code and nothing saved, before any training step.

- One process: Python handlers for SIGTERM and SIGINT only record the signal; `prelm`
  installs them first thing, so the whole start-up is covered. A second signal gets
  the default action (kill / KeyboardInterrupt) for someone who really means it.
- Several processes (jax.distributed initialised): jax's preemption sync manager owns
  SIGTERM (and the TPU maintenance-event notice); it propagates the notice and has all
  processes agree on the step to stop at. `should_stop` asks it through orbax's
  CheckpointManager.reached_preemption, so every process stops at the same step. No
  Python handler is installed there: it would replace jax's, and a Ctrl-C on one host
  cannot be agreed on without a collective, so SIGINT keeps its default.
"""
import contextlib
import signal
import threading

# jax is imported where it is used: `install` runs before the heavy imports.

# Distinct from errors (1, 2) and from a signal death (128 + n), so that a launcher or
# a retry loop knows to requeue the job: the workdir holds a checkpoint to resume.
PREEMPTED_EXIT_CODE = 42


_requested = None   # the first signal's name, once one arrived
_previous = {}      # signum -> the handler ours replaced, while ours is installed


def _record(signum, frame):
  """The handler: records the signal and nothing else.

  Raising here (sys.exit) would surface at whatever bytecode the main thread is running,
  e.g. inside a callback of XLA's garbage collector, where it is swallowed or crashes
  the interpreter. The run acts on the record at its next safe point instead.
  """
  del frame
  global _requested
  _requested = signal.Signals(signum).name
  uninstall()  # a second signal acts as usual (kills, or KeyboardInterrupt)


def uninstall():
  """Puts the handlers back that `install` replaced."""
  for signum, handler in _previous.items():
    signal.signal(signum, handler)
  _previous.clear()


def install():
  """From now on SIGTERM and SIGINT are recorded, not acted on (one process only).

  Cheap and jax-free, so `prelm` calls it before its heavy imports. A multi-process
  run must `uninstall` before jax.distributed.initialize: jax's preemption sync
  manager then owns SIGTERM.

  Returns:
    True if this call installed the handlers (it then owns them: see `watching`);
    False if they were installed already, a signal was already recorded (the first
    signal puts the old handlers back), or this is not the main thread.
  """
  if (_previous or _requested is not None
      or threading.current_thread() is not threading.main_thread()):
    return False
  for signum in (signal.SIGTERM, signal.SIGINT):
    _previous[signum] = signal.signal(signum, _record)
  return True


def requested():
  """The name of the signal received since `install`, or None."""
  return _requested


def stop_if_requested(doing):
  """A safe point of start-up: raises Preempted (nothing saved) if a signal arrived.

  Args:
    doing: what start-up just did, for the message (e.g. "reading the corpus").
  """
  if _requested is not None:
    raise Preempted(None, None, signal_name=_requested, doing=doing)


@contextlib.contextmanager
def watching():
  """Installs the handlers for a block (train.run) unless `prelm` did at start-up.

  Handlers it installed are removed, and a signal they recorded forgotten, at the end
  of the block, so a later run in the same process (a notebook, a test) starts clean.
  """
  import jax  # pylint: disable=g-import-not-at-top
  global _requested
  owned = jax.process_count() == 1 and install()
  try:
    yield
  finally:
    if owned:
      uninstall()
      _requested = None


class Preempted(Exception):
  """Training stopped on a preemption signal: after saving a checkpoint at `step`, or
  during start-up (`step` None), when there was nothing to save."""

  def __init__(self, step, directory, *, signal_name=None, doing=None):
    if step is None:
      message = (f"{signal_name} during start-up (after {doing}): nothing to save; run "
                 "the same command again to start")
    else:
      message = (f"preempted: checkpoint saved at step {step} in {directory}; run the "
                 "same command again to resume")
    super().__init__(message)
    self.step = step


class Watch:
  """Asks, after every step, whether to stop there (the same step on every process)."""

  def __init__(self, mngr):
    import jax  # pylint: disable=g-import-not-at-top
    self._mngr = mngr
    self._multi = jax.process_count() > 1

  @property
  def signal_name(self):
    return _requested

  def should_stop(self, step):
    """True once training should stop after `step`."""
    if self._multi:
      # Must be called at every step on every process (jax's protocol).
      return bool(self._mngr.reached_preemption(step))
    return _requested is not None

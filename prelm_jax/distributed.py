"""Multi-process runs: when to call jax.distributed.initialize, and with what.

One `prelm train` process runs per host (or per group of devices). They meet through
jax.distributed before anything touches a device; after that, jax.devices() is the
global device list and the mesh, batches and checkpoints span every process.

  --distributed=auto (default): initialise when the run is evidently multi-process:
      explicit --coordinator_address/--num_processes/--process_id, an `srun` step with
      more than one task, or a multi-host TPU environment (GKE or multi-slice vars).
  --distributed=on: always initialise; without flags jax detects the cluster itself
      (SLURM, Cloud TPU VM metadata, Open MPI, Kubernetes). launch/tpu passes this.
  --distributed=off: never (one process, its local devices).
"""
import contextlib
import os
import socket
import time

import jax
from jax.experimental import multihost_utils

from prelm_jax import errors

MODES = ("auto", "on", "off")


class DistributedError(errors.PrelmError):
  """Distributed flags or environment that cannot start a run."""


def _count(value):
  """A host list's length (comma-separated), or 0 when unset."""
  return len([h for h in (value or "").split(",") if h.strip()])


def detected_cluster(environ):
  """The multi-process environment this process runs in, or None.

  Args:
    environ: the environment variables (os.environ).

  Returns:
    "slurm" inside an srun step of more than one task, "tpu" on a multi-host TPU
    (GKE worker lists or a multi-slice megascale set-up), else None. A batch script
    itself (SLURM_NTASKS set, no step) is one process and so returns None.
  """
  if "SLURM_STEP_ID" in environ and int(environ.get("SLURM_STEP_NUM_TASKS", "1")) > 1:
    return "slurm"
  hosts = environ.get("TPU_PROCESS_ADDRESSES") or environ.get("TPU_WORKER_HOSTNAMES")
  if _count(hosts) > 1 or int(environ.get("MEGASCALE_NUM_SLICES", "1")) > 1:
    return "tpu"
  return None


def plan(mode, coordinator_address=None, num_processes=None, process_id=None,
         environ=None):
  """Decides whether and how to call jax.distributed.initialize.

  Args:
    mode: "auto", "on" or "off" (see the module docstring).
    coordinator_address: "host:port" of process 0, or None.
    num_processes: the number of processes, or None.
    process_id: this process's index in [0, num_processes), or None.
    environ: environment variables; os.environ when None.

  Returns:
    None for a single-process run, else the keyword arguments for
    jax.distributed.initialize ({} lets jax detect SLURM/TPU/MPI by itself).

  Raises:
    DistributedError: an unknown mode, incomplete or inconsistent flags.
  """
  environ = os.environ if environ is None else environ
  if mode not in MODES:
    raise DistributedError(f"--distributed={mode!r} is not one of {', '.join(MODES)}")
  explicit = {"coordinator_address": coordinator_address, "num_processes": num_processes,
              "process_id": process_id}
  given = {k: v for k, v in explicit.items() if v is not None}
  if mode == "off":
    if given:
      raise DistributedError(
          f"--distributed=off contradicts --{', --'.join(given)}; drop those flags or "
          "use --distributed=auto")
    return None
  if given:
    missing = [k for k in explicit if k not in given]
    if missing:
      raise DistributedError(
          f"--{', --'.join(given)} given without --{', --'.join(missing)}; a multi-process "
          "run needs all three, e.g. --coordinator_address=10.0.0.1:1234 "
          "--num_processes=2 --process_id=0")
    host, _, port = coordinator_address.rpartition(":")
    if not host or not port.isdigit():
      raise DistributedError(f"--coordinator_address={coordinator_address!r} is not "
                             "host:port; use e.g. 127.0.0.1:1234")
    if num_processes < 1 or not 0 <= process_id < num_processes:
      raise DistributedError(
          f"--process_id={process_id} with --num_processes={num_processes}: the id must "
          f"be in [0, {num_processes - 1}] and the count >= 1")
    return dict(explicit)
  if mode == "on" or detected_cluster(environ):
    return {}
  return None


def _seconds(environ, name, default):
  environ = os.environ if environ is None else environ
  value = environ.get(name, str(default))
  if not value.isdigit() or int(value) < 1:
    raise DistributedError(f"{name}={value!r} is not a positive number of seconds; unset "
                           f"it or use e.g. {default}")
  return int(value)


def heartbeat_timeout(environ=None):
  """Seconds without a heartbeat after which jax's coordination service declares a
  process dead; every other process then exits with an error instead of hanging in
  its next collective. $PRELM_HEARTBEAT_TIMEOUT overrides the default of 60 (jax: 100).
  """
  return _seconds(environ, "PRELM_HEARTBEAT_TIMEOUT", 60)


def init_timeout(environ=None):
  """Seconds the processes wait for each other to meet at start-up (a wrong coordinator
  address, or a process that never started). $PRELM_INIT_TIMEOUT overrides jax's 300;
  large pods whose VMs boot unevenly may need more.
  """
  return _seconds(environ, "PRELM_INIT_TIMEOUT", 300)


def wait_for_coordinator(address, timeout):
  """Waits until process 0's coordinator accepts connections; raises after `timeout` s.

  jax aborts the whole interpreter (no Python exception) when it cannot reach the
  coordinator, so a wrong address would end with a C++ stack trace; probing first
  turns that into a one-line error.
  """
  host, _, port = address.rpartition(":")
  deadline = time.monotonic() + timeout
  while True:
    try:
      with socket.create_connection((host.strip("[]"), int(port)), timeout=5):
        return
    except OSError as e:
      if time.monotonic() >= deadline:
        raise DistributedError(
            f"the coordinator {address} did not accept a connection within {timeout} s "
            f"({type(e).__name__}: {e.strerror or e}); check that process 0 runs on that "
            "host with the same --coordinator_address and that the port is open, or wait "
            "longer with $PRELM_INIT_TIMEOUT (seconds)") from None
      time.sleep(0.5)


def initialize(mode, coordinator_address=None, num_processes=None, process_id=None):
  """Calls jax.distributed.initialize if `plan` says so; before any device is used.

  Returns:
    A one-line description for the console, or None for a single-process run.

  Raises:
    DistributedError: bad flags (see plan), or the processes did not meet (e.g. a
      wrong coordinator address, or a process that never started).
  """
  kwargs = plan(mode, coordinator_address, num_processes, process_id)
  if kwargs is None:
    return None
  if kwargs.get("process_id", 0) != 0:
    wait_for_coordinator(kwargs["coordinator_address"], init_timeout())
  try:
    jax.distributed.initialize(**kwargs, heartbeat_timeout_seconds=heartbeat_timeout(),
                               initialization_timeout=init_timeout())
  except (RuntimeError, ValueError) as e:
    where = kwargs.get("coordinator_address") or "the auto-detected coordinator"
    detail = " ".join(str(e).split())[:300]
    raise DistributedError(
        f"jax.distributed.initialize via {where} failed ({detail}); check that every "
        "process started with the same coordinator and process count, and that the "
        "coordinator's host and port can be reached (wait longer with "
        "$PRELM_INIT_TIMEOUT, in seconds)") from None
  return (f"process {jax.process_index()} of {jax.process_count()}, "
          f"{jax.local_device_count()} local of {jax.device_count()} devices")


def is_main_process():
  """True on process 0, the one that prints and writes run-level files."""
  return jax.process_index() == 0


@contextlib.contextmanager
def process_zero_first(name):
  """Process 0 runs the block first; the others run it once process 0 is through.

  For work that fills a shared directory (preparing a TFDS dataset, training the
  vocabulary): the other processes then find the files made and only read them,
  instead of racing to write the same paths. Single-process runs just run the block.

  Args:
    name: a label for the barrier (the same on every process).
  """
  if jax.process_count() == 1:
    yield
    return
  if jax.process_index() != 0:
    multihost_utils.sync_global_devices(f"{name}: process 0 done")
  yield
  if jax.process_index() == 0:
    multihost_utils.sync_global_devices(f"{name}: process 0 done")

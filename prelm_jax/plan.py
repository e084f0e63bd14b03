"""`prelm plan`: compile the train step ahead of time for a mesh and report its cost.

  prelm plan --config bert_large --mesh data=2,fsdp=16,tensor=1 [--devices 32] \
      [--device-memory 16GiB] [--config.train.grad_accum_steps=4 ...]

The step is lowered and compiled exactly as train.run jits it (same shardings, same
donation), for `--devices` devices. When this process has fewer devices than that, a
subprocess simulates them as CPU devices (--xla_force_host_platform_device_count), so a
laptop can plan a pod. It prints per-device bytes of params, optimizer state and
temporaries (compiled.memory_analysis()), FLOPs per step (compiled.cost_analysis())
next to an analytic count, and whether it fits the device memory. No corpus is read:
the vocabulary size is config.data.vocab_size.
"""
import json
import math
import os
import re
import subprocess
import sys
import tempfile

from absl import flags

from prelm_jax import errors

_MESH = flags.DEFINE_string(
    "mesh", None, "plan: mesh sizes, e.g. data=2,fsdp=16,tensor=1 (default: config.mesh).")
_DEVICES = flags.DEFINE_integer(
    "devices", None, "plan: device count to compile for (default: the mesh's product).")
_DEVICE_MEMORY = flags.DEFINE_string(
    "device-memory", None, "plan: memory of one device, e.g. 16GiB, 80GB, 512MiB.")

_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


class PlanError(errors.PrelmError):
  """Bad plan arguments (mesh spec, device count, memory size)."""


def parse_mesh(text):
  """'data=2,fsdp=16' -> {'data': 2, 'fsdp': 16}; unnamed axes keep the config's size."""
  from prelm_jax import sharding  # pylint: disable=g-import-not-at-top
  axes = sharding.MESH_AXES + tuple(f"dcn_{a}" for a in sharding.MESH_AXES)
  sizes = {}
  for part in filter(None, text.replace(" ", "").split(",")):
    name, _, value = part.partition("=")
    if name not in axes or not re.fullmatch(r"-?\d+", value):
      raise PlanError(f"--mesh {text!r}: {part!r} is not AXIS=SIZE with AXIS one of "
                      f"{', '.join(axes)}; e.g. --mesh data=2,fsdp=16,tensor=1")
    sizes[name] = int(value)
  return sizes


def parse_bytes(text):
  """'16GiB' -> 17179869184 (GB = 10**9, GiB = 2**30; a bare number is bytes)."""
  match = re.fullmatch(r"\s*([\d.]+)\s*([A-Za-z]*)\s*", text)
  if not match or match.group(2).upper() not in _UNITS:
    raise PlanError(f"--device-memory {text!r} is not a size; write e.g. 16GiB, 80GB or "
                    "512MiB")
  return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def per_device_bytes(abstract_tree):
  """Bytes one device holds of a tree of sharded ShapeDtypeStructs (the largest shard)."""
  import jax  # pylint: disable=g-import-not-at-top
  return sum(math.prod(x.sharding.shard_shape(x.shape)) * x.dtype.itemsize
             for x in jax.tree.leaves(abstract_tree))


def total_bytes(abstract_tree):
  import jax  # pylint: disable=g-import-not-at-top
  return sum(math.prod(x.shape) * x.dtype.itemsize for x in jax.tree.leaves(abstract_tree))


def compile_step(config, mesh):
  """Lowers and compiles the train step for `mesh` exactly as train.run jits it.

  Returns:
    A dict: compiled (callable as compiled(state, batch)), abstract (the state's
    ShapeDtypeStructs), batch (the batch's), init (the state's init fn, boxed),
    shardings (the state's), task, model, tx, seconds (lowering + compiling).
  """
  import time  # pylint: disable=g-import-not-at-top
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  from prelm_jax import optim, sharding, state, tasks, validation  # pylint: disable=g-import-not-at-top
  validation.check(config, mesh)
  task = tasks.get(config)
  model = task.build_model(config.data.vocab_size)
  tx, schedule = optim.make_optimizer(config.optim, config.train.num_steps, config.model.num_layers)
  start = time.perf_counter()
  with jax.set_mesh(mesh), nn.logical_axis_rules(sharding.config_rules(config)):
    abstract, shardings, init = state.abstract_state_and_shardings(task, model, tx, mesh)
    batch = task.abstract_batch(sharding.batch_sharding(mesh))
    step_fn = state.jit_train_step(task, model, tx, schedule, shardings, mesh)
    compiled = step_fn.lower(abstract, batch).compile()
  return dict(compiled=compiled, abstract=abstract, batch=batch, init=init,
              shardings=shardings, task=task, model=model, tx=tx,
              seconds=time.perf_counter() - start)


def compile_report(config, mesh, step):
  """compile_step's result as a JSON-able dict of per-device bytes, FLOPs and timings."""
  import jax  # pylint: disable=g-import-not-at-top
  compiled, abstract, batch = step["compiled"], step["abstract"], step["batch"]
  memory = compiled.memory_analysis()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  num_params = sum(math.prod(x.shape) for x in jax.tree.leaves(abstract.params))
  simple, detailed = step["task"].analytic_flops(num_params)
  mem = {k: int(getattr(memory, f"{k}_size_in_bytes", 0) or 0)
         for k in ("argument", "output", "alias", "temp", "generated_code")}
  return {
      "devices": mesh.size, "platform": jax.devices()[0].platform,
      "mesh": dict(mesh.shape), "num_params": int(num_params),
      "params_bytes_total": total_bytes(abstract.params),
      "opt_state_bytes_total": total_bytes(abstract.opt_state),
      "params_bytes_per_device": per_device_bytes(abstract.params),
      "opt_state_bytes_per_device": per_device_bytes(abstract.opt_state),
      "batch_bytes_per_device": per_device_bytes(batch),
      "compiled_bytes_per_device": mem,
      # Arguments (state + batch) live on; donated state is reused for the outputs.
      "peak_bytes_per_device": mem["argument"] + mem["output"] - mem["alias"] + mem["temp"],
      "flops_per_device_compiled": float(cost.get("flops", 0.0)) if cost else 0.0,
      "flops_per_step_6nt": float(simple), "flops_per_step_analytic": float(detailed),
      "compile_seconds": step["seconds"],
      "loops": " and ".join(
          name for name, on in (("scan_layers", config.model.scan_layers),
                                ("grad_accum_steps > 1", config.train.grad_accum_steps > 1))
          if on),
  }


def compile_plan(config, num_devices):
  """Compiles the train step on this process's first num_devices devices.

  Returns:
    A JSON-able dict of per-device bytes, FLOPs and timings (compile_report).
  """
  import jax  # pylint: disable=g-import-not-at-top
  from prelm_jax import sharding  # pylint: disable=g-import-not-at-top
  mesh = sharding.create_mesh(config.mesh, devices=jax.devices()[:num_devices])
  return compile_report(config, mesh, compile_step(config, mesh))


def plan(config, num_devices):
  """compile_plan here if this process has num_devices devices, else in a subprocess.

  The subprocess runs `python -m prelm_jax.plan CONFIG.json N` with N simulated CPU
  devices; XLA reads that flag only at start-up, hence a fresh process.
  """
  import jax  # pylint: disable=g-import-not-at-top
  if jax.device_count() >= num_devices:
    return compile_plan(config, num_devices)
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "config.json")
    with open(path, "w") as f:
      f.write(config.to_json_best_effort())
    flags_env = re.sub(r"--xla_force_host_platform_device_count=\d+", "",
                       os.environ.get("XLA_FLAGS", ""))
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=(
        f"{flags_env} --xla_force_host_platform_device_count={num_devices}").strip())
    proc = subprocess.run([sys.executable, "-m", "prelm_jax.plan", path, str(num_devices)],
                          env=env, capture_output=True, text=True, check=False)
  if proc.returncode:
    lines = proc.stderr.strip().splitlines() or ["(no output)"]
    raise PlanError(f"compiling for {num_devices} simulated CPU devices failed: "
                    f"{lines[-1]}")
  return json.loads(proc.stdout.strip().splitlines()[-1])


def gib(n):
  return f"{n / 2**30:.3f} GiB"


def report(result, device_memory=None):
  """The plan as lines for a person."""
  mem = result["compiled_bytes_per_device"]
  per_state = result["params_bytes_per_device"] + result["opt_state_bytes_per_device"]
  n = result["devices"]
  lines = [
      f"Plan: {result['num_params'] / 1e6:.1f}M params on {n} {result['platform']} "
      f"devices, mesh {result['mesh']} (compiled in {result['compile_seconds']:.1f}s)",
      "Per device:",
      f"  params           {gib(result['params_bytes_per_device'])} "
      f"(total {gib(result['params_bytes_total'])})",
      f"  optimizer state  {gib(result['opt_state_bytes_per_device'])} "
      f"(total {gib(result['opt_state_bytes_total'])})",
      f"  params + opt     {gib(per_state)}  vs total / {n} = "
      f"{gib((result['params_bytes_total'] + result['opt_state_bytes_total']) / n)}",
      f"  batch            {gib(result['batch_bytes_per_device'])}",
      f"  compiled: arguments {gib(mem['argument'])}, outputs {gib(mem['output'])}, "
      f"aliased {gib(mem['alias'])}, activations/temporaries {gib(mem['temp'])}",
      f"  peak estimate    {gib(result['peak_bytes_per_device'])}",
      f"FLOPs per step: compiled {result['flops_per_device_compiled'] * n:.3e} "
      f"({result['flops_per_device_compiled']:.3e} per device); analytic "
      f"{result['flops_per_step_analytic']:.3e}; 6*N*tokens {result['flops_per_step_6nt']:.3e}",
  ]
  if result.get("loops"):
    lines.append(f"  ({result['loops']}: XLA's cost analysis counts a loop body once, not "
                 "once per trip; trust the analytic count)")
  if device_memory is not None:
    peak = result["peak_bytes_per_device"]
    verdict = "fits" if peak <= device_memory else "does NOT fit"
    lines.append(f"Memory: {verdict} in {gib(device_memory)} per device "
                 f"({100 * peak / device_memory:.1f}% used)")
  return lines


def main(config, fail):
  """`prelm plan`: flags -> plan -> printed report. Bad input goes to fail(message)."""
  import jax  # pylint: disable=g-import-not-at-top
  from prelm_jax import sharding, validation  # pylint: disable=g-import-not-at-top
  try:
    if _MESH.value:
      config.mesh.update(parse_mesh(_MESH.value))
    sizes = [config.mesh[a] for a in sharding.MESH_AXES]
    devices = _DEVICES.value
    if devices is None:
      if -1 in sizes:
        raise PlanError(f"mesh {dict(zip(sharding.MESH_AXES, sizes))} has a -1 axis; give "
                        "--devices N or every size in --mesh")
      devices = math.prod(sizes) * math.prod(sharding.dcn_shape(config.mesh))
    if devices < 1:
      raise PlanError(f"--devices={devices} must be >= 1")
    memory = parse_bytes(_DEVICE_MEMORY.value) if _DEVICE_MEMORY.value else None
    # Mistakes as one line here rather than from inside the compiling subprocess.
    shape = sharding.mesh_shape(config.mesh, devices)
    validation.check(config, jax.sharding.AbstractMesh(shape, sharding.MESH_AXES))
    result = plan(config, devices)
  except errors.PrelmError as e:
    fail(e)
  print("\n".join(report(result, memory)))
  return result


if __name__ == "__main__":
  # Subprocess entry (see plan()): CONFIG.json N -> one JSON line on stdout.
  import ml_collections  # pylint: disable=g-import-not-at-top
  with open(sys.argv[1]) as f:
    _config = ml_collections.ConfigDict(json.load(f))
  print(json.dumps(compile_plan(_config, int(sys.argv[2]))))

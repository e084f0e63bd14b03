"""The full train step (forward, backward, optimizer) of prelm_jax next to its peers.

prelm's step is the one training runs: plan.compile_step lowers and compiles
state.jit_train_step (shardings, donation) on one device; the state is created as
train.run creates it. The peers run in their own interpreters, on the same
machine, model shapes, batch, sequence length and compute dtype:
  hf_flax  HuggingFace FlaxBertForPreTraining, jitted optax adamw step (transformers
           4.57.x, the last with Flax, in benchmarks/.venv-hf-flax, made on first use
           with the same jax/jaxlib/flax/optax as this interpreter)
  torch    PyTorch BertForPreTraining + torch.optim.AdamW (this interpreter's torch
           and transformers)
All three train on MLM + NSP with dropout on, on random tokens of vocabulary 30522 and
round(0.15 * seq_len) masked positions a row. Rows have NO padding, so every one of
batch x seq_len tokens is a real token: tokens/s counts real tokens.

Timing is interleaved so machine noise hits all systems alike: after each system's
compile and first step, `--rounds` rounds each run `--steps` steps of prelm, then of
hf_flax, then of torch; a system's step time is the median over all its timed steps.

MFU = model FLOPs per step / (median step time x peak), from prelm's steps timed alone
before the peers start (`mfu`; `prelm_mfu` is the same from the interleaved rounds, with
the peers' processes resident). Model FLOPs are prelm's
analytic count (task.analytic_flops: matmuls, MLM head at the masked positions only)
for every system: the same useful work. prelm's XLA cost analysis is reported beside
it with the ratio. Peak: benchmarks/peak.py (CPU: measured matmul peak in the compute
dtype; GPU/TPU: the published dense bf16 peak).

  python benchmarks/train_step.py                          # = make bench (CPU)
  python benchmarks/train_step.py --configs bert_tiny --seq 32 --batch 2 --steps 2 \
      --rounds 1 --peers torch --out /tmp/bench.json        # a quick check

Writes --out (default benchmarks/results/cpu.json): a list, one object per config, and
the same figures as a markdown table beside it (cpu.md), also printed.
"""
import argparse
import datetime
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

import peak as peak_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from peers import common as peers_common  # pylint: disable=g-import-not-at-top,wrong-import-position

PEERS = REPO / "benchmarks" / "peers"
HF_VENV = REPO / "benchmarks" / ".venv-hf-flax"
HF_TRANSFORMERS = "transformers==4.57.*"


def bench_config(name, seq_len, batch_size, dtype="float32"):
  """The experiment's config at this sequence length, batch and compute dtype."""
  from prelm_jax import registry  # pylint: disable=g-import-not-at-top
  config = registry.load(name)
  config.data.max_seq_len = seq_len
  config.data.max_predictions_per_seq = round(0.15 * seq_len)
  config.train.batch_size = batch_size
  config.model.dtype = dtype
  return config


def require_configs(names):
  """Exits with one line (status 2) before any work when an experiment name is unknown."""
  from prelm_jax import registry  # pylint: disable=g-import-not-at-top
  for name in names:
    try:
      registry.load(name)
    except ValueError as e:
      print(f"{os.path.basename(sys.argv[0])}: {e}", file=sys.stderr)
      sys.exit(2)


def random_batch(task, seed=0):
  """A host batch following task.batch_spec(): random tokens, no padding, every masked
  position real (mlm_weights 1), NSP labels 0/1."""
  config = task.config
  rng = np.random.default_rng(seed)
  rows, length = config.train.batch_size, config.data.max_seq_len
  vocab = config.data.vocab_size
  batch = {}
  for key, (shape, dtype) in task.batch_spec().items():
    shape = (rows,) + tuple(shape)
    if key in ("input_ids", "mlm_ids"):
      value = rng.integers(0, vocab, shape)
    elif key == "token_type_ids":
      value = np.zeros(shape)
      value[:, length // 2:] = 1
    elif key == "mlm_positions":
      value = np.stack([np.sort(rng.choice(length, shape[1], replace=False))
                        for _ in range(rows)])
    elif key == "nsp_labels":
      value = rng.integers(0, 2, shape)
    elif key in ("attention_mask", "mlm_weights", "example_weights"):
      value = np.ones(shape)
    else:
      raise ValueError(f"random_batch: no rule for {key!r}; this benchmark runs "
                       "unpacked pre-training batches (config.data.packing off)")
    batch[key] = value.astype(dtype)
  return batch


class Prelm:
  """prelm_jax's compiled train step on one device, with its state and a batch."""

  name = "prelm"

  def __init__(self, config):
    import jax  # pylint: disable=g-import-not-at-top
    from prelm_jax import plan, sharding, state  # pylint: disable=g-import-not-at-top
    start = time.perf_counter()
    mesh = sharding.create_mesh(config.mesh, devices=jax.devices()[:1])
    step = plan.compile_step(config, mesh)
    self.report = plan.compile_report(config, mesh, step)
    self.compiled = step["compiled"]
    host = random_batch(step["task"], config.seed)
    self.real_tokens = int(host["attention_mask"].sum())
    self.batch = jax.device_put(host, sharding.batch_sharding(mesh))
    self.state = state.fresh_state(step["init"], step["shardings"], config.seed)
    self.setup_s = time.perf_counter() - start
    self.first_step_s = self.run(1)[0]
    self.info = {"compile_s": self.report["compile_seconds"], "setup_s": self.setup_s,
                 "first_step_s": self.first_step_s}

  def run(self, steps):
    import jax  # pylint: disable=g-import-not-at-top
    times = []
    for _ in range(steps):
      start = time.perf_counter()
      self.state, sums = self.compiled(self.state, self.batch)
      jax.block_until_ready(sums)
      times.append(time.perf_counter() - start)
    self.loss = float(sums["mlm_loss_sum"] / sums["mlm_weight_sum"])
    return times

  def max_rss_bytes(self):
    return peers_common.max_rss_bytes()

  def device_peak_bytes(self):
    import jax  # pylint: disable=g-import-not-at-top
    stats = jax.devices()[0].memory_stats()  # None on CPU
    return stats and stats.get("peak_bytes_in_use")

  def close(self):
    pass


class PeerError(RuntimeError):
  pass


class Peer:
  """A peer's train step in a subprocess (protocol: benchmarks/peers/common.py)."""

  def __init__(self, name, python, script, spec, timeout=1800):
    self.name = name
    self.log = tempfile.TemporaryFile(mode="w+")
    self.timeout = timeout
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)  # e.g. the tests' 8 fake devices: one device here
    self.proc = subprocess.Popen(
        [str(python), str(PEERS / script), json.dumps(spec)], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=self.log, text=True, env=env)
    self.info = self._reply("ready")
    self.rss = self.info["max_rss_bytes"]

  def _reply(self, key):
    while True:
      line = self.proc.stdout.readline()
      if not line:
        self.proc.wait()
        self.log.seek(0)
        tail = self.log.read().strip().splitlines()[-5:]
        raise PeerError(f"{self.name} peer exited with {self.proc.returncode}: "
                        + " | ".join(tail))
      try:
        reply = json.loads(line)
      except json.JSONDecodeError:
        continue  # a library's print on stdout
      if isinstance(reply, dict) and key in reply:
        return reply

  def run(self, steps):
    self.proc.stdin.write(f"{steps}\n")
    self.proc.stdin.flush()
    reply = self._reply("times")
    self.loss, self.rss = reply["loss"], reply["max_rss_bytes"]
    self.device_peak = reply.get("device_peak_bytes")
    return reply["times"]

  def max_rss_bytes(self):
    return self.rss

  def device_peak_bytes(self):
    return self.device_peak

  def close(self):
    if self.proc.poll() is None:
      self.proc.stdin.close()
      try:
        self.proc.wait(timeout=60)
      except subprocess.TimeoutExpired:
        self.proc.kill()
    self.log.close()


def peer_spec(config, device):
  m, d = config.model, config.data
  return {"hidden_size": m.hidden_size, "num_layers": m.num_layers,
          "num_heads": m.num_heads, "mlp_dim": m.mlp_dim, "vocab_size": d.vocab_size,
          "max_position_embeddings": m.max_position_embeddings,
          "type_vocab_size": m.type_vocab_size, "dropout_rate": m.dropout_rate,
          "attention_dropout_rate": m.attention_dropout_rate, "seq_len": d.max_seq_len,
          "batch_size": config.train.batch_size,
          "predictions": d.max_predictions_per_seq, "dtype": m.dtype,
          "learning_rate": config.optim.learning_rate, "seed": config.seed,
          "device": device}


def ensure_hf_venv(venv=HF_VENV, jax_extra=""):
  """The HF-Flax peer's interpreter: venv with transformers 4.57.x and THIS process's
  jax/jaxlib/flax/optax versions, created (pip, from PyPI) when missing."""
  python = pathlib.Path(venv) / "bin" / "python"
  if python.exists():
    return python
  import flax  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import jaxlib  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  extra = f"[{jax_extra}]" if jax_extra else ""
  print(f"Creating {venv} for the HF-Flax peer ({HF_TRANSFORMERS}, jax {jax.__version__})",
        file=sys.stderr)
  base = getattr(sys, "_base_executable", sys.executable)
  subprocess.run([base, "-m", "venv", str(venv)], check=True)
  subprocess.run([str(python), "-m", "pip", "install", "--quiet", HF_TRANSFORMERS,
                  f"jax{extra}=={jax.__version__}", f"jaxlib=={jaxlib.__version__}",
                  f"flax=={flax.__version__}", f"optax=={optax.__version__}"], check=True)
  return python


def start_peer(name, config, args):
  device = "cuda" if args.platform == "gpu" else "cpu"
  spec = dict(peer_spec(config, device), torch_threads=args.torch_threads)
  if name == "torch":
    return Peer(name, sys.executable, "torch_step.py", spec)
  if name == "hf_flax":
    python = pathlib.Path(args.hf_venv) / "bin" / "python"
    if not python.exists():
      if args.no_install:
        raise PeerError(f"no {python} (--no-install); run without it to create the venv")
      python = ensure_hf_venv(args.hf_venv, "cuda12" if device == "cuda" else "")
    return Peer(name, python, "hf_flax_step.py", spec)
  raise ValueError(f"unknown peer {name!r}; choose from hf_flax, torch")


def measure_config(name, args, peak_flops, peak_source):
  """Compiles/starts every system for one config, times them interleaved; one result."""
  config = bench_config(name, args.seq, args.batch, args.dtype)
  systems, errors = [Prelm(config)], {}
  # MFU is prelm's alone: with the peers' processes resident (idle, several GB each)
  # the same step measured ~13% slower here (bert_base 9.6-10.0 vs 8.6 s), which would
  # charge the machine's state to the step. The ratios come from the interleaved rounds.
  solo_times = systems[0].run(args.steps)
  for peer in args.peers:
    try:
      systems.append(start_peer(peer, config, args))
    except PeerError as e:
      errors[peer] = str(e)
      print(f"[{name}] {e}", file=sys.stderr)
  times = {s.name: [] for s in systems}
  try:
    for r in range(args.rounds):
      for system in systems:
        times[system.name] += system.run(args.steps)
      print(f"[{name}] round {r + 1}/{args.rounds}: " + ", ".join(
          f"{k} {statistics.median(v):.3f}s/step" for k, v in times.items()),
            file=sys.stderr)
  finally:
    for system in systems:
      system.close()
  prelm = systems[0]
  rep = prelm.report
  tokens = prelm.real_tokens
  assert tokens == args.batch * args.seq  # no padding: every token is real
  flops = rep["flops_per_step_analytic"]
  xla = rep["flops_per_device_compiled"]
  result = {
      "config": name, "seq_len": args.seq, "batch_size": args.batch, "dtype": args.dtype,
      "real_tokens_per_step": tokens, "padding_fraction": 0.0,
      "platform": rep["platform"], "num_params": rep["num_params"],
      "flops_per_step_analytic": flops, "flops_per_step_xla": xla,
      "xla_over_analytic": xla / flops if flops else None,
      "flops_per_step_6nt": rep["flops_per_step_6nt"],
      "peak_flops": peak_flops, "peak_source": peak_source,
      "prelm_compile_s": rep["compile_seconds"],
      "prelm_compiled_peak_bytes": rep["peak_bytes_per_device"],
      "prelm_compiled_bytes": rep["compiled_bytes_per_device"],
      "steps_per_round": args.steps, "rounds": args.rounds, "errors": errors,
  }
  for system in systems:
    step_s = statistics.median(times[system.name])
    p = system.name
    result.update({
        f"{p}_step_s": step_s, f"{p}_step_times": times[system.name],
        f"{p}_tokens_per_s": tokens / step_s,
        f"{p}_sequences_per_s": args.batch / step_s,
        f"{p}_mfu": flops / (step_s * peak_flops),
        f"{p}_first_step_s": system.info["first_step_s"],
        f"{p}_max_rss_bytes": system.max_rss_bytes(),
        f"{p}_device_peak_bytes": system.device_peak_bytes(), f"{p}_last_loss": system.loss})
    if p != "prelm":
      result[f"{p}_versions"] = {k: system.info[k] for k in
                                 ("jax", "torch", "transformers", "threads")
                                 if k in system.info}
  solo_s = statistics.median(solo_times)
  result.update({"prelm_solo_step_times": solo_times, "prelm_solo_step_s": solo_s,
                 "prelm_solo_tokens_per_s": tokens / solo_s,
                 "mfu": flops / (solo_s * peak_flops)})
  for peer in ("hf_flax", "torch"):
    result.setdefault(f"{peer}_tokens_per_s", None)
    if result[f"{peer}_tokens_per_s"]:
      result[f"prelm_over_{peer}"] = (result["prelm_tokens_per_s"]
                                      / result[f"{peer}_tokens_per_s"])
  return result


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--configs", default="bert_small,bert_base")
  parser.add_argument("--seq", type=int, default=128)
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--steps", type=int, default=3, help="timed steps per round")
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--dtype", default="float32", help="compute dtype: float32|bfloat16")
  parser.add_argument("--peers", default="hf_flax,torch", help="comma list; '' for none")
  parser.add_argument("--torch-threads", type=int, default=0,
                      help="torch.set_num_threads in the torch peer (0: torch's default)")
  parser.add_argument("--peak-sizes", default="2048,4096")
  parser.add_argument("--hf-venv", default=str(HF_VENV))
  parser.add_argument("--no-install", action="store_true",
                      help="skip the HF-Flax peer when its venv is missing")
  parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "cpu.json"))
  args = parser.parse_args(argv)
  args.peers = [p for p in args.peers.split(",") if p]
  require_configs(args.configs.split(","))
  import jax  # pylint: disable=g-import-not-at-top
  args.platform = jax.devices()[0].platform
  peak_flops, peak_source = peak_lib.peak(
      args.dtype, tuple(int(s) for s in args.peak_sizes.split(",")))
  print(f"Peak {peak_flops / 1e12:.3f} TFLOP/s ({peak_source})", file=sys.stderr)
  stamp = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "machine": f"{platform.node()} {os.cpu_count()} CPUs",
           "device_kind": jax.devices()[0].device_kind, "jax": jax.__version__}
  results = []
  for name in args.configs.split(","):
    result = measure_config(name, args, peak_flops, peak_source)
    result.update(stamp)
    results.append(result)
    print(summary_line(result))
  table = markdown_table(results)
  print(table)
  if args.out:
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
      json.dump(results, f, indent=1)
      f.write("\n")
    with open(os.path.splitext(args.out)[0] + ".md", "w") as f:
      f.write(table)
  return results


def markdown_table(results):
  """README's table: tokens/s of each system, prelm's ratio to each peer, and MFU."""
  def rate(r, p):
    v = r.get(f"{p}_tokens_per_s")
    return f"{v:,.0f}" if v else "-"

  def ratio(r, p):
    v = r.get(f"prelm_over_{p}")
    return f"{v:.2f}x" if v else "-"

  first = results[0] if results else {}
  lines = [f"{first.get('date', '')}, {first.get('machine', '')} "
           f"({first.get('device_kind', '')}), jax {first.get('jax', '')}; "
           "tokens/s of the full train step (median after warm-up, systems interleaved)",
           "",
           "| config | seq | batch | dtype | prelm | HF Flax | PyTorch | prelm / HF Flax "
           "| prelm / PyTorch | MFU (prelm alone) | MFU (interleaved) | peak TFLOP/s "
           "| compile s |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
  for r in results:
    lines.append(
        f"| {r['config']} | {r['seq_len']} | {r['batch_size']} | {r['dtype']} "
        f"| {rate(r, 'prelm')} | {rate(r, 'hf_flax')} | {rate(r, 'torch')} "
        f"| {ratio(r, 'hf_flax')} | {ratio(r, 'torch')} | {100 * r['mfu']:.1f}% "
        f"| {100 * r['prelm_mfu']:.1f}% "
        f"| {r['peak_flops'] / 1e12:.3f} | {r['prelm_compile_s']:.1f} |")
  return "\n".join(lines) + "\n"


def summary_line(r):
  def rate(p):
    v = r.get(f"{p}_tokens_per_s")
    return f"{p} {v:,.0f} tok/s" if v else f"{p} -"
  ratios = ", ".join(f"prelm/{p} {r[f'prelm_over_{p}']:.2f}x"
                     for p in ("hf_flax", "torch") if f"prelm_over_{p}" in r)
  return (f"{r['config']} seq {r['seq_len']} batch {r['batch_size']} {r['dtype']}: "
          f"{rate('prelm')}, {rate('hf_flax')}, {rate('torch')} ({ratios}); "
          f"MFU {100 * r['mfu']:.1f}% of {r['peak_flops'] / 1e12:.2f} TFLOP/s; "
          f"FLOPs XLA/analytic {r['xla_over_analytic']:.3f}; "
          f"compile {r['prelm_compile_s']:.1f}s")


if __name__ == "__main__":
  main()

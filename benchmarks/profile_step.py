"""Where prelm's train step spends its time: a jax.profiler trace, summed by model part.

Runs the same compiled step as benchmarks/train_step.py (one device, random unpadded
batch), traces --steps steps, and sums the XLA ops' times by what they compute, read from
each op's source metadata (e.g. `.../layer_3/mlp/erf`): matmuls (forward and backward),
dropout, GELU, LayerNorm, attention softmax and masking, the MLM head and loss, layout
copies, the AdamW update. Also reports how busy the CPU threads were.

  python benchmarks/profile_step.py --config bert_base      # seq 128, batch 32
  python benchmarks/profile_step.py --config bert_small --out /tmp/profile.json

The trace itself (TensorBoard's profile plugin reads it) is kept under --trace-dir.
Times are thread-seconds: on CPU a matmul spreads over all cores, an elementwise loop
often runs on one, so the shares are of work done, and `threads_busy` says how much of
the wall time 0, 1, 2, ... threads had an op running.
"""
import argparse
import collections
import glob
import json
import os
import re
import sys
import tempfile

import train_step  # pylint: disable=g-import-not-at-top  (benchmarks/ is on sys.path)

# (part, pattern on the op's metadata name), first match wins; matmuls are matched by
# the XLA op name (dot, or a library "ynn"/"xnn"/"onednn" fusion around a dot) first.
PARTS = (
    ("dropout (mask RNG, select, scale)", r"Dropout|bernoulli"),
    ("GELU", r"/mlp/(erf|mul|add|gelu)|\berf"),
    ("LayerNorm", r"layer_norm"),
    ("attention softmax and mask", r"attention/(exp|reduce_max|reduce_sum|sub|div|add|select)"),
    ("MLM head and loss (non-matmul)", r"mlm_head|log_softmax|logsumexp|reduce|exp"),
    ("bias adds and residuals", r"/add$|/add_any$|bias"),
    ("embeddings (gather, scatter-add)", r"embed"),
)
MATMUL_OPS = re.compile(r"^(dot|ynn_fusion|xnn_fusion|onednn|custom-call)")
LAYOUT_OPS = re.compile(r"^(copy|transpose)")


def op_sources(hlo_text):
  """{op name: metadata op_name} from the compiled HLO text."""
  found = {}
  for line in hlo_text.splitlines():
    match = re.match(r'\s*(?:ROOT )?%?([\w.\-]+) = .*?metadata=\{op_name="([^"]+)"', line)
    if match:
      found[match.group(1)] = match.group(2)
  return found


def part_of(op, source):
  if MATMUL_OPS.match(op) and not source.endswith(("reduce_sum", "reduce_max")):
    return "matmuls (forward and backward)"
  if not re.search(r"jvp\(|transpose\(", source):
    return "AdamW update and step bookkeeping"
  for part, pattern in PARTS:
    if re.search(pattern, source):
      return part
  if LAYOUT_OPS.match(op):
    return "layout copies (transposes for the matmuls)"
  return "other"


def summarise(trace_dir, hlo_text, steps):
  import jax  # pylint: disable=g-import-not-at-top
  (path,) = glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"), recursive=True)
  data = jax.profiler.ProfileData.from_file(path)
  sources = op_sources(hlo_text)
  parts, ops, edges = collections.Counter(), collections.Counter(), []
  for plane in data.planes:
    for line in plane.lines:
      if "XLA" not in line.name or "PjRt" in line.name:
        continue  # only the threads that run the compiled program's ops
      for event in line.events:
        if event.name.startswith(("Thunk", "Slinky")):
          continue  # executor bookkeeping around the ops
        source = sources.get(event.name, "")
        parts[part_of(event.name, source)] += event.duration_ns
        ops[re.sub(r"layer_\d+", "layer_N", source) or event.name] += event.duration_ns
        edges += [(event.start_ns, 1), (event.start_ns + event.duration_ns, -1)]
  edges.sort()
  busy, running, last = collections.Counter(), 0, edges[0][0] if edges else 0
  for t, change in edges:
    busy[running] += t - last
    running, last = running + change, t
  wall = sum(busy.values()) or 1
  total = sum(parts.values()) or 1
  busy = {k: v for k, v in busy.items() if k >= 0}  # < 0: nested events' overlaps
  return {
      "thread_seconds_per_step": total / 1e9 / steps,
      "parts": {k: {"seconds_per_step": v / 1e9 / steps, "share": v / total}
                for k, v in parts.most_common()},
      "threads_busy": {str(k): v / wall for k, v in sorted(busy.items())},
      "top_ops": [{"op": k, "seconds_per_step": v / 1e9 / steps}
                  for k, v in ops.most_common(25)],
  }


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", default="bert_base")
  parser.add_argument("--seq", type=int, default=128)
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--dtype", default="float32")
  parser.add_argument("--steps", type=int, default=2)
  parser.add_argument("--trace-dir", default=None)
  parser.add_argument("--out", default=None, help="JSON file (default: print only)")
  args = parser.parse_args(argv)
  train_step.require_configs([args.config])
  import jax  # pylint: disable=g-import-not-at-top
  system = train_step.Prelm(train_step.bench_config(args.config, args.seq, args.batch,
                                                    args.dtype))
  trace_dir = args.trace_dir or tempfile.mkdtemp(prefix="prelm-profile-")
  with jax.profiler.trace(trace_dir):
    times = system.run(args.steps)
  result = {"config": args.config, "seq_len": args.seq, "batch_size": args.batch,
            "dtype": args.dtype, "step_seconds": times, "trace_dir": trace_dir,
            **summarise(trace_dir, system.compiled.as_text(), args.steps)}
  print(f"{args.config} seq {args.seq} batch {args.batch}: "
        f"{sum(times) / len(times):.2f} s/step, "
        f"{result['thread_seconds_per_step']:.2f} thread-s of ops per step")
  for part, v in result["parts"].items():
    print(f"  {100 * v['share']:5.1f}%  {v['seconds_per_step']:7.3f} s  {part}")
  print("  threads busy (share of wall time): " + ", ".join(
      f"{k}: {100 * v:.0f}%" for k, v in result["threads_busy"].items()))
  if args.out:
    with open(args.out, "w") as f:
      json.dump(result, f, indent=1)
      f.write("\n")
  return result


if __name__ == "__main__":
  sys.exit(0 if main() else 1)

"""Does the input pipeline outrun the train step? Examples/s and real tokens/s of the
whole pipeline (read prepared shards, pair, mask, pack, batch) next to what bert_small's
train step consumes, on this machine, plus the padding fraction with and without packing.

On the shared Gutenberg books (prepared once by the script: `prelm prepare`) and pydocs,
at sequence length 128 and 512, batch 32 (bert_small's step on CPU), with packing off
and on, and 1 or --threads background threads. The train step's rate is
`prelm train --config bert_small` on the same corpus (median steps/s of its last steps).

  python benchmarks/input_pipeline.py            # ~15 min on 2 cores

Writes benchmarks/results/input_pipeline.json and prints a markdown table.
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
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
GUTENBERG = REPO.parent / "shared" / "data" / "gutenberg"
sys.path.insert(0, str(REPO))

from absl import flags  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from prelm_jax import registry  # pylint: disable=g-import-not-at-top,wrong-import-position
from prelm_jax.data import prepare  # pylint: disable=g-import-not-at-top,wrong-import-position
from prelm_jax.data import pretrain  # pylint: disable=g-import-not-at-top,wrong-import-position

BATCH = 32


def corpus_config(name, seq_len, data_dir):
  config = registry.load("bert_small")
  data = config.data
  data.update(max_seq_len=seq_len, tfds_data_dir=data_dir,
              max_predictions_per_seq=max(20, round(0.15 * seq_len)))
  if name == "gutenberg":
    data.update(dataset="text_files", paths=str(GUTENBERG / "*.txt"))
  return config


def pipeline_rate(data_cfg, tokenizer, directory, threads, batches):
  """(rows/s, pairs/s, real tokens/s, padding fraction) of `batches` batches after 2."""
  split = prepare.PreparedSplit(directory, "train", tokenizer)
  data = pretrain.training_data(data_cfg, tokenizer, split, batch_size=BATCH, seed=0)
  stream = pretrain.prefetched(data.batch, 0, threads=threads)
  for _ in range(2):
    next(stream)
  start, rows, pairs, real = time.perf_counter(), 0, 0, 0
  for _ in range(batches):
    batch = next(stream)
    mask = batch["attention_mask"]
    rows += len(mask)
    pairs += int(batch["nsp_weights"].sum()) if "nsp_weights" in batch else len(mask)
    real += int(mask.sum())
  seconds = time.perf_counter() - start
  return rows / seconds, pairs / seconds, real / seconds, 1 - real / (rows * mask.shape[1])


def step_rate(data_dir, corpus, seq_len, steps, out):
  """bert_small's train steps/s at this length and batch (median of the last steps)."""
  workdir = out / f"bert_small-{corpus}-{seq_len}"
  cfg = corpus_config(corpus, seq_len, data_dir).data
  args = [sys.executable, "-m", "prelm_jax.main", "train", "--config", "bert_small",
          "--workdir", str(workdir), f"--config.data.max_seq_len={seq_len}",
          f"--config.data.max_predictions_per_seq={cfg.max_predictions_per_seq}",
          f"--config.data.tfds_data_dir={data_dir}", f"--config.train.batch_size={BATCH}",
          f"--config.train.num_steps={steps}", "--config.train.log_every=1",
          "--config.train.eval_every=1000000", "--config.train.checkpoint_every=1000000"]
  if corpus == "gutenberg":
    args += ["--config.data.dataset=text_files", f"--config.data.paths={GUTENBERG}/*.txt"]
  subprocess.run(args, cwd=REPO, check=True, stdout=subprocess.DEVNULL,
                 stderr=open(out / f"{workdir.name}.log", "w"))
  with open(workdir / "metrics.jsonl") as f:
    rates = [r["steps_per_sec"] for r in map(json.loads, f) if r.get("split") == "train"]
  return statistics.median(rates[2:])


def main():
  flags.FLAGS(["input_pipeline"])  # grain reads absl flags
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default="/tmp/input_pipeline")
  parser.add_argument("--threads", type=int, default=4)
  parser.add_argument("--batches", type=int, default=30)
  parser.add_argument("--steps", type=int, default=8)
  args = parser.parse_args()
  if not GUTENBERG.exists():
    sys.exit(f"{GUTENBERG} is missing: this benchmark reads the shared Gutenberg books")
  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  data_dir = str(out / "tfds")
  rows = []
  for corpus in ("gutenberg", "pydocs"):
    for seq_len in (128, 512):
      config = corpus_config(corpus, seq_len, data_dir)
      tokenizer = prepare.trained_vocabulary(config.data)
      directory = prepare.prepare(config.data, tokenizer)
      step = step_rate(data_dir, corpus, seq_len, args.steps, out) if corpus == "gutenberg" else None
      for packing in (False, True):
        data_cfg = config.data.copy_and_resolve_references()
        data_cfg.packing = packing
        for threads in (1, args.threads):
          rows_s, pairs_s, tokens_s, padding = pipeline_rate(
              data_cfg, tokenizer, directory, threads, args.batches)
          row = {"corpus": corpus, "seq_len": seq_len, "packing": packing,
                 "threads": threads, "rows_per_s": round(rows_s, 1),
                 "pairs_per_s": round(pairs_s, 1), "real_tokens_per_s": round(tokens_s),
                 "padding_fraction": round(padding, 3)}
          if step is not None:  # the step consumes rows, packed or not
            row["step_rows_per_s"] = round(step * BATCH, 2)
            row["pipeline_over_step"] = round(rows_s / (step * BATCH), 1)
          rows.append(row)
          print(json.dumps(row), flush=True)
  result = {"date": datetime.date.today().isoformat(), "machine": platform.platform(),
            "cpus": len(os.sched_getaffinity(0)), "batch_size": BATCH, "rows": rows}
  path = REPO / "benchmarks" / "results" / "input_pipeline.json"
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(result, indent=1) + "\n")
  print("| corpus | seq | packing | threads | rows/s | pairs/s | real tokens/s | padding "
        "| step consumes (rows/s) | pipeline / step |")
  print("|---|---|---|---|---|---|---|---|---|---|")
  for r in rows:
    print(f"| {r['corpus']} | {r['seq_len']} | {r['packing']} | {r['threads']} | "
          f"{r['rows_per_s']} | {r['pairs_per_s']} | {r['real_tokens_per_s']} | "
          f"{r['padding_fraction']:.1%} | {r.get('step_rows_per_s', '')} | "
          f"{r.get('pipeline_over_step', '')} |")


if __name__ == "__main__":
  main()

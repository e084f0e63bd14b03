"""README's fine-tuning study: what pre-training on prose buys, and attention vs an LSTM.

Pre-trains bert_tiny_books and lstm_tiny_books (Gutenberg + WikiText-2 from
../shared/data), then fine-tunes SST-2 (dev accuracy) and UD English GUM POS (dev token
accuracy) from each of
  pretrained  the Transformer, encoder weights from bert_tiny_books
  scratch     the same architecture, vocabulary and budget, random encoder weights
              (--config.init_params=False)
  lstm        the LSTM encoder from lstm_tiny_books
on the whole training set and on a fixed random subset of 2,000 examples (sentences
for POS), with seeds 0, 1, 2. Each variant gets its own fine-tuning learning rate: the
best of LEARNING_RATES on the 2,000-example subset with seed 0 (dev), used for its
other seeds and for the whole training set. Every run is a prelm workdir under --out:
a finished one is skipped and an interrupted one resumes, so the script can be run
again until done. Writes <out>/study.json (every run with its wall time, the LR sweep,
mean and spread per cell) and prints the table README shows.

  python benchmarks/finetune_study.py --out runs/study
  python benchmarks/finetune_study.py --out runs/study --only sst2/2000   # one cell
"""
import argparse
import json
import pathlib
import statistics
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"

PRETRAIN = {"transformer": "bert_tiny_books", "lstm": "lstm_tiny_books"}
# variant -> (pre-training run, load its encoder weights)
VARIANTS = {"pretrained": ("transformer", True), "scratch": ("transformer", False),
            "lstm": ("lstm", True)}
# Fine-tuning budgets, the same for every variant. SST-2's sentences fit in 64 pieces
# (the longest has 52 words); one epoch of its 67k examples is 2,105 steps.
TASKS = {
    "sst2": dict(metric="accuracy", files=("sst2/train.tsv", "sst2/dev.tsv"),
                 overrides={"data.max_seq_len": 64},
                 epochs={"full": 1.0, "2000": 3.0}),
    "ud_pos": dict(metric="token_accuracy",
                   files=("ud-english-gum/en_gum-ud-train.conllu",
                          "ud-english-gum/en_gum-ud-dev.conllu"),
                   overrides={}, epochs={"full": 3.0, "2000": 3.0}),
}
SIZES = ("2000", "full")
SEEDS = (0, 1, 2)
# Fine-tuning learning rates tried per variant (seed 0, 2,000 examples); Turc et al.'s
# compact BERTs take 1e-4 .. 3e-4 at BERT-base's budgets, a random encoder more.
LEARNING_RATES = (1e-4, 3e-4, 1e-3)


def prelm(args, log_path):
  """Runs `prelm ARGS`, output to log_path; returns the wall seconds."""
  start = time.monotonic()
  with open(log_path, "a") as log:
    proc = subprocess.run([sys.executable, "-m", "prelm_jax.main", *args], cwd=REPO,
                          stdout=log, stderr=subprocess.STDOUT)
  if proc.returncode:
    sys.exit(f"prelm {' '.join(args)} failed (exit {proc.returncode}); see {log_path}")
  return time.monotonic() - start


def run_once(workdir, args):
  """Trains into `workdir` unless finished; wall seconds add up over attempts."""
  timing = workdir / "study_time.json"
  if (workdir / "final_metrics.json").exists():
    return json.loads(timing.read_text())["seconds"]
  previous = json.loads(timing.read_text())["seconds"] if timing.exists() else 0.0
  workdir.parent.mkdir(parents=True, exist_ok=True)
  seconds = previous + prelm(["train", "--workdir", str(workdir), *args],
                             workdir.parent / f"{workdir.name}.log")
  timing.write_text(json.dumps({"seconds": seconds}))
  return seconds


class Study:
  """Runs (or reads back) the fine-tuning runs of each cell of the table."""

  def __init__(self, out, shared):
    self.out, self.shared = out, shared

  def run(self, task, size, variant, lr, seed):
    """(dev score, steps, wall seconds) of one fine-tuning run."""
    spec = TASKS[task]
    encoder, init_params = VARIANTS[variant]
    train_path, dev_path = (self.shared / f for f in spec["files"])
    name = f"{task}/{size}/{variant}/lr{lr:g}/seed{seed}"
    settings = {"init_from": self.out / "pretrain" / PRETRAIN[encoder],
                "init_params": init_params, "seed": seed, "optim.learning_rate": lr,
                "data.train_path": train_path, "data.dev_path": dev_path,
                "data.train_examples": 0 if size == "full" else int(size),
                "train.num_epochs": spec["epochs"][size], **spec["overrides"]}
    print(f"{name}...", flush=True)
    seconds = run_once(self.out / name, ["--config", task] + [
        f"--config.{k}={v}" for k, v in settings.items()])
    final = json.loads((self.out / name / "final_metrics.json").read_text())
    score = final[spec["metric"]]
    print(f"  {spec['metric']} {score:.4f} in {seconds / 60:.1f} min", flush=True)
    return {"name": name, "task": task, "size": size, "variant": variant, "lr": lr,
            "seed": seed, "score": score, "steps": final["step"],
            "seconds": round(seconds, 1)}

  def best_lr(self, task, variant):
    """The learning rate of LEARNING_RATES with the best seed-0 dev score on the
    2,000-example subset (each variant gets its own: a pre-trained encoder and a random
    one do not share an optimum)."""
    sweep = [self.run(task, "2000", variant, lr, 0) for lr in LEARNING_RATES]
    return max(sweep, key=lambda r: r["score"])["lr"], sweep

  def cell(self, task, size, variant):
    """The runs of seeds 0, 1, 2 at the variant's learning rate, and the LR sweep."""
    lr, sweep = self.best_lr(task, variant)
    return [self.run(task, size, variant, lr, seed) for seed in SEEDS], sweep


def summarize(records):
  """Mean, spread (sample std) and mean minutes per (task, size, variant)."""
  cells = {}
  for r in records:
    cells.setdefault((r["task"], r["size"], r["variant"]), []).append(r)
  return [{"task": t, "size": s, "variant": v, "runs": len(rs), "lr": rs[0]["lr"],
           "mean": statistics.mean(r["score"] for r in rs),
           "std": statistics.stdev(r["score"] for r in rs) if len(rs) > 1 else 0.0,
           "minutes": statistics.mean(r["seconds"] for r in rs) / 60}
          for (t, s, v), rs in cells.items()]


def table(cells):
  lines = ["| task | train examples | " + " | ".join(VARIANTS) + " |",
           "|---|---|" + "---|" * len(VARIANTS)]
  for size in SIZES:
    for task, spec in TASKS.items():
      row = {c["variant"]: c for c in cells if (c["task"], c["size"]) == (task, size)}
      if not row:
        continue
      shown = [f"{100 * row[v]['mean']:.1f} ± {100 * row[v]['std']:.1f} "
               f"(lr {row[v]['lr']:g}, {row[v]['minutes']:.1f} min)" if v in row else ""
               for v in VARIANTS]
      lines.append(f"| {task} ({spec['metric']}) | {size} | " + " | ".join(shown) + " |")
  return "\n".join(lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", default="runs/study", type=pathlib.Path)
  parser.add_argument("--shared", default=SHARED, type=pathlib.Path,
                      help="the shared data folder (gutenberg, wikitext-2-raw, sst2, ...)")
  parser.add_argument("--only", default="", help="run only names containing this")
  args = parser.parse_args()
  out = args.out.resolve()
  if not (args.shared / "gutenberg").is_dir():
    sys.exit(f"{args.shared} has no gutenberg/: pass --shared=<the shared data folder>")
  study = Study(out, args.shared)
  cells = [(task, size, variant) for size in SIZES for task in TASKS for variant in VARIANTS
           if args.only in f"{task}/{size}/{variant}"]
  pretrain_seconds = {}
  for encoder, experiment in PRETRAIN.items():
    if any(VARIANTS[variant][0] == encoder for _, _, variant in cells):
      print(f"pre-training {experiment}...", flush=True)
      pretrain_seconds[experiment] = run_once(out / "pretrain" / experiment,
                                              ["--config", experiment])
  records, sweeps = [], {}
  for task, size, variant in cells:
    runs, sweep = study.cell(task, size, variant)
    records += runs
    sweeps.update((r["name"], r) for r in sweep)
  summary = summarize(records)
  (out / "study.json").write_text(json.dumps(
      {"pretrain_seconds": pretrain_seconds, "cells": summary, "runs": records,
       "lr_sweep": list(sweeps.values())}, indent=1))
  print(table(summary))
  print(f"\n{out / 'study.json'}")


if __name__ == "__main__":
  main()

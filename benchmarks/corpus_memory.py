"""Peak memory does not grow with the corpus: prepare and train on 1x and 4x Gutenberg.

The 4x corpus holds each of ../shared/data/gutenberg's 29 books four times under
different names, copy k with "Volume k." opening each paragraph: text_files drops
repeated documents, so plain copies would prepare to the 1x corpus again. For each
corpus, in fresh processes: `prelm prepare` (vocabulary + shards, one worker) and
`prelm train` (bert_tiny_books' model, --steps steps), each one's peak resident memory
(getrusage's ru_maxrss of a process that runs only that command).

  python benchmarks/corpus_memory.py --out /tmp/corpus_memory   # ~5 min on 2 cores

Writes benchmarks/results/corpus_memory.json (and prints it).
"""
import argparse
import datetime
import json
import os
import pathlib
import platform
import shutil
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
GUTENBERG = REPO.parent / "shared" / "data" / "gutenberg"
sys.path.insert(0, str(REPO))
from prelm_jax.data import plain_text  # pylint: disable=g-import-not-at-top,wrong-import-position

MEASURE = ("import resource, subprocess, sys\n"
           "code = subprocess.run(sys.argv[1:]).returncode\n"
           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
           "sys.exit(code)\n")


def write_corpus(folder, copies):
  """Each book `copies` times (copy k's paragraphs open with "Volume k.")."""
  folder.mkdir(parents=True, exist_ok=True)
  total = 0
  for book in sorted(GUTENBERG.glob("*.txt")):
    body = plain_text.strip_gutenberg(book.read_text(encoding="utf-8").replace("\r\n", "\n"))
    for k in range(copies):
      text = body if k == 0 else f"Volume {k}. " + body.replace("\n\n", f"\n\nVolume {k}. ")
      path = folder / f"{book.stem}-{k}.txt"
      path.write_text(text, encoding="utf-8")
      total += path.stat().st_size
  return total


def peak_rss_mib(argv, log):
  """Runs argv in a process of its own; returns its peak RSS in MiB."""
  with open(log, "w") as f:
    proc = subprocess.run([sys.executable, "-c", MEASURE, *argv], cwd=REPO, stdout=subprocess.PIPE,
                          stderr=f, text=True)
  if proc.returncode:
    sys.exit(f"{' '.join(argv)} failed; see {log}")
  return int(proc.stdout.strip().splitlines()[-1]) / 1024


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default="/tmp/corpus_memory")
  parser.add_argument("--steps", type=int, default=30)
  parser.add_argument("--results", default=str(REPO / "benchmarks" / "results" /
                                               "corpus_memory.json"))
  args = parser.parse_args()
  if not GUTENBERG.exists():
    sys.exit(f"{GUTENBERG} is missing: this benchmark reads the shared Gutenberg books")
  out = pathlib.Path(args.out)
  shutil.rmtree(out, ignore_errors=True)
  rows = []
  for copies in (1, 4):
    corpus = out / f"corpus-{copies}x"
    size = write_corpus(corpus, copies)
    common = ["--config", "bert_tiny_books", f"--config.data.paths={corpus}/*.txt",
              f"--config.data.tfds_data_dir={out / 'tfds'}", "--config.data.prepare_workers=1"]
    prelm = [sys.executable, "-m", "prelm_jax.main"]
    prepare = peak_rss_mib(prelm + ["prepare", *common], out / f"prepare-{copies}x.log")
    train = peak_rss_mib(prelm + ["train", *common, "--workdir", str(out / f"run-{copies}x"),
                                  f"--config.train.num_steps={args.steps}",
                                  "--config.train.eval_every=1000000"],
                         out / f"train-{copies}x.log")
    rows.append({"copies": copies, "corpus_bytes": size,
                 "prepare_peak_rss_mib": round(prepare, 1),
                 "train_peak_rss_mib": round(train, 1)})
    print(json.dumps(rows[-1]), flush=True)
  result = {
      "date": datetime.date.today().isoformat(), "machine": platform.platform(),
      "cpus": len(os.sched_getaffinity(0)), "steps": args.steps,
      "runs": rows,
      "prepare_ratio_4x_over_1x": round(rows[1]["prepare_peak_rss_mib"] /
                                        rows[0]["prepare_peak_rss_mib"], 3),
      "train_ratio_4x_over_1x": round(rows[1]["train_peak_rss_mib"] /
                                      rows[0]["train_peak_rss_mib"], 3),
  }
  path = pathlib.Path(args.results)
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(result, indent=1) + "\n")
  print(json.dumps(result, indent=1))


if __name__ == "__main__":
  main()

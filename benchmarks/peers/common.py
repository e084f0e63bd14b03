"""What both peers share (stdlib + numpy only: it runs in the peers' interpreters).

The protocol with benchmarks/train_step.py: the peer gets one JSON argument, the spec
{hidden_size, num_layers, num_heads, mlp_dim, vocab_size, max_position_embeddings,
type_vocab_size, dropout_rate, attention_dropout_rate, seq_len, batch_size,
predictions, dtype, learning_rate, seed}. It builds its model, optimizer and batch,
runs one step (compile/warm-up) and prints {"ready": true, "setup_s", "first_step_s",
...} as one JSON line. Then for each line "K" on stdin it runs K steps and prints
{"times": [K per-step seconds], "loss": last loss, "max_rss_bytes", "device_peak_bytes"}; EOF ends it.
"""
import json
import resource
import sys
import time

import numpy as np


def spec_from_argv():
  return json.loads(sys.argv[1])


def bert_config(spec):
  """transformers.BertConfig's arguments for the spec's shapes (exact GELU, as prelm)."""
  return dict(
      vocab_size=spec["vocab_size"], hidden_size=spec["hidden_size"],
      num_hidden_layers=spec["num_layers"], num_attention_heads=spec["num_heads"],
      intermediate_size=spec["mlp_dim"], hidden_act="gelu",
      hidden_dropout_prob=spec["dropout_rate"],
      attention_probs_dropout_prob=spec["attention_dropout_rate"],
      max_position_embeddings=spec["max_position_embeddings"],
      type_vocab_size=spec["type_vocab_size"])


def random_batch(spec):
  """Random tokens with no padding, as HF's BertForPreTraining takes them.

  labels: the original id at `predictions` random positions of each row, -100 elsewhere
  (the same number of MLM predictions per row as prelm's batch); next_sentence_label 0/1.
  """
  rng = np.random.default_rng(spec["seed"])
  rows, length = spec["batch_size"], spec["seq_len"]
  input_ids = rng.integers(0, spec["vocab_size"], (rows, length), dtype=np.int64)
  token_type_ids = np.zeros((rows, length), np.int64)
  token_type_ids[:, length // 2:] = 1
  labels = np.full((rows, length), -100, np.int64)
  for r in range(rows):
    positions = rng.choice(length, spec["predictions"], replace=False)
    labels[r, positions] = rng.integers(0, spec["vocab_size"], len(positions))
  return {"input_ids": input_ids, "token_type_ids": token_type_ids,
          "attention_mask": np.ones((rows, length), np.int64), "labels": labels,
          "next_sentence_label": rng.integers(0, 2, (rows,), dtype=np.int64)}


def max_rss_bytes():
  """This process's peak resident memory. /proc's VmHWM belongs to this program alone;
  getrusage's ru_maxrss would carry over the parent's peak across fork + exec."""
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith("VmHWM:"):
          return int(line.split()[1]) * 1024  # kB
  except OSError:
    pass
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def serve(step, setup_s, device_peak=None, **info):
  """Runs the first step, says ready, then K timed steps per stdin line.

  Args:
    step: () -> loss as a Python float (must wait for the device).
    setup_s: seconds spent building the model, optimizer and batch.
    device_peak: () -> peak accelerator bytes in use, or None (CPU).
    **info: more fields for the ready line.
  """
  peak = device_peak or (lambda: None)
  start = time.perf_counter()
  loss = step()
  print(json.dumps({"ready": True, "setup_s": setup_s,
                    "first_step_s": time.perf_counter() - start, "loss": loss,
                    "max_rss_bytes": max_rss_bytes(), "device_peak_bytes": peak(),
                    **info}), flush=True)
  for line in sys.stdin:
    times = []
    for _ in range(int(line)):
      start = time.perf_counter()
      loss = step()
      times.append(time.perf_counter() - start)
    print(json.dumps({"times": times, "loss": loss, "max_rss_bytes": max_rss_bytes(),
                      "device_peak_bytes": peak()}), flush=True)

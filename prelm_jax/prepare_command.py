"""`prelm prepare --config NAME [--workers N]`: the corpus of a pre-training experiment,
tokenised and chunked into ArrayRecord shards ahead of training (data/prepare.py).

A run does this itself on first use; as a command of its own it runs where the data
lives (a CPU job, several worker processes), and on many hosts each process prepares
its share (--process_id I --num_processes N), after which one more `prelm prepare`
writes the manifest.
"""
import os

from prelm_jax import errors


def main(config, fail, *, workers=None, process_index=0, process_count=1):
  from prelm_jax import info_commands  # pylint: disable=g-import-not-at-top
  from prelm_jax.data import prepare  # pylint: disable=g-import-not-at-top
  try:
    task = info_commands.resolved(config)
    if task.name != "pretrain":
      fail(f"prelm prepare prepares a pre-training corpus; this experiment's task is "
           f"{task.name!r}, whose inputs are read as they are")
    tokenizer = prepare.trained_vocabulary(config.data)
    if tokenizer.vocab_size > config.data.vocab_size:
      fail(f"config.data.vocab_size={config.data.vocab_size} is below what this corpus "
           f"needs ({tokenizer.vocab_size}); raise it")
    directory = prepare.prepare(config.data, tokenizer, workers=workers,
                                process_index=process_index, process_count=process_count)
  except errors.PrelmError as e:
    fail(e)
  if not os.path.exists(os.path.join(directory, prepare.MANIFEST)):
    print(f"prelm prepare: this process's units are in {directory}; run `prelm prepare` "
          "once more without --process_id when every process is done")
    return
  for split, info in prepare.read_manifest(directory)["splits"].items():
    print(f"{split}: {info['chunks']:,} chunks of {info['documents']:,} documents, "
          f"{info['tokens']:,} tokens")
  print(f"prepared: {directory}")

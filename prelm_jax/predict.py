"""`prelm predict --workdir RUN --input FILE --output FILE`: a fine-tuned run labels a
file of the format it was trained on (its best evaluation's params when it kept them).

The output is the same table as the run's predictions_dev.tsv: one line per example
(classification) or per word (tagging), with the predicted label last.
"""
import ml_collections

from prelm_jax import analysis
from prelm_jax import errors
from prelm_jax import tasks
from prelm_jax.data import finetune_sources
from prelm_jax.tasks import finetune


def predict_file(workdir, input_path, output_path, *, batch_size=64):
  """Labels `input_path` into `output_path`; returns the number of examples."""
  if finetune_sources.is_tfds(input_path):
    raise errors.ConfigError(
        f"--input {input_path}: prelm predict labels a file, not a TFDS dataset (tfds: "
        "names are for config.data.train_path / dev_path); pass a file of the format "
        "the run was trained on")
  config = ml_collections.ConfigDict(finetune.read_run_config(workdir, flag="--workdir"))
  task = tasks.get(config)
  if not isinstance(task, finetune.FinetuneTask):
    raise errors.ConfigError(
        f"--workdir {workdir} is a {task.name!r} run; prelm predict needs a fine-tuned "
        "one (task classify or tag): pass the --workdir of such a run")
  run = analysis.load_run(workdir, best=True)
  records = run.task.read_unlabelled(input_path)
  arrays = run.task.encode_unlabelled(records, run.tokenizer)
  predictions = run.task.predict_arrays(run.model, run.params, arrays,
                                        batch_size=batch_size)
  run.task.write_predictions(output_path, predictions, (records, arrays))
  return len(records)

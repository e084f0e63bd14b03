"""Every experiment config loads, and the command line reports config mistakes in one line."""
import pytest

from prelm_jax import registry


@pytest.mark.parametrize("name", registry.names())
def test_every_experiment_loads(name):
  config = registry.load(name)
  for key in ("seed", "train.num_steps", "train.batch_size", "train.log_every",
              "train.eval_every", "train.checkpoint_every"):
    section = config
    for part in key.split("."):
      section = section[part]
  assert config.data.max_seq_len <= config.model.max_position_embeddings


def test_registry_resolves_names_and_rejects_unknown():
  assert registry.resolve("bert_tiny_pydocs").endswith("experiments/bert_tiny_pydocs.py")
  assert registry.resolve("experiments/x.py:arg") == "experiments/x.py:arg"
  with pytest.raises(ValueError, match="unknown experiment 'nope'.*bert_tiny_pydocs"):
    registry.resolve("nope")


@pytest.mark.parametrize("args, expected", [
    (["--config.train.nmu_steps=5"],
     """bad --config override ('nmu_steps' Did you mean "num_steps" instead of "nmu_steps"?)"""),
    (["--config.train.num_steps=abc"], "num_steps"),
    (["--workdir="], "--workdir is empty"),
    (["--workdir=/etc/passwd/run"], "is not writable"),
])
def test_cli_errors_are_one_line(args, expected, tmp_path, prelm_cli):
  argv = ["train", "--config", "bert_tiny_pydocs", f"--workdir={tmp_path}/w", *args]
  proc = prelm_cli(*argv)
  assert proc.returncode == 2, proc.stderr
  lines = [l for l in proc.stderr.splitlines() if l.strip()]
  assert any(expected in l for l in lines), proc.stderr
  assert "Traceback" not in proc.stderr
  error_lines = [l for l in lines if l.startswith(("prelm: error", "FATAL"))]
  assert len(error_lines) == 1, proc.stderr

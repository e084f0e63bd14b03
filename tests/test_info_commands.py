"""`prelm list` and `prelm show`: every experiment listed, one resolved as a run sees it."""
import json

from prelm_jax import info_commands
from prelm_jax import registry


def test_list_names_every_experiment_with_its_summary_aligned(prelm_cli):
  proc = prelm_cli("list")
  assert proc.returncode == 0, proc.stderr
  experiments = proc.stdout.split("\n\n")[0]  # the sweeps follow after a blank line
  rows = {line.split()[0]: line for line in experiments.splitlines()[1:] if line.strip()}
  assert set(rows) == set(registry.names())
  columns = set()
  for name, line in rows.items():
    text = info_commands.summary(registry.EXPERIMENTS_DIR / f"{name}.py")
    assert line.endswith(text), line
    columns.add(line.index(text))
  assert len(columns) == 1, columns


def test_list_shows_the_sweeps(tmp_path, monkeypatch):
  shipped = info_commands.list_lines()
  at = next(i for i, line in enumerate(shipped) if line.startswith("sweeps ("))
  assert {line.split()[0] for line in shipped[at + 1:]} == {
      "attention_vs_lstm", "mask_rate", "objectives", "size_ladder"}
  monkeypatch.setattr(info_commands, "SWEEPS_DIR", tmp_path)
  (tmp_path / "lr_grid.py").write_text('"""Learning rates 1e-4..1e-3 for bert_tiny."""\n')
  (tmp_path / "_shared.py").write_text('"""Not a sweep."""\n')
  lines = info_commands.list_lines()
  at = lines.index(f"sweeps ({tmp_path}):")
  assert lines[at + 1:] == ["  lr_grid  Learning rates 1e-4..1e-3 for bert_tiny."]


def test_show_prints_config_json_with_overrides_then_params(prelm_cli):
  proc = prelm_cli("show", "bert_tiny", "--config.train.num_steps=7")
  assert proc.returncode == 0, proc.stderr
  *config_lines, last = proc.stdout.rstrip("\n").split("\n")
  expected = registry.load("bert_tiny")
  expected.train.num_steps = 7
  assert json.loads("\n".join(config_lines)) == json.loads(json.dumps(expected.to_dict()))
  # 4,433,468 as BertForPreTraining, plus 6 padding rows of the vocabulary (x 129).
  assert last.startswith("params: 4434242 ("), last


def test_show_fine_tuning_counts_the_head_and_says_what_it_assumes(prelm_cli):
  proc = prelm_cli("show", "sst2")
  assert proc.returncode == 0, proc.stderr
  last = proc.stdout.rstrip("\n").split("\n")[-1]
  assert last.startswith("params: ") and "classifier 1,538" in last, last
  assert "2 outputs" in last and "config.data.labels" in last, last


def one_error_line(proc):
  assert proc.returncode == 2, proc.stderr
  lines = [l for l in proc.stderr.splitlines() if l.strip()]
  assert len(lines) == 1 and lines[0].startswith("prelm: error: "), proc.stderr
  return lines[0]


def test_show_errors_are_one_line(prelm_cli):
  assert "did you mean bert_mini" in one_error_line(prelm_cli("show", "bert_mnii"))
  assert "bad --config override" in one_error_line(
      prelm_cli("show", "bert_tiny", "--config.train.nmu_steps=3"))
  assert "config.train.batch_size=0" in one_error_line(
      prelm_cli("show", "bert_tiny", "--config.train.batch_size=0"))
  assert "prelm show takes an experiment name" in one_error_line(prelm_cli("show"))


def test_show_name_becomes_the_config_flag():
  assert info_commands.with_config_flag(["prelm", "show", "sst2", "--config.seed=1"]) == [
      "prelm", "show", "--config", "sst2", "--config.seed=1"]
  unchanged = ["prelm", "show", "--config", "sst2"]
  assert info_commands.with_config_flag(unchanged) == unchanged
  assert info_commands.with_config_flag(["prelm", "train", "x"]) == ["prelm", "train", "x"]


def test_help_describes_list_and_show(prelm_cli):
  proc = prelm_cli("show", "--help")
  assert proc.returncode == 0, proc.stderr
  assert "prelm show NAME|PATH" in proc.stdout and "params: N" in proc.stdout
  assert "  list " in proc.stdout

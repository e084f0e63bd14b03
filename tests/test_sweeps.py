"""Sweeps: expansion and run names, `prelm sweep` killed and rerun (complete runs kept,
the interrupted one resumed), `prelm report`, a SLURM job array, and bad input."""
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from prelm_jax.sweeps import cli
from prelm_jax.sweeps import layout
from prelm_jax.sweeps import spec
# test_launch's one-node SLURM cluster: it skips where SLURM is not installed and fails
# under CI=true, as test_launch's own SLURM test does.
import test_launch  # pylint: disable=g-bad-import-order
from test_launch import slurm_cluster  # noqa: F401  pylint: disable=unused-import

REPO = pathlib.Path(__file__).resolve().parent.parent
# 40 steps, a checkpoint every 5: a window in which a run has a checkpoint and no end.
MICRO = {"train.num_steps": 40, "train.log_every": 5, "train.eval_every": 20,
         "train.checkpoint_every": 5, "train.keep_checkpoints": 2}


def write_sweep(folder, body):
  path = folder / "my_sweep.py"
  path.write_text(f'"""A test sweep."""\n\n\ndef get_sweep():\n  return {body}\n')
  return str(path)


# --- expansion --------------------------------------------------------------------------

def test_grid_and_seeds_expand_to_readable_names():
  sweep = spec.expand("attention_vs_lstm")
  assert sweep.base == "bert_tiny_books"
  assert [r.name for r in sweep.runs] == [
      "encoder-transformer_seed-0", "encoder-transformer_seed-1", "encoder-transformer_seed-2",
      "encoder-lstm_seed-0", "encoder-lstm_seed-1", "encoder-lstm_seed-2"]
  assert sweep.runs[4].overrides == {"model.encoder": "lstm", "seed": 1}
  assert spec.expand("attention_vs_lstm") == sweep  # deterministic


def test_zip_cases_and_extra_overrides():
  mask = spec.expand("mask_rate", {"train.num_steps": "10"})
  assert [r.overrides["data.max_predictions_per_seq"] for r in mask.runs] == [20, 40, 52]
  assert all(r.overrides["train.num_steps"] == "10" for r in mask.runs)
  assert mask.runs[1].name == "mask_prob-0.3_max_predictions_per_seq-40_seed-0"
  sizes = spec.expand("size_ladder")
  assert [r.name for r in sizes.runs] == ["tiny_seed-0", "mini_seed-0", "small_seed-0"]
  assert sizes.runs[2].overrides["model.hidden_size"] == 512


def test_objectives_names():
  runs = spec.expand("objectives").runs  # its keys exist in the base experiment
  assert [r.name for r in runs] == ["mlm_seed-0", "mlm_nsp_seed-0", "mlm_sop_seed-0",
                                    "mlm_wwm_seed-0"]


def test_names_are_filesystem_safe_and_disambiguated(tmp_path):
  path = write_sweep(tmp_path, '{"base": "bert_micro_test", '
                     '"grid": {"data.paths": ["a/b*.txt", "c d"]}}')
  assert [r.name for r in spec.expand(path).runs] == ["paths-a-b-.txt", "paths-c-d"]
  assert spec.run_name(None, {"a.x": 1, "b.x": 2}, ["a.x", "b.x"]) == "a.x-1_b.x-2"


# --- bad input --------------------------------------------------------------------------

def test_unknown_sweep_suggests_close_names(one_line_error):
  one_line_error(spec.SweepError, lambda: spec.expand("mask_rates"),
                 "unknown sweep 'mask_rates'", "did you mean mask_rate")


def test_unknown_override_key(one_line_error, tmp_path):
  path = write_sweep(tmp_path, '{"base": "bert_micro_test", "grid": {"model.encodr": ["lstm"]}}')
  one_line_error(spec.SweepError, lambda: spec.expand(path),
                 "model.encodr does not exist", "did you mean model.encoder")
  one_line_error(spec.SweepError,
                 lambda: spec.expand("attention_vs_lstm", {"train.num_stepz": "1"}),
                 "train.num_stepz does not exist")


def test_grid_of_no_runs(one_line_error, tmp_path):
  path = write_sweep(tmp_path, '{"base": "bert_micro_test", "grid": {"seed": []}}')
  one_line_error(spec.SweepError, lambda: spec.expand(path), "no runs", "seed")


def test_root_of_another_sweep_is_refused_and_kept(one_line_error, tmp_path):
  (tmp_path / layout.SWEEP_FILE).write_text(json.dumps({"sweep": "mask_rate", "runs": []}))
  one_line_error(spec.SweepError, lambda: cli.sweep(
      ["attention_vs_lstm", "--root", str(tmp_path), "--dry-run"], say=lambda _: None),
      "runs of sweep 'mask_rate'")
  assert json.loads((tmp_path / layout.SWEEP_FILE).read_text())["sweep"] == "mask_rate"


def test_override_of_what_the_sweep_varies(one_line_error, tmp_path):
  one_line_error(spec.SweepError, lambda: cli.sweep(
      ["attention_vs_lstm", "--root", str(tmp_path), "--config.seed=3"], say=print),
      "--config.seed is what sweep attention_vs_lstm varies")
  assert not list(tmp_path.iterdir())


def test_slurm_without_sbatch_says_so(one_line_error, tmp_path, monkeypatch):
  monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch on it
  one_line_error(spec.SweepError, lambda: cli.sweep(
      ["attention_vs_lstm", "--root", str(tmp_path / "r"), "--executor", "slurm"],
      say=lambda _: None), "sbatch not found")


def test_report_without_runs(one_line_error, tmp_path):
  from prelm_jax.sweeps import report  # pylint: disable=g-import-not-at-top
  one_line_error(spec.SweepError, lambda: report.write_report(str(tmp_path)), "no runs")


def test_cli_prints_one_line_errors(prelm_cli, tmp_path):
  result = prelm_cli("sweep", "attention_vs_lsm", "--root", str(tmp_path))
  assert result.returncode == 2
  assert result.stderr.strip().splitlines() == [
      result.stderr.strip()] and "prelm: error: unknown sweep" in result.stderr
  result = prelm_cli("report", str(tmp_path / "none"))
  assert result.returncode == 2 and "prelm: error:" in result.stderr


def test_help(prelm_cli):
  help_text = prelm_cli("sweep", "--help").stdout
  assert "prelm sweep NAME --root DIR" in help_text and "report     a sweep" in help_text


def test_dry_runs_print_commands(prelm_cli, tmp_path):
  local = prelm_cli("sweep", "attention_vs_lstm", "--root", str(tmp_path / "r"), "--dry-run",
                    "--config.train.num_steps=7")
  assert local.returncode == 0, local.stderr
  lines = local.stdout.splitlines()[1:]
  assert len(lines) == 6 and all("--config.train.num_steps=7" in l for l in lines)
  assert "--workdir " + str(tmp_path / "r" / "encoder-lstm_seed-2") in lines[-1]
  assert not (tmp_path / "r").exists()
  slurm = prelm_cli("sweep", "attention_vs_lstm", "--root", str(tmp_path / "s"), "--dry-run",
                    "--executor", "slurm", "--parallel", "2", "--sbatch=--time=1:00:00")
  assert slurm.returncode == 0, slurm.stderr
  assert slurm.stdout.splitlines()[1] == (
      f"sbatch --array=0-5%2 --parsable --time=1:00:00 {REPO}/launch/slurm/sweep.sbatch "
      f"{tmp_path}/s/commands.txt")
  assert len(slurm.stdout.splitlines()) == 3 + 6 and not (tmp_path / "s").exists()
  tpu = prelm_cli("sweep", "size_ladder", "--root", "/mnt/r", "--executor", "tpu")
  assert tpu.stdout.splitlines()[1].startswith(
      f"{REPO}/launch/tpu/tpu.sh run --name $TPU_NAME --zone $TPU_ZONE -- train")


def test_a_failed_run_does_not_stop_the_others(tmp_path, monkeypatch):
  from prelm_jax.sweeps import executors  # pylint: disable=g-import-not-at-top
  # A stand-in for prelm: the run of seed 1 fails, the others finish.
  fake = ("import os, sys; w = sys.argv[sys.argv.index('--workdir') + 1]; "
          "os.makedirs(w); sys.exit(3) if w.endswith('seed-1') else "
          "open(os.path.join(w, 'final_metrics.json'), 'w').write('{}')")
  monkeypatch.setattr(executors, "PRELM", [sys.executable, "-c", fake])
  sweep = write_sweep(tmp_path, '{"base": "bert_micro_test", "seeds": [0, 1, 2]}')
  lines = []
  code = cli.sweep([sweep, "--root", str(tmp_path / "r"), "--parallel", "2"], lines.append)
  assert code == 1
  assert lines[-2:] == ["prelm sweep: 2 of 3 runs finished, failed:",
                        f"  seed-1: exit 3, log {tmp_path}/r/seed-1.log"]
  assert (tmp_path / "r" / "seed-2" / "final_metrics.json").exists()


# --- a real sweep, killed and rerun ------------------------------------------------------

def complete_checkpoints(workdir):
  folder = pathlib.Path(workdir) / "checkpoints"
  return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit()) if folder.is_dir() else []


def file_state(path):
  return path.stat().st_mtime_ns, path.read_bytes()


@pytest.mark.slow  # ~100 s on 2 cores: four micro runs, one of them twice
def test_sweep_killed_then_rerun_resumes_and_reports(pydocs_data_dir, tmp_path, read_metrics,
                                                     prelm_cli, tree_digest):
  sweep = write_sweep(tmp_path, '{"base": "bert_micro_test", '
                      '"grid": {"optim.learning_rate": [0.003, 0.001]}, "seeds": [0, 1]}')
  root = tmp_path / "root"
  argv = [sys.executable, "-m", "prelm_jax.main", "sweep", sweep, "--root", str(root),
          f"--config.data.tfds_data_dir={pydocs_data_dir}"]
  argv += [f"--config.{k}={v}" for k, v in MICRO.items()]
  names = [r.name for r in spec.expand(sweep).runs]
  assert names == ["learning_rate-0.003_seed-0", "learning_rate-0.003_seed-1",
                   "learning_rate-0.001_seed-0", "learning_rate-0.001_seed-1"]
  first, second = root / names[0], root / names[1]
  # One device a run: 8 simulated ones make each step several times slower on 2 cores.
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1")
  process = subprocess.Popen(argv, cwd=REPO, start_new_session=True, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
  deadline = time.monotonic() + 300
  while not ((first / "final_metrics.json").exists() and complete_checkpoints(second)):
    assert process.poll() is None, process.stdout.read().decode()[-3000:]
    assert time.monotonic() < deadline
    time.sleep(0.05)
  os.killpg(process.pid, signal.SIGKILL)
  process.wait()
  assert not (second / "final_metrics.json").exists()
  kept = file_state(first / "final_metrics.json"), tree_digest(first / "checkpoints")

  rerun = subprocess.run(argv + ["--parallel", "2"], cwd=REPO, capture_output=True,
                         text=True, timeout=600, env=env)
  assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
  assert "1 complete already, 3 to run" in rerun.stdout
  assert f"start {names[0]}" not in rerun.stdout
  assert (file_state(first / "final_metrics.json"), tree_digest(first / "checkpoints")) == kept
  log = (root / f"{names[1]}.log").read_text()
  assert "Resuming from the checkpoint at step" in log, log[-3000:]
  steps = [r["step"] for r in read_metrics(second, "train")]
  assert steps == sorted(set(steps)) and steps[-1] == 40
  saved = json.loads((root / "sweep.json").read_text())
  assert saved["sweep"] == "my_sweep" and [r["name"] for r in saved["runs"]] == names

  report = prelm_cli("report", str(root))
  assert report.returncode == 0, report.stderr
  for name in names:
    assert f"| {name} | done | 40 |" in report.stdout
  import pandas as pd  # pylint: disable=g-import-not-at-top
  table = pd.read_csv(root / "report.csv")
  assert list(table.run) == names and {"final_loss", "best_loss", "tokens_per_sec",
                                       "params", "train_seconds"} <= set(table.columns)
  assert set(table.params) == {34082}  # bert_micro_test, its 600-token vocabulary
  assert (root / "curves_loss.png").exists() and (root / "curves_train_loss.png").exists()


def test_report_lists_failed_and_unstarted_runs(tmp_path):
  from prelm_jax.sweeps import report  # pylint: disable=g-import-not-at-top
  runs = [{"name": n, "overrides": {"seed": i}} for i, n in enumerate(["a", "b", "c"])]
  (tmp_path / layout.SWEEP_FILE).write_text(json.dumps({"sweep": "s", "runs": runs}))
  (tmp_path / "a").mkdir()
  (tmp_path / "a" / "metrics.jsonl").write_text(
      '{"step": 5, "split": "train", "loss": 3.0}\n{"step": 5, "split": "eval", "loss": 2.5}\n')
  (tmp_path / "b.log").write_text("prelm: error: something\n")
  text = report.write_report(str(tmp_path))
  assert "| a | incomplete | 5 |" in text and "| b | failed | 0 |" in text
  assert "| c | not started | 0 |" in text


# --- SLURM --------------------------------------------------------------------------------

@pytest.mark.slow  # ~60 s: cluster start, two runs
def test_slurm_job_array_runs_a_sweep(pydocs_data_dir, slurm_cluster, tmp_path, prelm_cli):
  env = slurm_cluster
  sweep = write_sweep(tmp_path, '{"base": "bert_micro_test", "seeds": [0, 1]}')
  root = tmp_path / "root"
  env = dict(env, JAX_PLATFORMS="cpu", PRELM_PYTHON=sys.executable,
             XLA_FLAGS="--xla_force_host_platform_device_count=1")
  submitted = subprocess.run(
      [sys.executable, "-m", "prelm_jax.main", "sweep", sweep, "--root", str(root),
       "--executor", "slurm", f"--sbatch=--output={tmp_path}/array-%a.out",
       f"--config.data.tfds_data_dir={pydocs_data_dir}"],
      cwd=REPO, capture_output=True, text=True, env=env, timeout=120)
  assert submitted.returncode == 0, submitted.stderr
  job = submitted.stdout.split("submitted job array ")[1].split()[0]
  state = test_launch.wait_for_job(job, env, timeout=600)
  logs = "".join(p.read_text() for p in root.glob("*.log"))
  assert state == ("COMPLETED", "0:0"), logs[-4000:]
  report = prelm_cli("report", str(root))
  assert "| seed-0 | done |" in report.stdout and "| seed-1 | done |" in report.stdout

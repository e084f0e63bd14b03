"""What a user sees from `prelm`: help, config files that do not load, quiet libraries."""
import pathlib
import subprocess
import sys

import pytest

from prelm_jax import train

REPO = pathlib.Path(__file__).resolve().parent.parent
TRAIN_FLAGS = ("--config", "--workdir", "--allow_config_change", "--distributed",
               "--coordinator_address", "--num_processes", "--process_id")
PLAN_FLAGS = ("--config", "--mesh", "--devices", "--device-memory")


def run_python(code):
  return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                        text=True, timeout=300)


@pytest.mark.parametrize("args, flags, examples", [
    (["--help"], TRAIN_FLAGS + PLAN_FLAGS, ["prelm train --config", "prelm plan --config"]),
    (["help"], TRAIN_FLAGS + PLAN_FLAGS, ["prelm train --config", "prelm plan --config"]),
    (["train", "--help"], TRAIN_FLAGS, ["prelm train --config"]),
    (["train", "-h"], TRAIN_FLAGS, ["prelm train --config"]),
    (["plan", "--help"], PLAN_FLAGS, ["prelm plan --config"]),
])
def test_help_names_commands_flags_and_an_example(args, flags, examples, prelm_cli):
  proc = prelm_cli(*args)
  assert proc.returncode == 0, proc.stderr
  assert proc.stderr == ""
  for word in ("train", "plan", "--config.a.b=value", "42") + flags:
    assert word in proc.stdout, (word, proc.stdout)
  for example in examples:
    assert example in proc.stdout, proc.stdout
  # Each flag comes with its absl help string, e.g. plan's memory flag.
  if "--device-memory" in flags:
    assert "memory of one device, e.g. 16GiB" in proc.stdout


def test_plan_help_leaves_out_train_flags(prelm_cli):
  assert "--workdir" not in prelm_cli("plan", "--help").stdout


def _write(path, text):
  path.write_text(text)
  return path


@pytest.mark.parametrize("make_file, expected", [
    (lambda d: d / "missing.py", "does not exist"),
    (lambda d: _write(d / "syntax.py", "import ml_collections\n\ndef get_config(:\n"),
     "line 3: SyntaxError"),
    (lambda d: _write(d / "raises.py", "import ml_collections\n\n\ndef get_config():\n"
                      "  raise RuntimeError('no such corpus size')\n"),
     "line 5: RuntimeError: no such corpus size"),
    (lambda d: _write(d / "raises_value.py", "import ml_collections\n\n\ndef get_config():\n"
                      "  raise ValueError('bad width')\n"),
     "line 5: ValueError: bad width"),
    (lambda d: _write(d / "no_get_config.py", "seed = 0\n"), "has no get_config()"),
])
def test_config_file_that_does_not_load_is_one_line(make_file, expected, tmp_path,
                                                    prelm_cli):
  path = make_file(tmp_path)
  proc = prelm_cli("train", "--config", str(path), f"--workdir={tmp_path}/w",
                   "--config.train.num_steps=3")
  assert proc.returncode == 2, proc.stderr
  assert "Traceback" not in proc.stderr
  lines = proc.stderr.splitlines()
  assert len(lines) == 1 and lines[0].startswith("prelm: error: "), proc.stderr
  assert f"config file {path}" in lines[0] and expected in lines[0], lines[0]
  assert not (tmp_path / "w").exists()


@pytest.fixture(scope="module")
def finished_run(pydocs_data_dir, tmp_path_factory, tiny_config):
  workdir = tmp_path_factory.mktemp("finished")
  train.run(tiny_config(pydocs_data_dir, num_steps=2, checkpoint_every=2), str(workdir))
  return workdir


def test_load_run_prints_nothing(finished_run):
  # In a fresh process, as in a notebook: no logging set up, so library warnings would
  # reach stderr (in-process, pytest's log capture would swallow them).
  proc = run_python("from prelm_jax import analysis\n"
                    f"config, _, _, _ = analysis.load_run({str(finished_run)!r})\n"
                    "assert config.train.num_steps == 2\n")
  assert proc.returncode == 0, proc.stderr
  assert (proc.stdout, proc.stderr) == ("", "")


def test_first_prepare_prints_one_plain_line(tmp_path):
  proc = run_python("from prelm_jax.data import corpus\n"
                    f"corpus.load_documents('pydocs', 'validation', {str(tmp_path)!r})\n")
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout == ""  # TFDS prints its banners to stdout
  assert "\x1b[" not in proc.stderr and "\r" not in proc.stderr  # its progress bars
  assert "dataset_info.json" not in proc.stderr
  [line] = proc.stderr.splitlines()
  assert line.startswith(f"Preparing the pydocs corpus in {tmp_path}/pydocs/"), line
  assert line.endswith("(first use; cached after)"), line

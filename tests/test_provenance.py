"""<workdir>/provenance.json: one record per start of a run, resumes included."""
import json
import re
import subprocess

from prelm_jax import provenance
from prelm_jax import train


def test_each_start_and_resume_adds_a_record(pydocs_data_dir, tiny_config, tmp_path):
  workdir = tmp_path / "run"
  train.run(tiny_config(pydocs_data_dir, num_steps=4, checkpoint_every=2), str(workdir),
            stop_at=2)
  train.run(tiny_config(pydocs_data_dir, num_steps=4, checkpoint_every=2), str(workdir))
  records = json.loads((workdir / provenance.PROVENANCE_FILE).read_text())
  assert [r["resumed_from_step"] for r in records] == [None, 2]
  first = records[0]
  assert first["argv"] and first["cwd"] and first["processes"] == 1
  assert set(first["versions"]) == {"python", *provenance.LIBRARIES}
  assert first["versions"]["jax"] and first["versions"]["orbax-checkpoint"]
  assert first["git"] is None or (re.fullmatch(r"[0-9a-f]{40}", first["git"]["commit"])
                                  and isinstance(first["git"]["dirty"], bool))


def test_git_state_of_this_checkout_and_without_git(tmp_path, monkeypatch):
  state = provenance.git_state()
  if state is not None:  # this checkout is a git repository
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=provenance._PACKAGE_DIR,
                          capture_output=True, text=True, check=True).stdout.strip()
    assert state["commit"] == head
  monkeypatch.setattr(provenance, "_PACKAGE_DIR", tmp_path)  # not in any repository
  assert provenance.git_state() is None

  def no_git(*args, **kwargs):
    raise FileNotFoundError("git")
  monkeypatch.setattr(subprocess, "run", no_git)
  assert provenance.git_state() is None


def test_dirty_means_tracked_files_changed(tmp_path, monkeypatch):
  repo = tmp_path / "repo"
  repo.mkdir()
  git = lambda *a: subprocess.run(["git", "-C", str(repo), *a], check=True,
                                  capture_output=True)
  git("init", "-q")
  (repo / "provenance.py").write_text("x = 1\n")
  git("add", "provenance.py")
  git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
  monkeypatch.setattr(provenance, "_PACKAGE_DIR", repo)
  assert provenance.git_state()["dirty"] is False
  (repo / "untracked.txt").write_text("notes")
  assert provenance.git_state()["dirty"] is False
  (repo / "provenance.py").write_text("x = 2\n")
  assert provenance.git_state()["dirty"] is True


def test_an_unreadable_file_is_kept_aside(tmp_path):
  path = tmp_path / provenance.PROVENANCE_FILE
  path.write_text("[{cut short")
  provenance.append(str(path), None)
  assert len(json.loads(path.read_text())) == 1
  assert (tmp_path / f"{provenance.PROVENANCE_FILE}.unreadable").read_text() == "[{cut short"

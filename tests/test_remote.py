"""Team workflows on a scratch project with the repository's own scrape stage: a teammate gets the team's outputs,
downloads included, from a DVC remote instead of re-running them; a queued experiment reads the data roots a
workspace run reads."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
       "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}


def _run(cwd: Path, *args: str) -> str:
    done = subprocess.run(list(args), cwd=cwd, env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _dvc(cwd: Path, *args: str) -> str:
    return _run(cwd, sys.executable, "-m", "dvc", *args)


def _scrape_project(project: Path, **scrape_settings) -> None:
    """A git + DVC project holding the repository's scrape stage, as dvc.yaml declares it, and its params."""
    project.mkdir()
    for folder in ("stages", "faceocc"):
        shutil.copytree(ROOT / folder, project / folder, ignore=shutil.ignore_patterns("__pycache__"))
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["scrape"]
    (project / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"scrape": stage}}))
    scrape = yaml.safe_load((ROOT / "params.yaml").read_text())["scrape"]
    scrape["demo"].update(images_per_class=1, faceless_images=0)
    scrape.update(scrape_settings)
    (project / "params.yaml").write_text(yaml.safe_dump({"scrape": scrape}))
    (project / ".gitignore").write_text("__pycache__/\n")
    _run(project, "git", "init", "-q")
    _dvc(project, "init", "-q")
    _dvc(project, "config", "core.analytics", "false")


def test_push_then_pull_through_a_local_remote_restores_outputs_and_the_download_cache(tmp_path):
    project, remote, clone = tmp_path / "project", tmp_path / "remote", tmp_path / "clone"
    _scrape_project(project)  # on a small demo
    # what an earlier web scrape left in the download cache (persist: the stage keeps it)
    blobs = project / "data" / "web_cache" / "blobs"
    blobs.mkdir(parents=True)
    (blobs / "0a1b.jpg").write_bytes(b"downloaded once")
    (project / "data" / "web_cache" / "urls.jsonl").write_text('{"url": "https://example.org/a.jpg"}\n')

    _dvc(project, "remote", "add", "-d", "team", str(remote))
    _dvc(project, "repro")
    _run(project, "git", "add", "-A")
    _run(project, "git", "commit", "-q", "-m", "scrape")
    _dvc(project, "push")

    _run(tmp_path, "git", "clone", "-q", str(project), str(clone))
    assert not (clone / "data" / "scrape").exists()
    _dvc(clone, "pull")
    assert json.loads(_dvc(clone, "status", "--json")) == {}  # up to date: nothing to re-run
    assert (clone / "data" / "web_cache" / "blobs" / "0a1b.jpg").read_bytes() == b"downloaded once"
    manifest = "data/scrape/manifest.csv"
    assert (clone / manifest).read_bytes() == (project / manifest).read_bytes()


def test_a_queued_experiment_reads_a_data_root_beside_the_project_and_writes_what_the_workspace_does(
        tmp_path, astronaut):
    """DVC runs a queued (or --temp) experiment in a copy under .dvc/tmp/exps, where `../photos` is not the folder
    params.yaml means: before data_root the scrape failed there with a traceback."""
    for label in ("face", "masked"):
        (tmp_path / "photos" / label).mkdir(parents=True)
        image = astronaut.copy()
        image[::7] = 0 if label == "masked" else image[::7]
        Image.fromarray(image).save(tmp_path / "photos" / label / "one.png")
    project = tmp_path / "project"
    _scrape_project(project, source="folder", folder={"roots": ["../photos"], "voc_context": 1.0, "series_bits": 0})
    _dvc(project, "repro")
    _run(project, "git", "add", "-A")
    _run(project, "git", "commit", "-q", "-m", "scrape")
    manifest = (project / "data" / "scrape" / "manifest.csv").read_bytes()
    assert b"../photos/masked/one.png" in manifest

    _dvc(project, "exp", "run", "--queue", "-S", "scrape.max_pixels=100000000", "-n", "queued")
    _dvc(project, "exp", "run", "--run-all")
    status = _dvc(project, "queue", "status")
    assert "Success" in status and "Failed" not in status, status
    _dvc(project, "exp", "apply", "queued")
    assert (project / "data" / "scrape" / "manifest.csv").read_bytes() == manifest

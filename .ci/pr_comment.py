"""The pull-request comment a reviewer reads: what a change did to the figures, in one GitHub comment.

    python .ci/pr_comment.py --base origin/main --out comment/     # comment/report.md + the pictures it shows

Sections, each cut to its share of GitHub's 65,536-character limit:
- the released models' real-data figures (models/release*/summary.json) where they changed;
- `dvc params diff`;
- `dvc metrics diff`, numbers only, without timings and machine facts (they differ on every runner and would
  drown the figures: latency, throughput, seconds, CPU names);
- pictures: the class counts, the released models' confusion matrices, each ONNX INT8 model's. `cml comment
  update --publish` uploads the local images the Markdown names.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
from pathlib import Path

GITHUB_COMMENT_LIMIT = 65_536
BUDGET = 60_000  # what the sections may use: the limit less room for cml's watermark and the headings
# keys of figures that say how fast this runner was, not what the change did
MACHINE_KEY = re.compile(r"latency|throughput|per_second|seconds|fps|cpu|threads|machine|wall|elapsed|speed|"
                         r"(^|[._])ms($|[._])|_ms($|[._])", re.IGNORECASE)
RELEASE_SUMMARIES = ("models/release/summary.json", "models/release_mask_wearing/summary.json")
PICTURES = ("reports/class_counts.png", "models/release/confusion_test.png",
            "models/release/confusion_out_of_domain.png", "models/release_mask_wearing/confusion_test.png",
            "reports/eval/*/onnx_int8/confusion.png", "reports/eval/mobilenet_v2/onnx_int8/curves.png",
            "reports/eval/mobilenet_v2/onnx_int8/errors.png", "reports/crop_misses.png")


def flatten(value, prefix: str = "") -> dict[str, float]:
    """Every number in a JSON value, keyed by its dotted path; strings and booleans are not figures."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in flatten(item, f"{prefix}{key}.").items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in flatten(item, f"{prefix}{i}.").items()}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {prefix.rstrip("."): value}
    return {}


def changed_figures(old: dict, new: dict) -> list[tuple[str, float | None, float | None]]:
    """(key, old, new) for each number that differs, machine-dependent keys left out, in key order."""
    before, after = flatten(old), flatten(new)
    return [(k, before.get(k), after.get(k)) for k in sorted(before.keys() | after.keys())
            if not MACHINE_KEY.search(k) and before.get(k) != after.get(k)]


def metrics_rows(diff: dict) -> list[tuple[str, str, float | None, float | None]]:
    """`dvc metrics diff --json` as (file, key, old, new), numbers only and without machine figures."""
    rows = []
    for path, keys in sorted(diff.get("diff", diff).items()):
        for key, change in sorted(keys.items()):
            old, new = change.get("old"), change.get("new")
            numeric = all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in (old, new))
            if numeric and old != new and not MACHINE_KEY.search(key):
                rows.append((path, key, old, new))
    return rows


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:g}"


def _change(old: float | None, new: float | None) -> str:
    return "new" if old is None else "gone" if new is None else f"{new - old:+.4g}"


def table(header: tuple[str, ...], rows: list[tuple], budget: int) -> str:
    """A Markdown table cut to `budget` characters, saying how many rows were left out."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    used = sum(len(line) + 1 for line in lines)
    for shown, row in enumerate(rows):
        line = "| " + " | ".join(str(cell) for cell in row) + " |"
        if used + len(line) + 1 > budget - 120:  # room for the note below
            lines.append(f"\n{len(rows) - shown} more rows left out to keep the comment under GitHub's limit.")
            break
        lines.append(line)
        used += len(line) + 1
    return "\n".join(lines)


def release_section(base: str, budget: int) -> str:
    parts = []
    for path in RELEASE_SUMMARIES:
        new = json.loads(Path(path).read_text()) if Path(path).is_file() else {}
        old = json.loads(_git_show(base, path) or "{}")
        rows = changed_figures(old, new)
        if rows:
            parts.append(f"### {path}\n\n" + table(("figure", "base", "this PR", "change"),
                                                    [(k, _number(o), _number(n), _change(o, n)) for k, o, n in rows],
                                                    budget // len(RELEASE_SUMMARIES)))
    return "\n\n".join(parts) or "The released models' figures did not change."


def metrics_section(diff: dict, budget: int) -> str:
    rows = metrics_rows(diff)
    if not rows:
        return "No metric changed (timings and machine facts are not compared)."
    return table(("file", "metric", "base", "this PR", "change"),
                 [(p, k, _number(o), _number(n), _change(o, n)) for p, k, o, n in rows], budget)


def params_section(text: str, budget: int) -> str:
    text = text.strip() or "No param changed."
    return text if len(text) <= budget else text[: budget - 80].rsplit("\n", 1)[0] + "\n\n(cut to fit the comment)"


def pictures(out: Path) -> list[str]:
    """Copy each picture that exists beside the report; Markdown lines naming the copies."""
    lines = []
    for pattern in PICTURES:
        for path in sorted(Path().glob(pattern)):
            copy = out / "pictures" / str(path).replace("/", "__")
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, copy)
            lines.append(f"**{path}**\n\n![{path}](pictures/{copy.name})")
    return lines


def comment(release: str, params: str, metrics: str, picture_lines: list[str]) -> str:
    text = "\n\n".join(["# What this pull request changes", "## Released models (real data)", release,
                        "## Params", params, "## Metrics (demo pipeline)", metrics, "## Pictures", *picture_lines])
    assert len(text) < GITHUB_COMMENT_LIMIT, len(text)
    return text + "\n"


def _git_show(rev: str, path: str) -> str | None:
    done = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else None


def _dvc(*args: str) -> str:
    return subprocess.run(["dvc", *args], capture_output=True, text=True, check=True).stdout


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="the revision compared against, e.g. origin/main")
    parser.add_argument("--out", required=True, type=Path, help="folder for report.md and its pictures")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    picture_lines = pictures(args.out)
    budget = BUDGET - sum(len(line) + 2 for line in picture_lines)
    text = comment(release_section(args.base, budget // 3),
                   params_section(_dvc("params", "diff", args.base, "--md"), budget // 3),
                   metrics_section(json.loads(_dvc("metrics", "diff", args.base, "--json") or "{}"), budget // 3),
                   picture_lines)
    (args.out / "report.md").write_text(text)
    print(f"{args.out / 'report.md'}: {len(text)} characters, {len(picture_lines)} pictures")


if __name__ == "__main__":
    main()

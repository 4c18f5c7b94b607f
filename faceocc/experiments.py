"""The source document's table across experiments: rows = backbones, columns = data strategy x variant.

Each DVC experiment run with a different `balance.strategy` (see README, "Comparing experiments") has its own
`reports/summary.json`; this reads them all from `dvc exp show --json` and lays them side by side:

    dvc exp show --json -A | python -m faceocc.experiments > reports/strategies.md

A release workspace has no git (DVC runs there with --no-scm), so no `dvc exp`: run it once per strategy in a
copy and name each copy's summary instead:

    python -m faceocc.experiments --summary none=build/strategy_none/reports/summary.json \
        --summary oversample=build/release/reports/summary.json ...
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Iterator


def _revisions(exp_show: list) -> Iterator[dict]:
    for baseline in exp_show:
        yield baseline
        for experiment in baseline.get("experiments") or []:
            for rev in experiment.get("revs") or []:
                yield {**rev, "name": rev.get("name") or experiment.get("name")}


def strategy_summaries(exp_show: list) -> dict[str, tuple[str, dict]]:
    """{strategy: (experiment name, summary)}; the most recent experiment of each strategy wins."""
    found: dict[str, tuple[str, dict, str]] = {}
    for rev in _revisions(exp_show):
        data = rev.get("data") or {}
        summary = ((data.get("metrics") or {}).get("reports/summary.json") or {}).get("data")
        params = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
        strategy = (params.get("balance") or {}).get("strategy")
        if not summary or not strategy:
            continue
        stamp = data.get("timestamp") or ""
        if strategy not in found or stamp > found[strategy][2]:
            found[strategy] = (rev.get("name") or rev.get("rev", "")[:7], summary, stamp)
    return {s: (name, summary) for s, (name, summary, _) in found.items()}


STRATEGY_ORDER = ("none", "undersample", "oversample")


def strategy_table(summaries: dict[str, tuple[str, dict]]) -> str:
    strategies = [s for s in STRATEGY_ORDER if s in summaries] + sorted(set(summaries) - set(STRATEGY_ORDER))
    columns = [(s, v) for s in strategies for v in sorted({v for b in summaries[s][1].values() for v in b})]
    backbones = sorted({b for s in strategies for b in summaries[s][1]})
    lines = ["# Test-split results by data strategy", "",
             "Cells: accuracy / macro-F1 / latency (batch 1, one thread, median) / size. Experiments: "
             + ", ".join(f"`{s}` = {summaries[s][0]}" for s in strategies) + ".", "",
             "| backbone | " + " | ".join(f"{s} {v}" for s, v in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for backbone in backbones:
        cells = []
        for s, v in columns:
            c = summaries[s][1].get(backbone, {}).get(v)
            cells.append("—" if c is None else
                         f"{c['accuracy']:.1%} / {c['macro_f1']:.3f} / {c['latency_ms_p50']:.2f} ms / "
                         f"{c['size_mb']:.1f} MB")
        lines.append(f"| {backbone} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def named_summaries(pairs: list[str]) -> dict[str, tuple[str, dict]]:
    """{strategy: (file, summary)} from STRATEGY=PATH arguments."""
    found = {}
    for pair in pairs:
        strategy, sep, path = pair.partition("=")
        if not sep or not strategy or not path:
            raise SystemExit(f"--summary {pair!r}: expected STRATEGY=PATH")
        try:
            found[strategy] = (path, json.loads(Path(path).read_text()))
        except (OSError, ValueError) as err:
            raise SystemExit(f"--summary {path}: {err}") from None
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--summary", action="append", default=[], metavar="STRATEGY=PATH",
                        help="a strategy's reports/summary.json (instead of `dvc exp show --json` on stdin)")
    args = parser.parse_args(argv)
    summaries = named_summaries(args.summary) if args.summary else strategy_summaries(json.load(sys.stdin))
    if not summaries:
        raise SystemExit("no experiment with reports/summary.json and balance.strategy found in the input")
    sys.stdout.write(strategy_table(summaries))


if __name__ == "__main__":
    main()

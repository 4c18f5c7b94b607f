"""The source document's table across experiments: rows = backbones, columns = data strategy x variant.

Each DVC experiment run with a different `balance.strategy` (see README, "Comparing experiments") has its own
`reports/summary.json`; this reads them all from `dvc exp show --json` and lays them side by side:

    dvc exp show --json -A | python -m tools.experiments > reports/strategies.md

A release workspace has no git (DVC runs there with --no-scm), so no `dvc exp`: run it once per strategy in a
copy and name each copy's summary instead:

    python -m tools.experiments --summary none=build/strategy_none/reports/summary.json \
        --summary oversample=build/release/reports/summary.json ...
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Iterator

from faceocc.markdown import table


def _params(rev: dict) -> dict:
    return (((rev.get("data") or {}).get("params") or {}).get("params.yaml") or {}).get("data") or {}


def _flat(value, prefix: str = "") -> dict:
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _flat(item, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): value}


def _other_changes(params: dict, baseline: dict) -> list[str]:
    """The params an experiment changes besides balance.strategy, against its baseline commit's."""
    mine, base = _flat(params), _flat(baseline)
    return sorted(k for k in mine.keys() | base.keys() if k != "balance.strategy" and mine.get(k) != base.get(k))


def _candidates(exp_show: list, skipped: dict[str, str]) -> Iterator[dict]:
    """The newest commit and its experiments: those of older commits, or that change more than the strategy,
    would credit other code or settings to a strategy's column; each is named in `skipped` with the reason."""
    commits = [b for b in exp_show if "workspace" not in (b.get("rev"), b.get("name"))]
    for index, baseline in enumerate(commits):
        label = baseline.get("name") or baseline.get("rev", "")[:7]
        revs = [{**rev, "name": rev.get("name") or experiment.get("name")}
                for experiment in baseline.get("experiments") or [] for rev in experiment.get("revs") or []]
        if index > 0:
            for rev in [baseline, *revs]:
                skipped[rev.get("name") or rev.get("rev", "")[:7]] = f"based on {label}, not on the newest commit"
            continue
        yield baseline
        for rev in revs:
            others = _other_changes(_params(rev), _params(baseline))
            if others:
                skipped[rev["name"] or rev.get("rev", "")[:7]] = "also changes " + ", ".join(others[:5])
            else:
                yield rev


def strategy_summaries(exp_show: list, skipped: dict[str, str] | None = None) -> dict[str, tuple[str, dict]]:
    """{strategy: (experiment name, summary)} over the newest commit and its experiments that change only
    balance.strategy; the most recent experiment of each strategy wins. The others go to `skipped`, with why."""
    skipped = {} if skipped is None else skipped
    found: dict[str, tuple[str, dict, str]] = {}
    for rev in _candidates(exp_show, skipped):
        data = rev.get("data") or {}
        metrics = data.get("metrics") or {}
        summary = (metrics.get("reports/summary.json") or {}).get("data")
        strategy = (_params(rev).get("balance") or {}).get("strategy")
        if not summary or not strategy:
            continue
        summary = with_latency(summary, metrics)
        stamp = data.get("timestamp") or ""
        if strategy not in found or stamp > found[strategy][2]:
            found[strategy] = (rev.get("name") or rev.get("rev", "")[:7], summary, stamp)
    return {s: (name, summary) for s, (name, summary, _) in found.items()}


def with_latency(summary: dict, metrics: dict) -> dict:
    """The summary's cells with each model's latency from the speed.json its evaluate stage wrote beside its
    metrics (summary.json keeps no timings; summaries of older commits still carry their own)."""
    cells = {}
    for backbone, by_variant in summary.items():
        if not isinstance(by_variant, dict):
            continue
        for variant, cell in by_variant.items():
            speed = (metrics.get(f"reports/eval/{backbone}/{variant}/speed.json") or {}).get("data") or {}
            latency = speed.get("latency_ms_p50", cell.get("latency_ms_p50"))
            cells.setdefault(backbone, {})[variant] = {**cell, **({"latency_ms_p50": latency} if latency else {})}
    return cells


STRATEGY_ORDER = ("none", "undersample", "oversample")


def strategy_table(summaries: dict[str, tuple[str, dict]]) -> str:
    strategies = [s for s in STRATEGY_ORDER if s in summaries] + sorted(set(summaries) - set(STRATEGY_ORDER))
    columns = [(s, v) for s in strategies for v in sorted({v for b in summaries[s][1].values() for v in b})]
    backbones = sorted({b for s in strategies for b in summaries[s][1]})
    lines = ["# Test-split results by data strategy", "",
             "Cells: accuracy / macro-F1 / latency (batch 1, one thread, median) / size. Experiments: "
             + ", ".join(f"`{s}` = {summaries[s][0]}" for s in strategies) + ".", ""]

    def cell(c: dict | None) -> str:
        return ("—" if c is None else f"{c['accuracy']:.1%} / {c['macro_f1']:.3f} / "
                + (f"{c['latency_ms_p50']:.2f} ms" if "latency_ms_p50" in c else "— ms") + f" / {c['size_mb']:.1f} MB")

    lines += table(["backbone", *(f"{s} {v}" for s, v in columns)],
                   [[backbone, *(cell(summaries[s][1].get(backbone, {}).get(v)) for s, v in columns)]
                    for backbone in backbones])
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
    skipped: dict[str, str] = {}
    summaries = named_summaries(args.summary) if args.summary else strategy_summaries(json.load(sys.stdin), skipped)
    for name, why in sorted(skipped.items()):
        print(f"experiments: {name} left out: {why}", file=sys.stderr)
    if not summaries:
        raise SystemExit("no experiment with reports/summary.json and balance.strategy found in the input")
    sys.stdout.write(strategy_table(summaries))


if __name__ == "__main__":
    main()

"""Stage `serve_benchmark`: `faceocc serve` held under load on loopback -> reports/serve.json: requests per second
and p50 / p95 latency at each number of concurrent clients posting 640 px photos, 503s and errors, the server's
peak memory, and beside them the same photos through the predictor in this process (what `faceocc predict` does
per photo), so the server's overhead is a ratio measured in one run (faceocc/serve_benchmark.py)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from faceocc.atomic import write_metrics
from faceocc.benchmark import cpu_name
from faceocc.classifier import ModelCard
from faceocc.serve_benchmark import ServeBenchmarkParams, benchmark
from stages._common import load_params, setup_logging

log = logging.getLogger("serve_benchmark")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, type=Path, help="the model directory the server loads")
    parser.add_argument("--metrics", required=True, type=Path, help="reports/serve.json")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    setup_logging()
    p = load_params("serve_benchmark", ServeBenchmarkParams, args.params)
    card = ModelCard.read(args.model)
    figures = benchmark(args.model, card.task or "occlusion4", p)
    write_metrics(args.metrics, figures)
    log.info("%s on %s: %s ms per photo in process, overhead x%s at 1 client", args.model, cpu_name(),
             figures["direct_ms_per_photo"], figures["server_overhead_ratio_at_1_client"])


if __name__ == "__main__":
    main()

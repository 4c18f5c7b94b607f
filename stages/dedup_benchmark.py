"""Stage `dedup_benchmark`: how long near-duplicate clustering takes at scale (100,000 hashes by default).

The hashes are synthetic, with the structure that matters: mostly unrelated images plus planted copies a few
bits away from an original. The figure goes to reports/ (a DVC metric), never into a timed unit test.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceocc.atomic import write_metrics
from faceocc.dedup import cluster, near_pairs
from stages._common import load_params, setup_logging


@dataclass(frozen=True)
class DedupBenchmarkParams:
    hashes: int = 100_000
    planted_copies: float = 0.1      # fraction of the hashes that are near copies of another
    max_bits_flipped: int = 4        # a copy differs from its original by 0..this many bits
    distances: tuple[int, ...] = (4, 8)
    seed: int = 0


def planted_hashes(params: DedupBenchmarkParams) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(params.seed)
    copies = int(params.hashes * params.planted_copies)
    originals = rng.integers(0, np.iinfo(np.uint64).max, params.hashes - copies, dtype=np.uint64, endpoint=True)
    source = rng.integers(0, len(originals), copies)
    flipped = originals[source].copy()
    for i in range(copies):
        for bit in rng.choice(64, int(rng.integers(0, params.max_bits_flipped + 1)), replace=False):
            flipped[i] ^= np.uint64(1) << np.uint64(int(bit))
    return np.concatenate([originals, flipped]), source


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--metrics", required=True, type=Path)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    setup_logging()
    params = load_params("dedup_benchmark", DedupBenchmarkParams, args.params)
    hashes, source = planted_hashes(params)
    n_orig = len(hashes) - len(source)
    results = {}
    for distance in params.distances:
        start = time.perf_counter()
        labels = cluster(hashes, distance)
        seconds = time.perf_counter() - start
        results[f"max_distance_{distance}"] = {
            "seconds": round(seconds, 2), "clusters": int(labels.max()) + 1,
            "planted_copies_found": round(float(np.mean(labels[n_orig:] == labels[source])), 4)}
    # the index must find exactly what comparing every pair finds: checked on a slice small enough for that
    sample = hashes[: 3000]
    i, j = np.triu_indices(len(sample), 1)
    brute = np.stack([i, j], axis=1)[np.bitwise_count(sample[i] ^ sample[j]) <= max(params.distances)]
    indexed = near_pairs(sample, max(params.distances))
    print(f"on {platform.machine()} with {os.cpu_count()} CPUs")
    write_metrics(args.metrics, {"hashes": len(hashes), "cpu_count": os.cpu_count(), "results": results,
                                 "index_matches_all_pairs_on_3000": int(np.array_equal(brute, indexed))})
    print(results)


if __name__ == "__main__":
    main()

"""CI: the fresh clone's `dvc repro` must reproduce the committed figures.

Counts (split sizes per class, balanced counts, model sizes) must match exactly, accuracies and F1 within half a
point; latencies and throughput are machine noise and are not compared.
"""

import json
import subprocess
import sys

TOLERANCE = 0.005
failures = []


def committed(path):
    return json.loads(subprocess.run(["git", "show", f"HEAD:{path}"], capture_output=True, text=True,
                                     check=True).stdout)


def current(path):
    with open(path) as fh:
        return json.load(fh)


for path in ("reports/split.json", "reports/balance.json"):
    if committed(path) != current(path):
        failures.append(f"{path} differs from the committed file")

old, new = committed("reports/summary.json"), current("reports/summary.json")
if sorted(old) != sorted(new):
    failures.append(f"summary.json backbones differ: {sorted(old)} vs {sorted(new)}")
for backbone, variants in old.items():
    for variant, cell in variants.items():
        mine = new.get(backbone, {}).get(variant)
        if mine is None:
            failures.append(f"{backbone}/{variant} missing")
            continue
        for key in ("accuracy", "macro_f1"):
            if abs(cell[key] - mine[key]) > TOLERANCE:
                failures.append(f"{backbone}/{variant} {key}: committed {cell[key]}, reproduced {mine[key]}")
        for cls, recall in cell["recall"].items():
            if abs(recall - mine["recall"].get(cls, -1)) > TOLERANCE:
                failures.append(f"{backbone}/{variant} recall[{cls}]: committed {recall}, reproduced {mine['recall'].get(cls)}")
        if cell["size_mb"] != mine["size_mb"]:
            failures.append(f"{backbone}/{variant} size_mb: committed {cell['size_mb']}, reproduced {mine['size_mb']}")

if failures:
    print("reproduction check failed:\n  " + "\n  ".join(failures))
    sys.exit(1)
print("reproduction check: split, balance and summary figures match the committed ones")

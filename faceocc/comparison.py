"""The source document's comparison table on the test split: every backbone x variant's accuracy, latency and
size against the requirement, INT8 beside the FP32 model it came from, the out-of-domain source and recall per
class (reports/summary.json and reports/metrics.md, the report stage's outputs)."""

from __future__ import annotations

from faceocc.benchmark import cpu_name
from faceocc.markdown import table
from faceocc.requirement import Requirement, misses


def summarise(evaluations: list[dict], req: Requirement) -> dict:
    """{backbone: {variant: {accuracy, macro_f1, recall: {class: r}, size_mb, meets_requirement, val_macro_f1}}},
    plus out_of_domain: {accuracy, macro_f1, recall} where the split held a source out. No timings: they change
    each run, and reports/metrics.md has them."""
    summary: dict = {}
    for ev in sorted(evaluations, key=lambda e: (e["backbone"], e["variant"])):
        cell = {"accuracy": ev["accuracy"], "macro_f1": ev["macro_f1"],
                "recall": {c: v["recall"] for c, v in ev["per_class"].items()}, "size_mb": ev["size_mb"],
                "meets_requirement": int(passes(ev, req))}
        if "val" in ev:
            cell["val_macro_f1"] = ev["val"]["macro_f1"]
        if "out_of_domain" in ev:
            ood = ev["out_of_domain"]
            cell["out_of_domain"] = {"accuracy": ood["accuracy"], "macro_f1": ood["macro_f1"],
                                     "recall": {c: v["recall"] for c, v in ood["per_class"].items()
                                                if v["support"]}}
        summary.setdefault(ev["backbone"], {})[ev["variant"]] = cell
    return summary


def passes(evaluation: dict, req: Requirement) -> bool:
    return not misses(req, evaluation["size_mb"], evaluation["latency_ms_p50"], evaluation["accuracy"])


def markdown(summary: dict, evaluations: list[dict], req: Requirement) -> str:
    variants = sorted({v for b in summary.values() for v in b})
    latency = {(e["backbone"], e["variant"]): e["latency_ms_p50"] for e in evaluations}
    per_face = ("the crop and its mirror image in one batch of 2, the models averaging both views"
                if any(e.get("views_per_face", 1) == 2 for e in evaluations) else "batch 1")
    lines = [
        "# Test-split results", "",
        f"Cells: accuracy / latency per face ({per_face}, one thread, median) / model size. "
        f"Requirement (the source document's): size < {req.max_size_mb:g} MB, accuracy > {req.min_accuracy:.0%}, "
        f"latency < {req.max_latency_ms:g} ms. Latency measured on {cpu_name()} (the evaluate stages log theirs).",
        ""]

    def cell(backbone: str, c: dict | None, v: str) -> str:
        return "—" if c is None else f"{c['accuracy']:.1%} / {latency[backbone, v]:.2f} ms / {c['size_mb']:.1f} MB"

    lines += table(["backbone", *variants, "macro-F1", "meets requirement"],
                   [[backbone, *(cell(backbone, by_variant.get(v), v) for v in variants),
                     " / ".join(f"{by_variant[v]['macro_f1']:.3f}" for v in variants if v in by_variant),
                     ", ".join(v for v in variants if v in by_variant and by_variant[v]["meets_requirement"]) or "none"]
                    for backbone, by_variant in summary.items()])
    pairs = [(base, int8) for base, int8 in INT8_VARIANT_OF.items()
             if any(base in b and int8 in b for b in summary.values())]
    if pairs:
        def change(backbone: str, base: str, int8: str) -> str:
            a, b = summary[backbone].get(base), summary[backbone].get(int8)
            return ("—" if a is None or b is None else
                    f"{a['accuracy']:.1%} → {b['accuracy']:.1%} ({(b['accuracy'] - a['accuracy']) * 100:+.1f} pt)"
                    f" / {_ratio(latency[backbone, int8], latency[backbone, base])} / "
                    f"{_ratio(b['size_mb'], a['size_mb'])}")

        lines += ["", "## Before and after INT8", "",
                  "Accuracy change in points, latency and size as INT8 / FP32 ratios (separate processes: "
                  "reports/quantization.md has ratios timed in one process).", ""]
        lines += table(["backbone", *(f"{int8} vs {base}: accuracy / latency / size" for base, int8 in pairs)],
                       [[backbone, *(change(backbone, base, int8) for base, int8 in pairs)] for backbone in summary])
    ood_cells = [(b, v, c) for b, by_variant in summary.items() for v, c in by_variant.items()
                 if "out_of_domain" in c]
    if ood_cells:
        ood_classes = sorted({k for _, _, c in ood_cells for k in c["out_of_domain"]["recall"]})
        images = next((e["out_of_domain"]["images"] for e in evaluations if "out_of_domain" in e), 0)
        lines += ["", "## Out-of-domain check", "",
                  f"A whole source held out of train, val and test ({images} crops): does the in-domain test figure "
                  "survive photos from elsewhere?", ""]
        lines += table(["backbone", "variant", "test accuracy", "out-of-domain accuracy", "out-of-domain macro-F1",
                        *(f"recall {k}" for k in ood_classes)],
                       [[b, v, f"{c['accuracy']:.1%}", f"{c['out_of_domain']['accuracy']:.1%}",
                         f"{c['out_of_domain']['macro_f1']:.3f}",
                         *(f"{c['out_of_domain']['recall'][k]:.3f}" if k in c["out_of_domain"]["recall"] else "—"
                           for k in ood_classes)] for b, v, c in ood_cells])
    if summary:
        classes = list(next(iter(next(iter(summary.values())).values()))["recall"])
        lines += ["", "## Recall per class", ""]
        lines += table(["backbone", "variant", *classes],
                       [[backbone, v, *(f"{c['recall'][k]:.3f}" for k in classes)]
                        for backbone, by_variant in summary.items() for v, c in by_variant.items()])
    return "\n".join(lines) + "\n"


INT8_VARIANT_OF = {"fp32": "fx_int8", "onnx_fp32": "onnx_int8"}  # each INT8 variant beside the FP32 it came from


def _ratio(new: float, old: float) -> str:
    return f"{new / old:.2f}x" if old else "—"

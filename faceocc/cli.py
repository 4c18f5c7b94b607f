"""`faceocc`: classify the faces in photos, or sort photos into one folder per class.

    faceocc predict photos/ --jsonl faces.jsonl --annotate boxed/    # the released model (models/release)
    faceocc predict crops/*.png --crops
    faceocc sort photos/ sorted/ --policy largest --dry-run
    faceocc video clip.mp4 --out clip.annotated.mp4 --jsonl frames.jsonl
    faceocc video 0 --out webcam.mp4 --max-frames 500      # webcam 0; Ctrl-C also stops it cleanly
    faceocc score labelled/ --match 'src__*' --json score.json   # found and right per class, photos in <class>/
    faceocc predict --task mask_wearing photos/                    # with / without / incorrectly worn mask
    faceocc predict photos/ --model models/onnx_int8/mobilenet_v2  # a pipeline model (the demo's: a warning)
    faceocc serve --port 8000                                      # HTTP API + web page on http://127.0.0.1:8000/

Every entry pointed at gets a line: a file is decoded by its content, whatever its name; a bad one (missing,
unreadable, not an image, empty, too large, a FIFO, an empty folder) becomes one line of output with the reason,
never a stopped run; the closing summary on stderr counts it.

Exit status, the same in every subcommand: 0 every input was read (a photo without a face is not a failure);
1 some input could not be read or was damaged (each named on stderr); 2 nothing ran: a bad argument, model or
setting (one line on stderr).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from faceocc.classifier import ModelFileError
from faceocc.detectors import DETECTORS
from faceocc.devices import DEVICE_NAMES, is_device_name, resolve_device
from faceocc.inference import load_classifier, read_photo
from faceocc.one_stage_model import ONE_STAGE
from faceocc.provenance import version
from faceocc.tasks import TASKS, task_of_model

POLICIES = ("largest", "any", "all")
EXIT_OK, EXIT_INPUT_FAILED, EXIT_REFUSED = 0, 1, 2
FEW_TRAINING_FACES = 50  # per class; the demo DAG trains on 8, the releases on hundreds


class Refused(Exception):
    """Nothing can run (a bad argument, model or setting); str(err) is the one line the user reads."""


def load_model(path: Path | None, task_name: str | None = None, device: str = "cpu"):
    """The model at `path`, else the task's released one (faceocc.inference.load_classifier), or Refused with
    its one line; a demo-sized model gets a warning on stderr."""
    try:
        classifier = load_classifier(path, task_name, device)
    except (ModelFileError, ValueError) as err:  # ValueError: a device this machine does not have
        raise Refused(str(err)) from None
    if warning := few_faces_warning(path or "the released model", classifier.card.train_counts):
        print(f"faceocc: warning: {warning}", file=sys.stderr)
    return classifier


def few_faces_warning(model_dir: Path, train_counts: dict) -> str:
    """A model trained on a handful of faces per class (the demo pipeline's 8) answers confidently and wrongly;
    say so once, before its labels are read as if they meant something."""
    fewest = min(train_counts.values(), default=0)
    if not train_counts or fewest >= FEW_TRAINING_FACES:
        return ""
    return (f"{model_dir} learnt from {fewest} training faces in its rarest class (fewer than "
            f"{FEW_TRAINING_FACES}, as the demo data gives): do not trust its labels; the released model, "
            "the default --model, learnt from hundreds")


def _predictor(args, threads: int = 0, task: str | None = None):
    """The predictor of args.model (else `task`'s, else args.task's release) on args.device, with the card's
    finder or args.detector / args.min_score; Refused with one line when any of them will not do."""
    from faceocc.inference import FacePredictor, finder_settings

    try:
        device = str(resolve_device(args.device))
    except ValueError as err:
        raise Refused(str(err)) from None
    if args.detector == ONE_STAGE:
        from faceocc.one_stage_model import OneStagePredictor

        try:
            return OneStagePredictor(args.model, task or args.task, threads, args.min_score)
        except ValueError as err:
            raise Refused(str(err)) from None
    classifier = load_model(args.model, task or args.task, device)
    try:
        settings = finder_settings(classifier.card, args.detector, args.min_score)
    except ValueError as err:
        raise Refused(str(err)) from None
    return FacePredictor(classifier, settings, threads=threads, device=device)


def _masked_classes(card) -> tuple[str, ...]:
    """The model's classes that mean a mask over nose or mouth (its task's), for the pose's `masked_face`."""
    return getattr(task_of_model(card.task, card.classes), "masked_classes", ())


def _relative(file: Path, root: Path) -> Path:
    try:
        return file.relative_to(root)
    except ValueError:
        return Path(file.name)


def _unique(path: Path) -> Path:
    """`path`, or `name_2.ext`, `name_3.ext`... if something is already there."""
    candidate, k = path, 1
    while candidate.exists() or candidate.is_symlink():
        k += 1
        candidate = path.with_name(f"{path.stem}_{k}{path.suffix}")
    return candidate


def _open_output(path: Path):
    """A text file to write results to, or Refused naming it (a folder, a missing parent, no permission)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, "w", encoding="utf-8", newline="")
    except OSError as err:
        raise Refused(f"{path}: cannot write it ({err.strerror or err})") from None


def _output_folder(path: Path | None) -> None:
    """Refused when a folder for outputs is a file already."""
    if path is not None and path.exists() and not path.is_dir():
        raise Refused(f"{path}: a file, not a folder for the outputs")


def predict(args) -> int:
    from faceocc.annotate import draw_predictions
    from faceocc.images import encode_png
    from faceocc.inputs import list_inputs
    from faceocc.pose import add_pose

    if args.crops and args.detector == ONE_STAGE:
        raise Refused(f"--crops classifies whole files; --detector {ONE_STAGE} finds the faces: use one or the other")
    predictor = _predictor(args)
    masked = _masked_classes(predictor.card)
    entries = list(list_inputs(args.paths))
    _output_folder(args.annotate)
    out = _open_output(args.jsonl) if args.jsonl else sys.stdout
    counts, errors, faces = Counter(), 0, 0
    try:
        for entry in tqdm(entries, desc="predict", unit="image", disable=len(entries) < 2 or None):
            file = entry.path
            image, error = (None, entry.problem) if entry.problem else read_photo(file)
            if image is None:
                records = [{"path": str(file), "label": None, "reason": error}]
                errors += 1
                print(f"faceocc: {file}: {error}", file=sys.stderr)
            else:
                records = predictor.predict_image(image, str(file), crops=args.crops)
                if args.pose:
                    records = add_pose(records, (image.shape[1], image.shape[0]), args.attention_yaw,
                                       args.attention_pitch, masked_labels=masked)
            for r in records:
                out.write(json.dumps(r, ensure_ascii=False) + "\n")
                if r["label"] is not None:
                    faces += 1
                    counts[r["label"]] += 1
                elif image is not None:
                    counts[r["reason"]] += 1
            if args.annotate and image is not None:
                target = _unique((args.annotate / _relative(file, entry.root)).with_suffix(".png"))
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(encode_png(draw_predictions(image, records, predictor.classes)))
            out.flush()
    finally:
        if out is not sys.stdout:
            out.close()
    summary = {"images": len(entries), "faces": faces, "unreadable": errors, **dict(sorted(counts.items()))}
    print("faceocc predict: " + json.dumps(summary), file=sys.stderr)
    return EXIT_INPUT_FAILED if errors else EXIT_OK


def destinations(records: list[dict], policy: str) -> list[str]:
    """The class folders one photo goes to under a policy: `largest` face's class; `any`: every class seen;
    `all`: the class every face shares, else `mixed`. No face: `no_face`."""
    labels = [r["label"] for r in records if r.get("label")]
    if not labels:
        return ["no_face"]
    if policy == "largest":  # records come largest face first
        return [labels[0]]
    if policy == "any":
        return sorted(set(labels))
    return [labels[0]] if len(set(labels)) == 1 else ["mixed"]


def sort(args) -> int:
    from faceocc.inputs import list_inputs

    src, dst = args.src, args.dst
    if not src.is_dir():
        raise Refused(f"{src}: not a folder")
    if dst.resolve() == src.resolve() or src.resolve() in dst.resolve().parents:
        raise Refused(f"{dst}: must not be inside {src} (sorted copies would be sorted again)")
    _output_folder(dst)
    predictor = _predictor(args)
    columns = ["source", "faces", "labels", "destination", "action", "reason"]
    # each decision is written as it is made, so an interrupted run still says what it copied
    out = sys.stdout if args.dry_run else _open_output(args.decisions or dst / "decisions.csv")
    writer = csv.DictWriter(out, columns, lineterminator="\n")
    writer.writeheader()
    counts = Counter()
    try:
        for entry in tqdm(list(list_inputs([src])), desc="sort", unit="image"):
            for row in _sort_one(entry, predictor, dst, args):
                writer.writerow(row)
                kind = {"skipped": "unreadable", "failed": "failed"}.get(row["action"])
                counts[kind or Path(row["destination"]).parent.name] += 1  # the class folder
            out.flush()
    finally:
        if out is not sys.stdout:
            out.close()
    print("faceocc sort: " + json.dumps(dict(sorted(counts.items()))), file=sys.stderr)
    return EXIT_INPUT_FAILED if counts["unreadable"] or counts["failed"] else EXIT_OK


def _sort_one(entry, predictor, dst: Path, args) -> list[dict]:
    """The decisions for one entry: skipped with the reason, or one row per destination folder."""
    file, root = entry.path, entry.root
    image, error = (None, entry.problem) if entry.problem else read_photo(file)
    if image is None:
        print(f"faceocc: {file}: {error}", file=sys.stderr)
        return [{"source": str(file), "faces": 0, "labels": "", "destination": "", "action": "skipped",
                 "reason": error}]
    records = predictor.predict_image(image, str(file))
    labels = [r["label"] for r in records if r["label"]]
    name = "__".join(_relative(file, root).parts)  # photos of the same name in different sub-folders
    rows = []
    for folder in destinations(records, args.policy):
        target, reason = dst / folder / name, records[0].get("reason", "") if not labels else ""
        if args.dry_run:
            action = "dry-run"
        else:
            try:
                action, target = _place(file, target, args.mode)
            except OSError as err:  # no space, no permission: this file fails, the others go on
                action, reason = "failed", f"cannot write {target}: {err.strerror or err}"
                print(f"faceocc: {file}: {reason}", file=sys.stderr)
        rows.append({"source": str(file), "faces": len(labels), "labels": " ".join(labels),
                     "destination": str(target), "action": action, "reason": reason})
    return rows


def _place(source: Path, target: Path, mode: str) -> tuple[str, Path]:
    """Copy or link `source` to `target` (renamed if taken); the original is never moved or changed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target = _unique(target)
    if mode == "link":
        try:
            os.link(source, target)
            return "linked", target
        except OSError:  # another file system, or links not allowed: a copy still leaves the original alone
            pass
    shutil.copy2(source, target)
    return "copied", target


def video(args) -> int:
    import itertools
    import signal

    import cv2

    from faceocc.annotate import draw_predictions
    from faceocc.decode_errors import decoder_errors
    from faceocc.pose import add_pose
    from faceocc.video import VideoSettings, frames, run_video

    predictor = _predictor(args)
    masked = _masked_classes(predictor.card)
    settings = VideoSettings(detect_every=args.detect_every, detect_max_side=args.detect_max_side)
    several = len(args.inputs) > 1
    names = video_output_names(args.inputs)
    if several:
        _output_folder(args.out)
    out = _open_output(args.jsonl) if args.jsonl else None
    failures = 0
    try:
        for source, name in zip(args.inputs, names):
            refusal = not_a_video(source)
            capture = None if refusal else cv2.VideoCapture(int(source) if source.isdigit() else source)
            if capture is None or not capture.isOpened():
                reason = refusal or "cannot open as a video (missing, not a video, or unsupported codec)"
                print(f"faceocc: {source}: {reason}", file=sys.stderr)
                print("faceocc video: " + json.dumps({"video": source, "frames": 0, "error": reason}),
                      file=sys.stderr)
                failures += 1
                continue
            live = source.isdigit()
            fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
            fps = fps if fps > 0 else 25.0
            announced = 0 if live else max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0))  # cameras say -1
            writer, target = None, None
            if args.out:
                target = args.out / f"{name}.annotated.mp4" if several or args.out.is_dir() else args.out
                target.parent.mkdir(parents=True, exist_ok=True)
            bar = tqdm(total=announced or None, desc=Path(source).name, unit="frame")

            def on_frame(index, frame, records, source=source):
                nonlocal writer
                if args.pose:
                    records = add_pose(records, (frame.shape[1], frame.shape[0]), args.attention_yaw,
                                       args.attention_pitch, masked_labels=masked)
                if target is not None:
                    if writer is None:
                        h, w = frame.shape[:2]
                        writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
                    if writer.isOpened():  # OpenCV drops frames without a word when it cannot write the file
                        drawn = draw_predictions(frame, records, predictor.classes)
                        writer.write(cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
                if out is not None:
                    out.write(json.dumps({"video": source, "frame": index, "time_s": round(index / fps, 3),
                                          "faces": records}, ensure_ascii=False) + "\n")
                bar.update(1)

            # Ctrl-C ends a camera (or any) stream after the current frame, so the video and summary are complete
            stop = []
            previous = signal.signal(signal.SIGINT, lambda *_: stop.append(True))
            stream = itertools.takewhile(lambda _: not stop, frames(capture))
            if args.max_frames:
                stream = itertools.islice(stream, args.max_frames)
            try:
                with decoder_errors() as damage:
                    summary = run_video(stream, predictor, settings, on_frame, one_stage=args.detector == ONE_STAGE)
            finally:
                signal.signal(signal.SIGINT, previous)
                bar.close()
                capture.release()
                wrote = writer is not None and writer.isOpened()
                if writer is not None:
                    writer.release()
            summary = {"video": source, **summary}
            if stop:
                summary["stopped"] = "interrupted"
            if announced and summary["frames"] < announced and not stop and not args.max_frames:
                # containers announce their length; stopping short means a truncated or corrupt stream
                summary["error"] = f"stopped after {summary['frames']} of {announced} frames (truncated or corrupt)"
                print(f"faceocc: {source}: {summary['error']}", file=sys.stderr)
                failures += 1
            elif summary["frames"] == 0:
                summary["error"] = "no frame could be decoded"
                print(f"faceocc: {source}: {summary['error']}", file=sys.stderr)
                failures += 1
            elif damage:
                # FFmpeg concealed the damage and handed back frames: the output exists but shows garbage there
                summary["error"] = f"damaged stream: {len(damage)} decoder errors (first: {damage[0]})"
                print(f"faceocc: {source}: {summary['error']}", file=sys.stderr)
                failures += 1
            if wrote:
                summary["output"] = str(target)
            elif target is not None and summary["frames"]:
                summary["error"] = f"cannot write {target} (OpenCV could not open it for writing)"
                print(f"faceocc: {source}: {summary['error']}", file=sys.stderr)
                failures += 1
            print("faceocc video: " + json.dumps(summary), file=sys.stderr)
    finally:
        if out is not None:
            out.close()
    return EXIT_INPUT_FAILED if failures else EXIT_OK


def not_a_video(source: str) -> str | None:
    """Why an input cannot be a video, where its file says so before OpenCV tries: a folder, or a picture
    (OpenCV would read a truncated JPEG as a one-frame video without a word)."""
    import stat

    from faceocc.images import sniff_format
    from faceocc.inputs import not_regular

    path = Path(source)
    if path.is_dir():
        return "a folder, not a video (give the video files)"
    if path.exists() and not (path.is_file() or stat.S_ISCHR(path.stat().st_mode)):  # /dev/video0 is a camera
        return f"{not_regular(path.stat().st_mode)}, not a video file or camera"
    if path.is_file():
        with open(path, "rb") as fh:
            image_format = sniff_format(fh.read(16))
        if image_format:
            return f"a picture ({image_format}), not a video: use faceocc predict"
    return None


def video_output_names(sources: list[str]) -> list[str]:
    """One output name per input: its stem, or its path joined with `__` where stems collide (a/clip.mp4 and
    b/clip.mp4 -> a__clip, b__clip), numbered where even that collides (the same input given twice)."""
    stems = Counter(Path(s).stem for s in sources)
    names, used = [], Counter()
    for source in sources:
        path = Path(source)
        base = path.stem if stems[path.stem] == 1 else "__".join(
            p for p in path.with_suffix("").parts if p not in ("/", ".", ".."))
        used[base] += 1
        names.append(base if used[base] == 1 else f"{base}_{used[base]}")
    return names


def score(args) -> int:
    from faceocc.end_to_end import labelled_photos, score_labelled_photos
    from faceocc.markdown import table

    predictor = _predictor(args, args.threads)
    classes = predictor.classes
    photos = []
    for root in args.folders:
        if not root.is_dir():
            raise Refused(f"{root}: not a folder (score takes folders of <class>/ sub-folders)")
        found = labelled_photos(root, classes, args.match)
        for other in sorted(d.name for d in root.iterdir() if d.is_dir() and d.name not in classes):
            print(f"faceocc: {root / other}: not one of the model's classes, not scored", file=sys.stderr)
        if not found:
            print(f"faceocc: {root}: no image matching {args.match!r} in a sub-folder named after a class "
                  f"({', '.join(classes)})", file=sys.stderr)
        photos += found
    if not photos:
        raise Refused("nothing to score")
    with tqdm(total=len(photos), desc="score", unit="photo") as bar:
        result = score_labelled_photos(photos, predictor.predict_image, classes, progress=bar)
    result["finder"] = predictor.describe() if args.detector == ONE_STAGE else predictor.settings.to_dict()
    result["model"] = str(args.model or "the task's release")
    for problem in result["problems"]:
        print(f"faceocc: {problem}", file=sys.stderr)
    rows = [(c, v["faces"], v["found"], v["right"], f"{v['recall']:.3f}", f"{v['recall_of_found']:.3f}")
            for c, v in result["per_class"].items() if v["faces"]]
    rows.append(("all", result["faces"], result["found"], result["right"], f"{result['accuracy']:.3f}",
                 f"{result['accuracy_of_found']:.3f}"))
    print("\n".join(table(("class", "photos", "found", "right", "recall", "recall of the found"), rows)))
    print(f"mean recall over classes {result['macro_recall']:.3f}", file=sys.stderr)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return EXIT_INPUT_FAILED if result["problems"] else EXIT_OK


def _at_least(minimum: int):
    """An argparse type: a whole number >= minimum, else a usage error (exit status 2) naming the value."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below {minimum}")
        return value
    return parse


def _device_name(text: str) -> str:
    if not is_device_name(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device: {DEVICE_NAMES}")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="faceocc", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"faceocc {version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    def common(p):
        p.add_argument("--model", type=Path, help="a model directory written by the pipeline (models/<variant>/"
                       "<backbone>); default: the task's released model (models/release for occlusion4)")
        p.add_argument("--task", choices=sorted(TASKS),
                       help="occlusion4 (face / masked / sunglasses / mask_sunglasses, the default) or mask_wearing "
                            "(with_mask / without_mask / mask_weared_incorrect, models/release_mask_wearing); "
                            "with --model, the model must be one of this task")
        p.add_argument("--detector", choices=[*sorted(DETECTORS), ONE_STAGE],
                       help="face detector (default: the one the model's training faces were found with, its card's); "
                            f"{ONE_STAGE}: a one-stage model (--model, default the task's one-stage release) finds "
                            "and labels faces in one pass")
        p.add_argument("--min-score", type=float,
                       help="detector score a face must reach (default: the card's, or the --detector's usual one)")
        p.add_argument("--device", type=_device_name, default="auto",
                       help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N, for a PyTorch model and "
                            "detector; ONNX Runtime and FX INT8 models run on the CPU")

    def head_pose(p):
        p.add_argument("--pose", action="store_true", help="head pose per face from its 5 landmarks (solvePnP): "
                       "pose {yaw, pitch, roll, attention} in the JSON, axes and angles drawn")
        p.add_argument("--attention-yaw", type=float, default=30.0,
                       help="|yaw| in degrees beyond which a face is flagged as turned away (30)")
        p.add_argument("--attention-pitch", type=float, default=20.0,
                       help="|pitch| in degrees beyond which a face is flagged (20)")

    p = commands.add_parser("predict", help="classify every face in images, folders (recursive) or globs",
                            description="One JSON line per face: path, box, detection_score, landmarks, label, "
                            "scores; a line with label null and a reason for a photo with no face or a bad file.")
    p.add_argument("paths", nargs="+", help="image files, folders, or quoted glob patterns ('photos/**/*.jpg')")
    p.add_argument("--crops", action="store_true", help="inputs are already face crops: classify, do not detect")
    p.add_argument("--jsonl", type=Path, help="write the JSON lines here instead of stdout")
    p.add_argument("--annotate", type=Path, metavar="DIR", help="write each photo with boxes and labels drawn")
    common(p)
    head_pose(p)
    p.set_defaults(run=predict)

    s = commands.add_parser("sort", help="copy photos into DST/<class>/ (and DST/no_face/), with a decisions CSV",
                            description="Originals are never moved or changed. Policies: largest (the largest "
                            "face decides), any (a copy per class present), all (one class only if every face "
                            "has it, else DST/mixed/).")
    s.add_argument("src", type=Path)
    s.add_argument("dst", type=Path)
    s.add_argument("--policy", choices=POLICIES, default="largest")
    how = s.add_mutually_exclusive_group()
    how.add_argument("--copy", dest="mode", action="store_const", const="copy", help="copy files (default)")
    how.add_argument("--link", dest="mode", action="store_const", const="link",
                     help="hard-link files (copies where linking is not possible)")
    s.add_argument("--dry-run", action="store_true", help="write nothing; print the decisions CSV")
    s.add_argument("--decisions", type=Path, help="decisions CSV path (default DST/decisions.csv)")
    common(s)
    s.set_defaults(run=sort, mode="copy")

    v = commands.add_parser("video", help="classify faces in video files or a webcam, write an annotated video",
                            description="The face detector runs every --detect-every frames on a frame shrunk to "
                            "--detect-max-side pixels; boxes are carried between detections and every face is "
                            "classified on every frame. With --detector one-stage the model's one graph finds and "
                            "labels the faces of every frame (--detect-every and --detect-max-side do not apply). "
                            "A summary line per video goes to stderr.")
    v.add_argument("inputs", nargs="+", help="video files, or a webcam index such as 0 (stop it with Ctrl-C "
                   "or --max-frames; the output is closed properly either way)")
    v.add_argument("--max-frames", type=_at_least(0), default=0, help="stop after this many frames per input (0: all)")
    v.add_argument("--out", type=Path, help="annotated video (.mp4); a folder when several inputs are given")
    v.add_argument("--jsonl", type=Path, help="one JSON line per frame: video, frame, time_s, faces")
    v.add_argument("--detect-every", type=_at_least(1), default=5,
                   help="frames between face detections (5; two-stage only)")
    v.add_argument("--detect-max-side", type=_at_least(32), default=320, help="detection frame size, long side (320)")
    common(v)
    head_pose(v)
    v.set_defaults(run=video)

    c = commands.add_parser("score", help="how well the model and its finder do on labelled photos, end to end",
                            description="Every image under FOLDER/<class>/ is one photo of that class; it counts as "
                            "found when the finder finds a face in it (the largest stands for the photo; where a "
                            "crops.csv beside the class folders gives the face's box, the detection must overlap "
                            "it, IoU >= 0.5) and as right when that face gets the folder's class. Prints a table "
                            "per class; exits 1 when a photo could not be read.")
    c.add_argument("folders", nargs="+", type=Path, help="folders of <class>/ sub-folders named after the classes")
    c.add_argument("--match", default="*", help="only files whose name matches this pattern, e.g. 'fdc__*'")
    c.add_argument("--json", type=Path, help="write the full result (per class, confusion of the found) here")
    c.add_argument("--threads", type=_at_least(0), default=0, help="detector threads (0: every core)")
    common(c)
    c.set_defaults(run=score)

    w = commands.add_parser("serve", help="the models behind an HTTP API and a web page (FastAPI on uvicorn)",
                            description="POST /v1/predict and /v1/annotate take an image (multipart `file`, or "
                            "the bytes as image/*); GET /v1/models, /healthz, /docs (OpenAPI) and / (the web "
                            "page). Each --task's model is loaded once and shared by every request; past "
                            "--workers + --queue requests in progress, the server answers 503 with Retry-After.")
    w.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1: this machine only; "
                   "0.0.0.0: every interface)")
    w.add_argument("--port", type=_at_least(0), default=8000, help="port (8000)")
    w.add_argument("--model", type=Path, help="a model directory (with one --task); default: each task's release")
    w.add_argument("--task", dest="tasks", action="append", choices=sorted(TASKS),
                   help="a task to serve (repeatable); default: every task whose released model is present")
    w.add_argument("--workers", type=_at_least(1), default=2, help="requests computed at once (2: both cores)")
    w.add_argument("--threads-per-worker", type=_at_least(1), default=1, help="each request's threads (1)")
    w.add_argument("--queue", type=_at_least(0), default=8, help="requests waiting beyond the workers (8)")
    w.add_argument("--max-upload-mb", type=float, default=20.0, help="largest upload accepted (20 MB)")
    w.add_argument("--detector", choices=sorted(DETECTORS), help="face detector (default: each card's)")
    w.add_argument("--min-score", type=float, help="detector score a face must reach (default: the card's)")
    w.add_argument("--device", type=_device_name, default="auto", help="auto, cpu, cuda or cuda:N")
    w.set_defaults(run=serve)
    return parser


def serve(args) -> int:
    """Load the models, then run the server until Ctrl-C (faceocc/serve.py)."""
    from faceocc.inference import REPO
    from faceocc.serve import ServeSettings, Service, create_app

    try:
        import uvicorn
    except ImportError as err:  # set-up installs it; a bare `pip install faceocc` may not have
        raise Refused(f"serve needs uvicorn and fastapi ({err})") from None
    tasks = args.tasks or [t for t, task in TASKS.items() if (REPO / task.release_dir / "card.json").exists()]
    if args.model and len(tasks) != 1:
        raise Refused("--model serves one model: give exactly one --task with it")
    if not tasks:
        raise Refused("no released model found (models/release*): pass --task and --model DIR")
    predictors = {name: _predictor(args, args.threads_per_worker, name) for name in tasks}
    folders = {name: args.model or REPO / TASKS[name].release_dir for name in tasks}
    service = Service(predictors, ServeSettings(workers=args.workers, threads_per_worker=args.threads_per_worker,
                                                queue=args.queue, max_upload_bytes=int(args.max_upload_mb * 1e6)),
                      folders)
    print(f"faceocc: serving {', '.join(tasks)} on http://{args.host}:{args.port}/ (Ctrl-C stops)", file=sys.stderr)
    try:
        uvicorn.run(create_app(service), host=args.host, port=args.port, log_level="warning")
    finally:
        service.close()
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # argparse's own usage errors exit 2 as well
    try:
        return args.run(args) or EXIT_OK
    except Refused as err:
        print(f"faceocc: {err}", file=sys.stderr)
        return EXIT_REFUSED


if __name__ == "__main__":
    sys.exit(main())

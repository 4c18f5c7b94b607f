"""The face classifier as every consumer uses it: a trained model directory (weights + model card) in, class
probabilities for RGB face crops out. Evaluation and the command-line tool both go through `Classifier`, so
the figures in reports/ describe exactly what a user runs.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from faceocc import backbones, int8_cpu
from faceocc.images import mirrored

CARD_FILE = "card.json"
WEIGHTS_FILE = "model.safetensors"  # no pickle: loading a model file never runs code

log = logging.getLogger("faceocc.classifier")


class ModelFileError(ValueError):
    """A model directory that cannot be used: str(err) names the file and the reason, in one line."""


@dataclass(frozen=True)
class ModelCard:
    """Everything needed to use a model, so nothing downstream reads params.yaml."""

    backbone: str
    classes: tuple[str, ...]
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop: dict = field(default_factory=dict)      # the crop geometry the model was trained on (size, margin)
    # how its training faces were found (faceocc.finder.FinderSettings as written by the crop stage); the tool
    # finds faces the same way. {} in cards older than the finder: the tool then uses FinderSettings' defaults.
    finder: dict = field(default_factory=dict)
    start: str = ""                               # where the backbone's weights came from
    data_sha256: str = ""                         # of the training and split manifests
    train_counts: dict = field(default_factory=dict)
    best_epoch: int = 0
    val_macro_f1: float = 0.0
    params: dict = field(default_factory=dict)
    variant: str = "fp32"                         # fp32 | fx_int8 | onnx_fp32 | onnx_int8
    variant_info: dict = field(default_factory=dict)  # how the variant was made (parity, quantization settings)
    task: str = ""                                # faceocc/tasks.py; "" in cards older than tasks (classes tell)
    # predict on each crop and its mirror image in one batch and average the probabilities (train param
    # mirror_average; judged by cross-validation, README "The mask-wearing model")
    mirror_average: bool = False

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def read(cls, model_dir: str | Path) -> ModelCard:
        model_dir = Path(model_dir)
        path = model_dir / CARD_FILE
        if model_dir.exists() and not model_dir.is_dir():
            raise ModelFileError(f"{model_dir}: a file, not a model directory (pass the folder that holds "
                                 f"{CARD_FILE})")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            data["mean"], data["std"] = tuple(data["mean"]), tuple(data["std"])
            card = cls(**data)
        except FileNotFoundError:
            raise ModelFileError(f"{path}: missing (not a faceocc model directory)") from None
        except (ValueError, KeyError, TypeError) as err:
            raise ModelFileError(f"{path}: not a model card ({type(err).__name__}: {err})") from None
        problem = card.problem()
        if problem:
            raise ModelFileError(f"{path}: {problem}")
        return replace(card, classes=tuple(card.classes))

    def problem(self) -> str | None:
        """What makes this card unusable (a value of the wrong type or range), or None."""
        from faceocc.cropping import CropGeometry

        classes = self.classes
        if not isinstance(classes, (list, tuple)) or not all(isinstance(c, str) and c for c in classes):
            return f"classes must be a list of class names, not {classes!r}"
        if len(classes) < 2 or len(set(classes)) != len(classes):
            return f"classes must be two or more distinct names, not {list(classes)}"
        if not _is_int(self.input_size) or not 16 <= self.input_size <= 1024:
            return f"input_size must be a whole number of pixels from 16 to 1024, not {self.input_size!r}"
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (*self.mean, *self.std))
        if len(self.mean) != 3 or len(self.std) != 3 or not numbers or min(self.std) <= 0:
            return f"mean and std must be 3 numbers each, std above 0, not {list(self.mean)} / {list(self.std)}"
        if not isinstance(self.crop, dict) or set(self.crop) - {"size", "margin"}:
            return f"crop must hold size and margin only, not {self.crop!r}"
        geometry = CropGeometry(**self.crop)
        if not _is_int(geometry.size) or geometry.size < 16 or not isinstance(geometry.margin, (int, float)) \
                or not 0 <= geometry.margin <= 2:
            return f"crop needs size >= 16 px and a margin from 0 to 2, not {self.crop!r}"
        if self.variant == "fx_int8" and not {"engine", "per_channel"} <= set(self.variant_info or {}):
            return "an fx_int8 card must say its quantization engine and per_channel in variant_info"
        return None



def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def shape_mismatch(expected: dict, found: dict) -> str | None:
    """The first tensor whose shape differs between two state dicts, named, or None."""
    def shapes(value):  # a tensor, or a packed (weight, bias) pair of a quantized layer
        if isinstance(value, (tuple, list)):
            return [shapes(v) for v in value]
        return list(value.shape) if hasattr(value, "shape") else None

    for name, tensor in expected.items():
        if name in found and shapes(found[name]) != shapes(tensor):
            return f"tensor {name} is {shapes(found[name])} in the file, {shapes(tensor)} in the model"
    return None


def save_weights(state: dict, path: str | Path) -> None:
    """safetensors bytes depend only on the tensors, so a re-trained identical model has an identical file."""
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))


def preprocess(images: list[np.ndarray], input_size: int, mean, std) -> torch.Tensor:
    """RGB uint8 crops -> normalised NCHW float tensor at the model's input size."""
    batch = np.empty((len(images), input_size, input_size, 3), np.float32)
    for i, image in enumerate(images):
        if image.shape[:2] != (input_size, input_size):
            shrinking = image.shape[0] > input_size
            image = cv2.resize(image, (input_size, input_size),
                               interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
        batch[i] = image
    batch = (batch / 255.0 - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2)))


class ClassifierBase:
    """What the PyTorch and the ONNX Runtime classifiers share: the card, its classes, and probabilities per crop
    (averaged with the mirror image's when the card says so); each backend supplies `_probabilities`."""

    card: ModelCard

    @property
    def classes(self) -> tuple[str, ...]:
        return self.card.classes

    def predict(self, images: list[np.ndarray]) -> list[str]:
        """The most probable class name per crop."""
        return [self.classes[i] for i in self.predict_proba(images).argmax(axis=1)]

    def predict_proba(self, images: list[np.ndarray], batch_size: int = 64) -> np.ndarray:
        """(n, classes) probabilities for RGB uint8 face crops; with the card's mirror_average, the mean of each
        crop's and its mirror image's, both run in one batch (as the latency benchmark times them)."""
        if not images:
            return np.empty((0, len(self.classes)), np.float32)
        if not self.card.mirror_average:
            return self._probabilities(images, batch_size)
        both = [v for im in images for v in (im, mirrored(im))]
        probs = self._probabilities(both, 2 * batch_size)
        return (probs[0::2] + probs[1::2]) / 2

    def _probabilities(self, images: list[np.ndarray], batch_size: int) -> np.ndarray:
        raise NotImplementedError


class Classifier(ClassifierBase):
    """A trained model ready for inference (CPU unless a device is given)."""

    def __init__(self, model: nn.Module, card: ModelCard, device: str = "cpu"):
        self.card = card
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()

    @classmethod
    def load(cls, model_dir: str | Path, device: str = "cpu"):
        """Any model directory the pipeline writes (fp32, fx_int8, onnx_fp32, onnx_int8) behind one interface.
        A missing, corrupt or mismatched file raises ModelFileError naming it."""
        from faceocc import fx_quant
        from faceocc.onnx_models import ONNX_FILE

        model_dir = Path(model_dir)
        card = ModelCard.read(model_dir)
        risk = int8_cpu.saturation_risk(card.variant, card.variant_info)
        if risk:
            log.warning("%s: %s", model_dir, risk)
        if (model_dir / ONNX_FILE).exists():
            return OnnxClassifier(model_dir)
        try:
            model, _ = backbones.build(card.backbone, len(card.classes), "none")
        except (KeyError, ValueError) as err:
            raise ModelFileError(f"{model_dir / CARD_FILE}: {err}") from None
        if (model_dir / fx_quant.FX_FILE).exists():
            info = card.variant_info
            try:
                quantized = fx_quant.load(model_dir / fx_quant.FX_FILE, model, card.input_size,
                                          info["engine"], info["per_channel"])
            except (fx_quant.FxModelError, ValueError) as err:
                raise ModelFileError(str(err)) from None
            runner = cls(fx_quant.FrozenRunner(quantized, card.input_size), card, "cpu")  # INT8 kernels: CPU
            runner.weights_file = fx_quant.FX_FILE
            return runner
        path = model_dir / WEIGHTS_FILE
        if not path.exists():
            raise ModelFileError(f"{model_dir}: no {WEIGHTS_FILE}, {fx_quant.FX_FILE} or {ONNX_FILE}")
        try:
            state = load_file(path)
        except Exception as err:  # safetensors' header/parse errors on a truncated or foreign file
            raise ModelFileError(f"{path}: not a readable safetensors file ({type(err).__name__}: {err})") from None
        fit = f"{card.backbone} with {len(card.classes)} classes (card.json)"
        mismatch = shape_mismatch(model.state_dict(), state)
        if mismatch:  # e.g. a card listing 3 or 5 classes for a 4-output model: its labels would be wrong
            raise ModelFileError(f"{path}: does not fit {fit}: {mismatch}")
        try:
            model.load_state_dict(state)
        except RuntimeError:  # missing or unexpected tensors: weights of another backbone
            missing = sorted(set(model.state_dict()) - set(state))
            unexpected = sorted(set(state) - set(model.state_dict()))
            raise ModelFileError(f"{path}: does not fit {fit}: {len(missing)} tensors missing (e.g. "
                                 f"{missing[:1]}), {len(unexpected)} unexpected (e.g. {unexpected[:1]})") from None
        return cls(model, card, device)

    weights_file = WEIGHTS_FILE

    def tensor(self, images: list[np.ndarray]) -> torch.Tensor:
        return preprocess(images, self.card.input_size, self.card.mean, self.card.std).to(self.device)

    @torch.inference_mode()
    def _probabilities(self, images: list[np.ndarray], batch_size: int) -> np.ndarray:
        out = [torch.softmax(self.model(self.tensor(images[i : i + batch_size])), dim=1).cpu().numpy()
               for i in range(0, len(images), batch_size)]
        return np.concatenate(out)


class OnnxClassifier(ClassifierBase):
    """The same interface over an ONNX Runtime session (onnx_fp32 / onnx_int8 variants)."""

    def __init__(self, model_dir: str | Path, threads: int = 2):
        from faceocc.onnx_models import ONNX_FILE, session

        self.card = ModelCard.read(model_dir)
        self.path = Path(model_dir) / ONNX_FILE
        self.weights_file = ONNX_FILE
        try:
            self.session = session(self.path, threads)
        except Exception as err:  # onnxruntime's InvalidProtobuf / Fail / InvalidGraph on a bad file
            first = (str(err).strip().splitlines() or ["unreadable"])[0]
            raise ModelFileError(f"{self.path}: ONNX Runtime cannot load it ({first[:200]})") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        size, n = self.card.input_size, len(self.card.classes)
        if [(i.name, i.shape[1:]) for i in inputs] != [("input", [3, size, size])]:
            raise ModelFileError(f"{self.path}: inputs {[(i.name, i.shape) for i in inputs]} are not the card's "
                                 f"one input [batch, 3, {size}, {size}]")
        if len(outputs) != 1 or outputs[0].shape[-1] != n:
            raise ModelFileError(f"{self.path}: outputs {[o.shape for o in outputs]} are not one [batch, {n}] "
                                 f"for the card's {n} classes")

    def _probabilities(self, images: list[np.ndarray], batch_size: int) -> np.ndarray:
        from faceocc.onnx_models import run_logits

        batch = preprocess(images, self.card.input_size, self.card.mean, self.card.std).numpy()
        logits = run_logits(self.session, batch, batch_size)
        logits = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=1, keepdims=True)

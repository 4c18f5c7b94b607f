"""The face classifier as every consumer uses it: a trained model directory (weights + model card) in, class
probabilities for RGB face crops out. Evaluation and the command-line tool both go through `Classifier`, so
the figures in reports/ describe exactly what a user runs.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from faceocc import backbones

CARD_FILE = "card.json"
WEIGHTS_FILE = "model.safetensors"  # no pickle: loading a model file never runs code


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
        path = Path(model_dir) / CARD_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            data["classes"] = tuple(data["classes"])
            data["mean"], data["std"] = tuple(data["mean"]), tuple(data["std"])
            return cls(**data)
        except FileNotFoundError:
            raise ModelFileError(f"{path}: missing (not a faceocc model directory)") from None
        except (ValueError, KeyError, TypeError) as err:
            raise ModelFileError(f"{path}: not a model card ({type(err).__name__}: {err})") from None



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


class _Labels:
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
        both = [v for im in images for v in (im, np.ascontiguousarray(im[:, ::-1]))]
        probs = self._probabilities(both, 2 * batch_size)
        return (probs[0::2] + probs[1::2]) / 2

    def _probabilities(self, images: list[np.ndarray], batch_size: int) -> np.ndarray:
        raise NotImplementedError


class Classifier(_Labels):
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
            model.load_state_dict(load_file(path))
        except RuntimeError as err:  # missing or mis-shaped tensors: weights of another backbone or head
            first = (str(err).strip().splitlines() or ["mismatch"])[0]
            raise ModelFileError(f"{path}: does not fit {card.backbone} ({first[:200]})") from None
        except Exception as err:  # safetensors' header/parse errors on a truncated or foreign file
            raise ModelFileError(f"{path}: not a readable safetensors file ({type(err).__name__}: {err})") from None
        return cls(model, card, device)

    weights_file = WEIGHTS_FILE

    def tensor(self, images: list[np.ndarray]) -> torch.Tensor:
        return preprocess(images, self.card.input_size, self.card.mean, self.card.std).to(self.device)

    @torch.inference_mode()
    def _probabilities(self, images: list[np.ndarray], batch_size: int) -> np.ndarray:
        out = [torch.softmax(self.model(self.tensor(images[i : i + batch_size])), dim=1).cpu().numpy()
               for i in range(0, len(images), batch_size)]
        return np.concatenate(out)


class OnnxClassifier(_Labels):
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

    def _probabilities(self, images: list[np.ndarray], batch_size: int) -> np.ndarray:
        from faceocc.onnx_models import run_logits

        batch = preprocess(images, self.card.input_size, self.card.mean, self.card.std).numpy()
        logits = run_logits(self.session, batch, batch_size)
        logits = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=1, keepdims=True)

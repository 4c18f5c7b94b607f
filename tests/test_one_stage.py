"""The one-stage graph: CenterFace unchanged beside a trainable class branch, exported as one ONNX model."""

import numpy as np
import pytest
import torch

from faceocc.detectors import cpu_session
from faceocc.one_stage import (CLASS_STRIDE, DETECTION_OUTPUTS, FEATURES, INPUT, TOWER_OUT, centerface_graph,
                               class_branch, classes_at, one_stage_graph)

CLASSES = ("with_mask", "without_mask", "mask_weared_incorrect")


@pytest.fixture(scope="module")
def blob(astronaut):
    import cv2

    image = cv2.resize(astronaut, (256, 320))  # sides multiples of 32, as the detector pads them
    return image.transpose(2, 0, 1)[None].astype(np.float32)


@pytest.fixture(scope="module")
def centerface_outputs(blob):
    import onnx

    graph = centerface_graph()
    for name in (FEATURES, TOWER_OUT):
        graph.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    names = [*DETECTION_OUTPUTS, FEATURES, TOWER_OUT]
    return dict(zip(names, cpu_session(graph.SerializeToString(), 1).run(names, {INPUT: blob})))


def test_the_branch_tower_starts_as_centerfaces_own_stride_32_tower(centerface_outputs):
    branch = class_branch(len(CLASSES)).eval()
    with torch.no_grad():
        tower = branch.tower(torch.from_numpy(centerface_outputs[FEATURES])).numpy()
    assert tower.shape == centerface_outputs[TOWER_OUT].shape == (1, 320, 10, 8)
    assert np.abs(tower - centerface_outputs[TOWER_OUT]).max() < 1e-3


def test_the_tower_learns_its_parameters_get_gradients_from_the_class_loss(centerface_outputs):
    branch = class_branch(len(CLASSES)).train()
    logits = branch(torch.from_numpy(centerface_outputs[FEATURES]))
    assert logits.shape == (1, 3, 20, 16)
    torch.nn.functional.cross_entropy(logits[:, :, 10, 8], torch.tensor([2])).backward()
    grads = [p.grad for p in branch.tower.parameters()]
    assert grads and all(g is not None for g in grads) and any(float(g.abs().sum()) > 0 for g in grads)


def test_the_one_graph_finds_faces_as_centerface_does_and_classifies_as_the_branch(blob, centerface_outputs):
    branch = class_branch(len(CLASSES), seed=3).eval()
    merged = one_stage_graph(branch)
    outputs = cpu_session(merged.SerializeToString(), 1).run(None, {INPUT: blob})
    assert len(outputs) == 5
    for name, got in zip(DETECTION_OUTPUTS, outputs[:4]):
        assert np.abs(got - centerface_outputs[name]).max() < 1e-4, name
    with torch.no_grad():
        expected = torch.softmax(branch(torch.from_numpy(centerface_outputs[FEATURES])), 1).numpy()
    probabilities = outputs[4]
    assert probabilities.shape == (1, 3, 320 // CLASS_STRIDE, 256 // CLASS_STRIDE)
    assert np.abs(probabilities - expected).max() < 1e-4
    assert np.allclose(probabilities.sum(1), 1, atol=1e-5)


def test_a_face_takes_the_class_of_the_cell_holding_its_centre_clamped_to_the_map():
    probabilities = np.zeros((3, 2, 3), np.float32)
    probabilities[0] = 1.0
    probabilities[:, 1, 2] = (0.1, 0.2, 0.7)   # the bottom-right cell: pixels x 32-47, y 16-31
    found = classes_at(probabilities, np.array([[40.0, 20.0], [5.0, 5.0], [500.0, 900.0]]), CLASSES)
    assert [f.label for f in found] == ["mask_weared_incorrect", "with_mask", "mask_weared_incorrect"]
    assert found[0].probabilities == pytest.approx({"with_mask": 0.1, "without_mask": 0.2,
                                                    "mask_weared_incorrect": 0.7})

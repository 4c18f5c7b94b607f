"""Two independent attributes instead of four exclusive classes: does the face wear a mask, does it wear sunglasses.

A softmax over four classes learns mask_sunglasses only from its own (few) faces. An attribute head has two logits,
mask and sunglasses, and derives each class's logit as the sum of the attributes it has (plain face 0, masked
`mask`, sunglasses `sunglasses`, mask_sunglasses both). A softmax over those four logits is exactly the product of
the two sigmoids, so cross-entropy on them is the sum of the two attributes' binary cross-entropies: every masked
face teaches the mask logit and every sunglasses face the sunglasses one, which mask_sunglasses then shares.

The derived logits are a linear map of the features, so after training the head folds into a plain 4-output
`nn.Linear` (weight = codes @ W, bias = codes @ b): the saved model, its card, ONNX export, quantization and
inference are those of a softmax model.
"""

from __future__ import annotations

import torch
from torch import nn

ATTRIBUTES = ("mask", "sunglasses")
# which attributes each occlusion class has; a task whose classes are not all here has no attribute head
CODES = {"face": (0, 0), "masked": (1, 0), "sunglasses": (0, 1), "mask_sunglasses": (1, 1)}


def code_matrix(classes: tuple[str, ...]) -> torch.Tensor:
    """(len(classes), len(ATTRIBUTES)) 0/1 matrix in the model's class order."""
    missing = [c for c in classes if c not in CODES]
    if missing:
        raise ValueError(f"head 'attributes' needs every class to be a mix of {ATTRIBUTES}; "
                         f"{missing} is not (use head: softmax for this task)")
    return torch.tensor([CODES[c] for c in classes], dtype=torch.float32)


class AttributeHead(nn.Module):
    """Attribute logits from a Linear layer, class logits as the sum of each class's attributes."""

    def __init__(self, in_features: int, codes: torch.Tensor):
        super().__init__()
        self.attributes = nn.Linear(in_features, codes.shape[1])
        self.register_buffer("codes", codes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attributes(x) @ self.codes.T

    def folded(self) -> nn.Linear:
        """The plain Linear layer that gives the same class logits."""
        linear = nn.Linear(self.attributes.in_features, self.codes.shape[0])
        with torch.no_grad():
            linear.weight.copy_(self.codes @ self.attributes.weight)
            linear.bias.copy_(self.codes @ self.attributes.bias)
        return linear


def _last_linear(model: nn.Module) -> tuple[nn.Module, str, nn.Linear]:
    """(parent module, attribute name, layer) of the model's last Linear layer: the classifier's head."""
    name, layer = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)][-1]
    parent_name, _, child = name.rpartition(".")
    return model.get_submodule(parent_name), child, layer


def attach_attribute_head(model: nn.Module, classes: tuple[str, ...]) -> nn.Module:
    """Replace the model's last Linear layer by a fresh AttributeHead (in place; returns the model)."""
    parent, child, layer = _last_linear(model)
    if layer.out_features != len(classes):
        raise ValueError(f"the last Linear layer has {layer.out_features} outputs, not one per class ({len(classes)})")
    setattr(parent, child, AttributeHead(layer.in_features, code_matrix(classes)))
    return model


def fold_attribute_head(model: nn.Module) -> nn.Module:
    """Replace every AttributeHead by its plain Linear equivalent (in place; returns the model)."""
    heads = [(n, m) for n, m in model.named_modules() if isinstance(m, AttributeHead)]
    for name, head in heads:
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, head.folded().to(head.codes.device))
    return model

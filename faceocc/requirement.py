"""The first source document's requirement on a deployable model: size < 15 MB, accuracy > 90 %, < 6 ms per face."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Requirement:
    max_size_mb: float = 15.0
    min_accuracy: float = 0.90
    max_latency_ms: float = 6.0


def misses(requirement: Requirement, size_mb: float, latency_ms: float, accuracy: float | None = None) -> list[str]:
    """Why a model does not meet the requirement (empty when it does). Without `accuracy`, size and latency only:
    a release chooses among the models that fit by validation figures, never by the test accuracy checked here."""
    reasons = []
    if size_mb >= requirement.max_size_mb:
        reasons.append(f"size {size_mb:.1f} MB >= {requirement.max_size_mb:g}")
    if latency_ms >= requirement.max_latency_ms:
        reasons.append(f"latency {latency_ms:.2f} ms >= {requirement.max_latency_ms:g}")
    if accuracy is not None and accuracy <= requirement.min_accuracy:
        reasons.append(f"accuracy {accuracy:.1%} <= {requirement.min_accuracy:.0%}")
    return reasons

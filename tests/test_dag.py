"""dvc.yaml, stages/ and params.yaml agree: one word per stage, and DVC sees every module a stage runs."""

import ast
import dataclasses
import importlib
import json
from pathlib import Path

import pytest
import yaml

from stages._common import load_params

ROOT = Path(__file__).resolve().parents[1]
DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
STAGE_MODULES = sorted(p.stem for p in (ROOT / "stages").glob("*.py") if not p.stem.startswith("_"))


def test_every_stage_has_a_module_and_a_params_section_and_back():
    assert sorted(DVC) == STAGE_MODULES
    assert sorted(PARAMS) == STAGE_MODULES
    for name, stage in DVC.items():
        assert f"python -m stages.{name} " in stage["cmd"]
        # the whole section, or parts of it (train@<backbone> watches only its own backbone's settings)
        assert stage["params"] and all(p == name or p.startswith(f"{name}.") for p in stage["params"])


@pytest.mark.parametrize("name", STAGE_MODULES)
def test_params_section_parses_into_the_stages_settings(name):
    module = importlib.import_module(f"stages.{name}")
    cls = next(v for k, v in vars(module).items() if k.lower() == f"{name.replace('_', '')}params")
    load_params(name, cls, str(ROOT / "params.yaml"))


def _local_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    # a module-level __getattr__ (PEP 562) imports only when someone asks for that attribute: `faceocc`'s lazy
    # FacePredictor is not imported by a stage that imports `faceocc.<module>` (one that uses it imports it)
    lazy = {id(n) for f in tree.body if isinstance(f, ast.FunctionDef) and f.name == "__getattr__"
            for n in ast.walk(f)}
    for node in ast.walk(tree):
        if id(node) in lazy:
            continue
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            # `from faceocc import backbones` imports a module, not just a name from __init__
            names.update(f"{node.module}.{a.name}" for a in node.names
                         if (ROOT / node.module.replace(".", "/") / f"{a.name}.py").exists())
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return {n for n in names if n.split(".")[0] in ("faceocc", "stages")}


def _module_files(module: str) -> set[str]:
    """The stage module and every project module it imports, transitively, as repo-relative paths."""
    seen, todo = set(), [module]
    while todo:
        rel = todo.pop().replace(".", "/")
        path = ROOT / f"{rel}.py"
        if not path.exists():
            path = ROOT / rel / "__init__.py"
        key = path.relative_to(ROOT).as_posix()
        if key in seen:
            continue
        seen.add(key)
        todo.extend(_local_imports(path))
    return {f for f in seen if not f.endswith("__init__.py")}


@pytest.mark.parametrize("name", STAGE_MODULES)
def test_stage_deps_cover_every_module_the_stage_imports(name):
    # a module missing from deps means editing it would not re-run the stage: stale results in review
    deps = set(DVC[name]["deps"])
    missing = {f for f in _module_files(f"stages.{name}")
               if f not in deps and not any(parent.as_posix() in deps for parent in Path(f).parents)}
    assert not missing, f"dvc.yaml stage {name!r} lacks deps {sorted(missing)}"


def _bar_plots():
    for stage in DVC.values():
        for plot in stage.get("plots", []):
            for path, props in (plot.items() if isinstance(plot, dict) else ()):
                if (props or {}).get("template", "").startswith("bar"):
                    yield path, props


@pytest.mark.parametrize("path,props", list(_bar_plots()), ids=lambda v: v if isinstance(v, str) else "")
def test_bar_plots_give_every_row_its_own_bar(path, props):
    import csv

    # DVC's bar templates stack rows sharing a y value (class_counts once drew face as 7 + 7 + 7)
    rows = list(csv.DictReader((ROOT / path).open()))
    bars = [row[props["y"]] for row in rows]
    assert rows and len(set(bars)) == len(bars)


def test_balance_count_rows_name_each_class_and_step_once():
    from collections import Counter

    from faceocc.train_set import COUNT_STEPS, count_rows

    rows = count_rows(("a", "b"), {step: Counter(a=1, b=2) for step in COUNT_STEPS})
    assert len({r["bar"] for r in rows}) == len(rows) == 6
    assert rows[0] == {"bar": "a: 1. train_split", "label": "a", "step": "train_split", "count": 1}


def test_params_yaml_is_written_the_way_dvc_writes_it_back(tmp_path):
    import difflib

    from dvc.utils.serialize import modify_yaml

    # `dvc exp run -S balance.seed=1` rewrites params.yaml through this round trip: a file already in its form
    # changes by the one line set, not by every inline list and long line it re-flows
    copy = tmp_path / "params.yaml"
    copy.write_text((ROOT / "params.yaml").read_text())
    with modify_yaml(copy) as data:
        data["balance"]["seed"] = 1
    changed = [line for line in difflib.unified_diff((ROOT / "params.yaml").read_text().splitlines(),
                                                     copy.read_text().splitlines(), n=0, lineterm="")
               if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert changed == ["-  seed: 0", "+  seed: 1"]


def test_top_level_plots_name_committed_files():
    # a chart across stages reads files the stages commit (cache: false) or the committed releases
    top = yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]
    paths = []
    for plot in top:
        if isinstance(plot, str):
            paths.append(plot)
        else:
            (props,) = plot.values()
            paths.extend(props["y"])
    assert len(paths) >= 12
    for path in paths:
        assert (ROOT / path).is_file(), path


def _paths_outside_the_project(value) -> set[str]:
    """Every string in a params section that names a path beside the project (../...)."""
    if isinstance(value, dict):
        return set().union(*map(_paths_outside_the_project, value.values()))
    if isinstance(value, list):
        return set().union(*map(_paths_outside_the_project, value))
    return {value} if isinstance(value, str) and value.startswith("../") else set()


@pytest.mark.parametrize("name", [n for n in DVC if n != "scrape"])
def test_a_stage_that_reads_data_beside_the_project_declares_it(name):
    # scrape reads its folder roots into data/scrape, whose hash the later stages follow; its roots are params
    read = _paths_outside_the_project(PARAMS[name])
    assert read <= set(DVC[name]["deps"]), f"{name} reads {sorted(read - set(DVC[name]['deps']))} undeclared"


def test_the_makefile_leaves_out_exactly_the_stages_that_need_shared_data():
    # without ../shared, `make repro` runs every other stage: DVC would stop at a missing declared folder
    needs_shared = {n for n, s in DVC.items() if any(str(d).startswith("../") for d in s.get("deps", []))}
    line = next(ln for ln in (ROOT / "Makefile").read_text().splitlines() if ln.startswith("REAL_DATA_STAGES"))
    assert set(line.split(":=")[1].split()) == needs_shared == {"pose_benchmark", "detectors", "mask_detection_recall"}
    for name in needs_shared:  # what DVC does not delete before a run: the committed figures survive a refusal
        outs = [o for key in ("outs", "metrics") for o in DVC[name].get(key, [])]
        assert all(next(iter(o.values())).get("persist") for o in outs), name


def _metrics_files() -> list[Path]:
    """Every metrics file dvc.yaml declares, a matrix stage's once per item."""
    files = []
    for stage in DVC.values():
        for entry in stage.get("metrics", []):
            names = [str(next(iter(entry)) if isinstance(entry, dict) else entry)]
            for key, values in stage.get("matrix", {}).items():
                names = [n.replace(f"${{item.{key}}}", str(v)) for n in names for v in _matrix_values(values)]
            files += [ROOT / n for n in names]
    return files


def test_every_metrics_file_holds_numbers_only():
    # `dvc metrics show / diff` list figures: names, the CPU and settings live in the stages' reports and params
    from faceocc.atomic import numbers_only

    files = _metrics_files()
    assert len(files) > 20
    for file in files:
        figures = json.loads(file.read_text())
        assert numbers_only(figures) == figures, f"{file.relative_to(ROOT)} holds a string or a boolean"


def test_the_library_imports_neither_the_stages_nor_the_tools():
    # faceocc/ is what the stages and the command call; stages/ and tools/ sit on top of it, never under it
    offenders = []
    for path in sorted((ROOT / "faceocc").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in ("stages", "tools")]
    assert offenders == []


def _matrix_values(values) -> list:
    """A dvc.yaml matrix axis: a list, or `${section.key}` naming a params.yaml list or map (its keys)."""
    if isinstance(values, str) and values.startswith("${"):
        found = PARAMS
        for part in values.strip("${} ").split("."):
            found = found[part]
        return list(found)
    return list(values)


def test_every_per_backbone_matrix_takes_the_backbones_from_params():
    # one list: train.backbones; a backbone added there gets its train, quantize, export and evaluate stages
    listed = list(PARAMS["train"]["backbones"])
    for name, stage in DVC.items():
        if "backbone" in stage.get("matrix", {}):
            assert stage["matrix"]["backbone"] == "${train.backbones}", name
    from faceocc.backbones import BACKBONES
    from stages.train import BackbonesParams

    assert set(listed) <= set(BACKBONES)  # each has a registry entry (how it is built, where its weights are)
    # train.backbones accepts overrides for every registry entry, without an edit of its own
    assert [f.name for f in dataclasses.fields(BackbonesParams)] == list(BACKBONES)


def test_no_stage_lists_the_backbones_so_adding_one_is_a_registry_entry_and_a_params_entry():
    # the two places docs/architecture.md names; a stage that listed backbones by hand would be a third. One
    # named backbone is a choice (video_benchmark times the MobileNetV2 model), not a list to keep up.
    from faceocc.backbones import BACKBONES

    for name, stage in DVC.items():
        text = yaml.safe_dump(stage)
        assert len([b for b in BACKBONES if b in text]) <= 1, name


def test_the_report_reads_every_evaluation_under_the_folder_it_depends_on(tmp_path):
    from stages.report import evaluation_files

    assert "reports/eval" in DVC["report"]["deps"] and "--evaluations reports/eval " in DVC["report"]["cmd"]
    for backbone in ("a_new_backbone", "mobilenet_v2"):
        for variant in ("fp32", "onnx_int8"):
            (tmp_path / backbone / variant).mkdir(parents=True)
            (tmp_path / backbone / variant / "metrics.json").write_text("{}")
    (tmp_path / "notes.json").write_text("{}")
    found = [p.relative_to(tmp_path).as_posix() for p in evaluation_files([tmp_path])]
    assert found == ["a_new_backbone/fp32/metrics.json", "a_new_backbone/onnx_int8/metrics.json",
                     "mobilenet_v2/fp32/metrics.json", "mobilenet_v2/onnx_int8/metrics.json"]


def test_the_readmes_dag_is_dvcs_with_each_matrix_as_one_node():
    import re
    import subprocess
    import sys

    import networkx as nx

    out = subprocess.run([sys.executable, "-m", "dvc", "dag", "--mermaid"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    names = dict(re.findall(r'(node\d+)\["([^"]+)"\]', out))
    dag = nx.DiGraph()
    dag.add_nodes_from(n.split("@")[0] for n in names.values())
    for a, b in re.findall(r"(node\d+)-->(node\d+)", out):
        dag.add_edge(names[a].split("@")[0], names[b].split("@")[0])
    readme = (ROOT / "README.md").read_text()
    block = readme.split("```mermaid\n", 1)[1].split("```", 1)[0]
    drawn = nx.DiGraph()
    for line in block.splitlines()[1:]:
        chain = [part.strip() for part in line.split("-->")]
        drawn.add_nodes_from(chain)
        drawn.add_edges_from(zip(chain, chain[1:]))
    assert set(drawn) == set(dag)
    assert set(drawn.edges) == set(nx.transitive_reduction(dag).edges)


def test_the_serve_benchmark_depends_on_the_server_it_starts():
    # the stage runs `faceocc serve` as a subprocess: editing the server must re-run it, though the stage module
    # imports neither faceocc.cli nor faceocc.serve
    deps = set(DVC["serve_benchmark"]["deps"])
    needed = _module_files("faceocc.cli") | _module_files("faceocc.serve") | {"faceocc/static"}
    missing = {f for f in needed if f not in deps and not any(p.as_posix() in deps for p in Path(f).parents)}
    assert not missing, sorted(missing)


@pytest.mark.parametrize("name", STAGE_MODULES)
def test_stage_deps_name_no_code_the_stage_does_not_run(name):
    # a module listed but never imported re-runs the stage (for an hour, for the real-data ones) on every edit
    # of a file it does not use
    runs = _module_files(f"stages.{name}")
    if name == "serve_benchmark":  # the `faceocc serve` subprocess it starts
        runs |= _module_files("faceocc.cli") | _module_files("faceocc.serve") | {"faceocc/static"}
    code = {d for d in DVC[name]["deps"] if d.startswith(("stages/", "faceocc/"))}
    unused = {d for d in code if d not in runs and not any(Path(f).is_relative_to(d) for f in runs)}
    assert not unused, f"dvc.yaml stage {name!r} lists code it does not run: {sorted(unused)}"


def test_every_param_a_stage_watches_is_in_params_yaml():
    # `dvc repro` stops at a watched key params.yaml lacks ("Parameters 'train.task' are missing"), a stage in
    backbones = list(PARAMS["train"]["backbones"])  # the middle of a run; the matrix's ${item.backbone}, each
    for name, stage in DVC.items():
        for path in stage["params"]:
            for resolved in ([path.replace("${item.backbone}", b) for b in backbones] if "${" in path else [path]):
                node = PARAMS
                for key in resolved.split("."):
                    assert isinstance(node, dict) and key in node, f"{name}: {resolved} is not in params.yaml"
                    node = node[key]

"""The documented layers as a test: every module declared once (ray_xt.layers), no import running up a layer,
docs/architecture.md's table the same as the declaration."""

import ast
import re
from pathlib import Path

from ray_xt.layers import LAYERS, layer_of

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ray_xt"


def _modules() -> dict[str, Path]:
    return {".".join(p.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__").removesuffix("__init__"): p
            for p in PACKAGE.rglob("*.py")}


def imports_of(path: Path, package: str) -> set[str]:
    """Modules of ``package`` that ``path`` imports, at any depth of the file (imports inside functions count)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found |= {n for n in names if n.split(".")[0] == package}
    return found


def _imports(path: Path) -> set[str]:
    """ray_xt modules ``path`` imports, relative to ray_xt."""
    return {n.removeprefix("ray_xt.") for n in imports_of(path, "ray_xt") if n != "ray_xt"}


def test_every_module_has_a_layer():
    modules = [m for m in _modules() if m]
    assert [m for m in modules if layer_of(m) is None] == []
    declared = [name for layer in LAYERS for name in layer.modules]
    assert len(declared) == len(set(declared))
    stale = [name for name in declared if not any(m == name or m.startswith(name + ".") for m in modules)]
    assert stale == []


def violations(modules: dict[str, Path]) -> list[str]:
    found = []
    for name, path in sorted(modules.items()):
        for imported in sorted(_imports(path)):
            if imported in modules and imported != name and layer_of(imported) < layer_of(name or "__init__"):
                found.append(f"{name} ({LAYERS[layer_of(name)].name}) imports {imported} "
                             f"({LAYERS[layer_of(imported)].name})")
    return found


def test_no_import_runs_up_a_layer():
    modules = {m: p for m, p in _modules().items() if m}
    assert violations(modules) == []


def test_an_import_up_a_layer_is_caught(tmp_path):
    """The check itself: a settings module importing the study layer fails it."""
    bad = tmp_path / "config.py"
    bad.write_text("def f():\n    from ray_xt.study import StudyDriver\n")
    assert violations({"config": bad, "study": PACKAGE / "study" / "__init__.py"}) == [
        "config (settings) imports study (study)"]


def test_the_architecture_doc_lists_the_declared_layers():
    text = (ROOT / "docs" / "architecture.md").read_text()
    rows = re.findall(r"^\| ([a-z ]+) \| (.+) \| (.+) \|$", text, flags=re.MULTILINE)
    documented = {name: set(re.findall(r"`([a-z_.]+)(?:/\*)?`", modules)) for name, modules, _ in rows
                  if name not in ("layer",)}
    assert documented == {layer.name: set(layer.modules) for layer in LAYERS}


def test_the_micro_language_codes_the_settings_check_are_the_worlds():
    from ray_xt.micro.codes import LANGUAGE_CODES
    from ray_xt.micro.languages import LANGUAGES

    assert tuple(LANGUAGES) == LANGUAGE_CODES


def test_no_module_is_over_450_lines():
    long = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 450}
    assert long == {}


def test_no_blanket_type_ignore():
    """mypy checks all of ray_xt (make lint); an ignore names the error code it silences."""
    blanket = [f"{p.relative_to(ROOT)}:{i}" for p in PACKAGE.rglob("*.py")
               for i, line in enumerate(p.read_text().splitlines(), 1) if re.search(r"type: ignore(?!\[)", line)]
    assert blanket == []

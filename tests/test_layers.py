"""The package's layers (../shared/DESIGN.md, "Layers"): every tngvideo-internal import, at
module level or inside a function, goes to the same floor or a lower one, and no modules import
each other in a circle. Read from the source with `ast`: nothing is imported."""

from __future__ import annotations

import ast
from pathlib import Path

import tngvideo

ROOT = Path(tngvideo.__file__).parent

# Floors, ground first: a module imports only its own floor and those below it. A key is the
# name of a module or subpackage directly under tngvideo/ (a subpackage: everything in it).
FLOORS = [
    {"errors", "limits", "fileio", "datapaths", "heap", "nn", "entropy", "bitstream", "metrics"},
    {"latent"},  # the hyperprior latent coder that image, motion and residual all use
    {"image"},
    {"video"},
    {"media", "media_passthrough", "videofile", "parallel", "ratecontrol"},  # workflows
    {"analysis", "streaming", "fuzzing"},
    {"api"},  # the public Python API, exported from tngvideo itself
    {"cli", "__init__", "__main__"},  # `__init__`: the package's own tngvideo/__init__.py
]
# `train` sits beside the models: it may import itself and the floors up to `video`; nothing in
# the package imports it (tools/*.py do).
TRAIN = "train"
TRAIN_MAX_FLOOR = next(i for i, names in enumerate(FLOORS) if "video" in names)

# Imports that break the map today, outside the change that added this test. Each is
# (importer, imported); remove an entry when its import is gone.
ALLOWED = {
    # train reads video files for training clips through the media workflow (PyAV);
    # a lazy import, inside read_clips.
    ("tngvideo.train.video_data", "tngvideo.media"),
}


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module under tngvideo/ (a package is its __init__)."""
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The tngvideo modules `name` imports anywhere in its file (functions included; not under
    `if TYPE_CHECKING:`, which never runs). `from a.b import c` is an import of a.b.c when that is
    a module, else of a.b."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            for alias in node.names:
                sub = f"{mod}.{alias.name}"
                found.add(sub if sub in modules else mod)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    resolved = set()
    for mod in found:
        while mod and mod not in modules:  # `import tngvideo.a.b` of a name inside a module
            mod = mod.rpartition(".")[0]
        if mod.split(".")[0] == "tngvideo" and mod != name:
            resolved.add(mod)
    return resolved


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _key(module: str) -> str:
    """The first component under tngvideo (`tngvideo` itself is `__init__`)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def floor(module: str) -> int | None:
    """The floor of a module; None for train."""
    key = _key(module)
    if key == TRAIN:
        return None
    for i, names in enumerate(FLOORS):
        if key in names:
            return i
    raise AssertionError(f"{module}: not on any floor of tests/test_layers.py: add it to FLOORS")


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for a, targets in sorted(graph.items()):
        for b in sorted(targets):
            if (a, b) in ALLOWED:
                continue
            fa, fb = floor(a), floor(b)
            if fb is None and fa is not None:
                bad.append(f"{a} imports {b}: nothing in the package imports train")
            elif fa is None and fb is not None and fb > TRAIN_MAX_FLOOR:
                bad.append(f"{a} imports {b} (floor {fb}): train imports only floors 0-{TRAIN_MAX_FLOOR}")
            elif fa is not None and fb is not None and fb > fa:
                bad.append(f"{a} (floor {fa}) imports {b} (floor {fb}), a higher floor")
    return bad


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def test_the_graph_is_read():
    graph = import_graph()
    assert "tngvideo.videofile" in graph and "tngvideo.cli.commands" in graph
    assert "tngvideo.media" in graph["tngvideo.videofile"]
    assert "tngvideo.api.video" in graph["tngvideo.cli.commands"]  # a function-level import
    assert "tngvideo.videofile" in graph["tngvideo.api.video"]


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "modules that import each other in a circle:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_no_import_from_a_higher_floor():
    found = layer_violations(import_graph())
    assert not found, "\n".join(found)


def test_the_allow_list_is_still_needed():
    graph = import_graph()
    assert [(a, b) for a, b in sorted(ALLOWED) if b not in graph.get(a, ())] == []


def test_the_checks_catch_a_violation():
    graph = {k: set(v) for k, v in import_graph().items()}
    graph["tngvideo.bitstream.container"].add("tngvideo.media")
    graph["tngvideo.media"].add("tngvideo.bitstream.container")
    assert any("tngvideo.bitstream.container" in c for c in cycles(graph))
    assert any(v.startswith("tngvideo.bitstream.container (floor 0) imports tngvideo.media") for v in layer_violations(graph))


def test_latent_sits_between_the_ground_floor_and_image():
    assert floor("tngvideo.nn") < floor("tngvideo.latent.codec") < floor("tngvideo.image.codec") < floor("tngvideo.video.codec")
    graph = {k: set(v) for k, v in import_graph().items()}
    assert "tngvideo.latent.model" in graph["tngvideo.image.model"]
    graph["tngvideo.latent.codec"].add("tngvideo.image.model")
    assert any(v.startswith("tngvideo.latent.codec (floor 1) imports tngvideo.image.model") for v in layer_violations(graph))


# What the command line may import besides itself and the public API: errors it maps to exit
# codes, and option defaults and names (free of torch). Nothing that codes or decodes.
CLI_MAY_IMPORT = {"tngvideo", "tngvideo.errors", "tngvideo.bitstream", "tngvideo.limits", "tngvideo.video",
                  "tngvideo.image.registry", "tngvideo.streaming.playlist"}


def test_the_cli_is_a_thin_adapter_over_the_public_api():
    graph = import_graph()
    cli = {m: t for m, t in graph.items() if m == "tngvideo.cli" or m.startswith("tngvideo.cli.")}
    assert len(cli) > 1
    beyond = {(m, t) for m, targets in cli.items() for t in targets
              if not t.startswith(("tngvideo.cli", "tngvideo.api")) and t not in CLI_MAY_IMPORT}
    assert beyond == set()
    assert floor("tngvideo.analysis.video_report") < floor("tngvideo.api.video") < floor("tngvideo.cli.app")

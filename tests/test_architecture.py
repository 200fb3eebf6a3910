"""The layer rules of docs/architecture.md, checked on the source's imports (read with ast, nothing imported): each
part of the package imports only the parts below it, and no module imports one that imports it back."""

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).parents[1] / "dirtypixels_tf"
NAME = PACKAGE.name

# part -> the parts it may import besides the foundation (docs/architecture.md, "The layers"); every part may import
# the foundation modules, which import nothing of the package.
FOUNDATION = {"catalog", "optional", "_lazy"}
ALLOWED = {
    "catalog": set(),
    "optional": set(),
    "_lazy": set(),
    "physics": set(),
    "layers": {"physics"},
    "models": {"physics", "layers"},
    "data": {"physics"},
    "training": {"physics", "models", "data"},
    "export": {"physics", "layers", "models", "data"},
    "evaluation": {"physics", "models", "data", "export"},
    "serving": {"physics", "data", "export"},
    "commands": {"physics", "layers", "models", "data", "training", "export", "evaluation", "serving"},
    "cli": {"commands"},
}
EVALUATION_READS_EXPORTS_THROUGH = {f"{NAME}.export.layout"}


def _module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _imports(path, top_level_only=False):
    """The package modules `path` imports (a `from package import name` of a submodule counts as that module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in MODULES else node.module)
    return {name for name in found if name == NAME or name.startswith(NAME + ".")}


def _part(module):
    return module.split(".")[1] if "." in module else None


def _graph():
    """part -> {part: [importing modules]} over every import, those inside functions included; imports of the
    foundation count only from the foundation itself."""
    graph = {}
    for module, path in MODULES.items():
        source = _part(module)
        for imported in _imports(path):
            target = _part(imported)
            if target in FOUNDATION and source not in FOUNDATION:
                continue
            if source is not None and target is not None and target != source:
                graph.setdefault(source, {}).setdefault(target, []).append(module)
    return graph


def _cycle(edges):
    """One cycle of the directed graph `edges` (node -> set of nodes) as a list, or None."""
    state = {}

    def visit(node, trail):
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                return trail[trail.index(nxt) :] + [nxt] if nxt in trail else [node, nxt]
            if nxt not in state:
                found = visit(nxt, trail + [nxt])
                if found:
                    return found
        state[node] = "done"
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node, [node])
            if found:
                return found
    return None


def test_every_part_of_the_package_has_a_rule():
    assert {_part(module) for module in MODULES if _part(module)} == set(ALLOWED)


def test_each_part_imports_only_the_parts_below_it():
    broken = [
        f"{source} imports {target} ({', '.join(sorted(set(modules)))})"
        for source, targets in _graph().items()
        for target, modules in targets.items()
        if target not in ALLOWED[source]
    ]
    assert not broken, broken


def test_the_stated_order_has_no_cycle_and_physics_imports_no_layer_above_it():
    assert _cycle(ALLOWED) is None
    graph = _graph()
    assert not graph.get("physics") and not FOUNDATION & set(graph), graph


def test_evaluation_reads_exports_only_through_the_layout_module():
    for module, path in MODULES.items():
        if _part(module) == "evaluation":
            exports = {name for name in _imports(path) if _part(name) == "export"}
            assert exports <= EVALUATION_READS_EXPORTS_THROUGH, (module, exports)


def test_no_module_imports_one_that_imports_it_back():
    edges = {module: _imports(path, top_level_only=True) & set(MODULES) for module, path in MODULES.items()}
    edges = {module: {target for target in targets if target != module} for module, targets in edges.items()}
    assert _cycle(edges) is None, _cycle(edges)


def test_the_checks_see_a_broken_rule():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _part(f"{NAME}.physics.noise") == "physics" and "physics" not in ALLOWED["physics"]

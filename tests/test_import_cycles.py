"""No import cycle among the project's modules, imports inside functions included."""
import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("cincer_service", "api", "tasks", "clients")


def modules() -> dict[str, str]:
    """Dotted module name -> file path, for every module of the project's packages."""
    found = {}
    for package in PACKAGES:
        for folder, _, files in os.walk(os.path.join(ROOT, package)):
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    dotted = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                    found[dotted.removesuffix(".__init__")] = path
    return found


def imports_of(module: str, path: str, known: set[str]) -> set[str]:
    """The project modules ``module`` imports anywhere in its file (``from package import
    name`` counts as importing ``package.name`` when that is a module)."""
    is_package = path.endswith("__init__.py")
    base = module if is_package else module.rpartition(".")[0]
    found = set()
    for node in runtime_nodes(ast.parse(open(path).read(), path)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = base.split(".")
                anchor = ".".join(parts[:len(parts) - node.level + 1])
                source = f"{anchor}.{node.module}" if node.module else anchor
            else:
                source = node.module
            targets = [source] + [f"{source}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != module:
                found.add(target)
    return found


def runtime_nodes(tree):
    """Every node except those under ``if TYPE_CHECKING:`` (annotations only, never run)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and getattr(child.test, "id", None) == "TYPE_CHECKING":
                todo.extend(child.orelse)
                continue
            todo.append(child)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, result, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return result


def package_edges_removed(graph):
    """A package's ``__init__`` importing its own submodules is not a cycle with them."""
    return {m: {t for t in targets if not (m.startswith(t + ".") and t in graph)}
            for m, targets in graph.items()}


def test_the_detector_finds_a_cycle_hidden_in_a_function(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "a.py").write_text("from . import b\n")
    (tmp_path / "pkg" / "b.py").write_text("def late():\n    from .a import x\n")
    known = {"pkg", "pkg.a", "pkg.b"}
    graph = {m: imports_of(m, str(tmp_path / (m.replace(".", "/") + ".py")), known)
             for m in ("pkg.a", "pkg.b")}
    assert cycles(graph) == [["pkg.a", "pkg.b"]]


def test_no_import_cycles():
    found = modules()
    graph = package_edges_removed({m: imports_of(m, p, set(found)) for m, p in found.items()})
    result = cycles(graph)
    print(f"{len(found)} modules, {sum(map(len, graph.values()))} imports, "
          f"cycles: {result or 'none'}")
    assert result == [], "import cycles: " + "; ".join(" -> ".join(c) for c in result)

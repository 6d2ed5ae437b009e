"""The shape of the Python package: a small public API (what baobab/__init__.py
exports), the command line in a private subpackage, an acyclic import graph,
and typed stubs for the extension installed with it."""
import ast
import importlib
import importlib.metadata
import pathlib

import pytest

import baobab

SOURCE = pathlib.Path(__file__).resolve().parents[1] / "pylib" / "baobab"
INSTALLED = pathlib.Path(baobab.__file__).parent
# compiled extension modules of the installed package (baobab._core): leaves of the graph
EXTENSIONS = {f"baobab.{p.name.split('.')[0]}" for p in INSTALLED.iterdir() if p.suffix in (".so", ".pyd")}


def _modules(root):
    """{dotted name: path} of every module of the package under root (None: an extension)."""
    out = {name: None for name in EXTENSIONS}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def import_graph(root=SOURCE):
    """{module: set of package modules it imports}, from every import statement
    anywhere in its source (inside functions too: a function-level import that
    closes a cycle is still a cycle)."""
    mods = _modules(root)
    graph = {name: set() for name in mods}
    for name, path in mods.items():
        if path is None:
            continue
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                for a in node.names:
                    parts = a.name.split(".")
                    targets += [".".join(parts[:i]) for i in range(len(parts), 0, -1)
                                if ".".join(parts[:i]) in mods][:1]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = ".".join(base[:len(base) - node.level + 1])
                    target = f"{base}.{node.module}" if node.module else base
                else:
                    target = node.module or ""
                if target not in mods:
                    continue
                subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in mods]
                # `from . import x` names the submodule x; `from .m import y` imports m (and y if a submodule)
                targets += subs if (subs and not node.module) else [target] + subs
            graph[name].update(t for t in targets if t != name)
    return graph


def find_cycle(graph):
    """One cycle as a list of modules (first == last), or None."""
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_the_package_imports_without_a_cycle():
    graph = import_graph()
    assert "baobab._cli.main" in graph and "baobab._gpu" in graph and "baobab._core" in graph
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_the_cycle_finder_sees_function_level_imports(tmp_path):
    pkg = tmp_path / "baobab"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("def f():\n    from .a import g\n")
    (pkg / "c.py").write_text("from .a import b as _b\n")
    graph = import_graph(pkg)
    assert graph["baobab.a"] == {"baobab.b"} and graph["baobab.b"] == {"baobab.a"}
    assert find_cycle(graph) in (["baobab.a", "baobab.b", "baobab.a"], ["baobab.b", "baobab.a", "baobab.b"])


def test_the_former_cycles_are_gone():
    g = import_graph()
    # the device paths sit below the datatype engine and point-to-point
    assert "baobab.datatype" not in g["baobab._gpu"] and "baobab.p2p" not in g["baobab._gpu"]
    # the benchmarks share the command line's common module, not each other's entry points
    for m in ("bench_attention", "bench_datatype", "plot", "common"):
        assert "baobab._cli.bench" not in g[f"baobab._cli.{m}"] and "baobab._cli.main" not in g[f"baobab._cli.{m}"]


def test_the_public_api_is_what_init_exports():
    for name in baobab.__all__:
        assert hasattr(baobab, name), name
    assert not any(n.startswith("_") and n != "__version__" for n in baobab.__all__)


@pytest.mark.parametrize("old", ["cli", "bench", "bench_attention", "bench_datatype", "tune", "info", "plot"])
def test_the_command_line_is_not_in_the_public_namespace(old):
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(f"baobab.{old}")
    assert not (SOURCE / f"{old}.py").exists()


def test_the_console_script_runs_the_private_entry_point():
    scripts = [e for e in importlib.metadata.entry_points(group="console_scripts") if e.name == "baobab"]
    assert [e.value for e in scripts] == ["baobab._cli.main:main"]
    from baobab._cli.main import main
    assert scripts[0].load() is main


def test_the_extension_ships_typed_stubs():
    """nanobind's stubgen writes _core.pyi at build time; it is installed beside
    the module with the py.typed marker, so editors and type checkers see the API."""
    from baobab import _core
    stub = INSTALLED / "_core.pyi"
    assert stub.is_file(), f"no {stub}: was the package built with BAOBAB_STUBS=OFF?"
    assert (INSTALLED / "py.typed").is_file()
    text = stub.read_text()
    tree = ast.parse(text)
    defined = {n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
    assert {"Communicator", "Work", "Topology", "Layout", "Coll", "DType", "RedOp"} <= defined
    assert {"coll_from_name", "simulate", "plan_for", "check_timeout", "attention_forward"} <= defined
    assert "def coll_from_name(name: str) -> Coll" in text  # the enums are in the signatures
    public = {n for n in dir(_core) if not n.startswith("_")}
    assert not [n for n in public if n not in text], "names of _core missing from the stub"


def test_every_application_module_ships_typed_stubs():
    """Each application's extension module (baobab_apps._<app>) gets its stub
    from the same build, naming every public function of the module."""
    apps = sorted(p.parent.parent.name for p in (pathlib.Path(__file__).parents[1] / "apps").glob("*/src/module.cpp"))
    assert "nbody" in apps
    for app in apps:
        mod = importlib.import_module(f"baobab_apps._{app}")
        stub = pathlib.Path(mod.__file__).parent / f"_{app}.pyi"
        assert stub.is_file(), f"no {stub}: was the package built with BAOBAB_STUBS=OFF?"
        text = stub.read_text()
        ast.parse(text)
        public = {n for n in dir(mod) if not n.startswith("_")}
        assert public and not [n for n in public if n not in text], f"names of _{app} missing from its stub"

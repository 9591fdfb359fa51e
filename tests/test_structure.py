"""The package's structure: no import circle, no import from a higher layer, no private name
imported across modules, one identity per model, and every model composed of a latent codec.

The import graph is read from the sources (every import statement, lazy ones included), so the
check needs no import of the package and no extra tool.
"""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "lccodec"
DOCS = Path(__file__).resolve().parents[1] / "docs"

#: Lowest first. A module may import from its own layer and the layers below, never above.
LAYERS: list[tuple[str, ...]] = [
    ("errors", "identity", "default_model", "released_weights", "atomic", "files", "device", "metrics"),
    ("container", "metadata", "coding", "tiling", "layers", "entropy_models", "exact.fixed_point"),
    ("exact", "imageio", "weights_io", "side_streams"),
    ("latents",),
    ("models",),
    ("codec",),
    ("__init__", "batch", "demo", "checks", "train", "bench", "weights_parts"),
    ("cli", "train.cli", "train.__main__", "bench.cli"),  # the command lines
]
KNOWN_UPWARD: set[tuple[str, str]] = set()
KNOWN_CIRCLES: list[set[str]] = []


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py") if "weights" not in p.relative_to(PACKAGE).parts}


def _resolve(module: str, is_package: bool, node: ast.ImportFrom | ast.Import, known: set[str]) -> list[tuple[str, list[str]]]:
    """(target module, imported names) of one import statement, targets inside lccodec only."""
    out = []
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name == "lccodec" or alias.name.startswith("lccodec."):
                out.append((alias.name[len("lccodec."):] if "." in alias.name else "__init__", []))
        return out
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        if module == "__init__":
            base = []
        base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
        target = ".".join(base + ([node.module] if node.module else []))
    elif node.module and (node.module == "lccodec" or node.module.startswith("lccodec.")):
        target = node.module[len("lccodec."):] if "." in node.module else ""
    else:
        return out
    names = [a.name for a in node.names]
    for name in names:  # `from . import container` imports the module lccodec.container
        sub = f"{target}.{name}" if target else name
        if sub in known:
            out.append((sub, []))
    if not all((f"{target}.{n}" if target else n) in known for n in names):
        out.append((target or "__init__", [n for n in names if (f"{target}.{n}" if target else n) not in known]))
    return out


def import_graph() -> dict[str, dict[str, list[str]]]:
    """module -> {imported module: names imported from it}, for every module of lccodec."""
    modules = _modules()
    known = set(modules)
    graph: dict[str, dict[str, list[str]]] = {}
    for name, path in modules.items():
        edges: dict[str, list[str]] = {}
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target, names in _resolve(name, path.name == "__init__.py", node, known):
                    if target != name:
                        edges.setdefault(target, []).extend(names)
        graph[name] = edges
    return graph


def _layer(module: str) -> int:
    best, index = -1, None
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, index = len(prefix), i
    if index is None:
        raise AssertionError(f"module lccodec.{module} is in no layer of tests/test_structure.py")
    return index


def _cycles(graph: dict[str, dict[str, list[str]]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    sys.setrecursionlimit(max(1000, sys.getrecursionlimit()))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circle():
    cycles = [c for c in _cycles(import_graph()) if c not in KNOWN_CIRCLES]
    assert not cycles, cycles


def test_no_import_from_a_higher_layer():
    upward = sorted(
        (module, target) for module, edges in import_graph().items() for target in edges
        if _layer(target) > _layer(module) and (module, target) not in KNOWN_UPWARD
    )
    assert not upward, upward


def test_no_private_name_imported_across_modules():
    private = sorted(
        (module, target, name) for module, edges in import_graph().items()
        for target, names in edges.items() for name in names if name.startswith("_") and name != "__version__"
    )
    assert not private, private


def test_the_graph_is_read_correctly():
    graph = import_graph()
    assert "exact.fixed_point" in graph["latents.gaussian"]
    assert "container" in graph["latents.base"]
    assert "latents.hyperprior" in graph["models.hyperprior"]
    assert "identity" in graph["container"]
    assert _cycles({"a": {"b": []}, "b": {"c": []}, "c": {"a": []}, "d": {"a": []}}) == [{"a", "b", "c"}]


# ------------------------------------------------------------------------- identity
def test_one_identity_per_model():
    from lccodec.identity import BY_ID, IDENTITIES
    from lccodec.models import MODELS
    from lccodec.models.registry import MODEL_CLASSES

    assert [i.model_id for i in IDENTITIES] == [1, 2, 3, 4, 5]  # ids are recorded in files: never renumber
    assert {i.name: i.model_id for i in IDENTITIES} == {
        "hyperprior": 1, "context": 2, "reference": 3, "hierarchical": 4, "coarse2fine": 5}
    assert list(MODELS) == [i.name for i in IDENTITIES]
    for cls in MODEL_CLASSES:
        assert BY_ID[cls.model_id] is cls.identity and cls.name == cls.identity.name
        assert MODELS[cls.name].factory is cls and MODELS[cls.name].model_id == cls.model_id
    listed = re.search(r"\| model_id \| (.*) \|", (DOCS / "format.md").read_text()).group(1)
    assert dict((n, int(i)) for n, i in re.findall(r"(\w+) = (\d+)", listed)) == {i.name: i.model_id for i in IDENTITIES}


def test_params_layouts_come_from_the_identity():
    from lccodec import container
    from lccodec.exact.reference_search import Window
    from lccodec.identity import identity

    assert identity("reference").params.unpack(Window(3, 7).pack()) == {
        "search_window_rows": 3, "search_window_cols": 7}
    header = container.Header(3, 0, 256, 64, 64, "RGB", 3, Window(3, 7).pack())
    assert container.describe(header, [])["search_window_cols"] == 7
    assert all(i.params is None for i in (identity(n) for n in ("hyperprior", "context", "hierarchical", "coarse2fine")))


def test_info_needs_no_torch(tmp_path):
    from lccodec import container

    path = tmp_path / "x.lic"
    path.write_bytes(container.pack(container.Header(4, 1, 512, 8, 8, "L", 0x13), []))
    code = (f"import sys; sys.argv = ['lic', 'info', {str(path)!r}]\n"
            "from lccodec.cli import main\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "assert 'torch' not in sys.modules, 'lic info imported torch'\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": str(SRC)})
    assert out.returncode == 0, out.stderr
    assert "hierarchical" in out.stdout


# --------------------------------------------------------------------- composition
@pytest.mark.parametrize("name", ["hyperprior", "context", "reference", "hierarchical", "coarse2fine"])
def test_every_model_is_transforms_and_a_latent_codec(name):
    import torch

    from lccodec.latents.base import LatentCodec
    from lccodec.models import LicModel, build_model, model_by_name

    model = build_model(model_by_name(name), {"N": 8, "M": 12})
    assert isinstance(model, LicModel)
    codec = model.latent_codec
    assert type(codec).__module__.startswith("lccodec.latents.")
    for verb in ("likelihoods", "compress", "decompress", "stream_kinds", "header_params", "build_tables", "load_tables"):
        assert callable(getattr(codec, verb, None)), verb
    assert isinstance(codec, object) and not isinstance(codec, torch.nn.Module)  # parameters stay the model's
    del LatentCodec


def test_the_training_verb_runs_without_the_synthesis(monkeypatch):
    """Rate-only training on frozen transforms: analysis once, likelihoods, no synthesis."""
    import torch

    from lccodec.models import build_model, model_by_name

    for name in ("hyperprior", "context", "reference", "hierarchical", "coarse2fine"):
        torch.manual_seed(0)
        model = build_model(model_by_name(name), {"N": 8, "M": 12})
        monkeypatch.setattr(model, "synthesis", lambda *a: pytest.fail("synthesis ran"))
        monkeypatch.setattr(model, "g_s", None)
        x = torch.rand(2, 3, model.stride, model.stride)
        q = torch.tensor([2.0, 7.0])
        rates = model.likelihoods(model.apply_gain(model.analyze(x), q), q)
        bits = sum(-torch.log2(p).sum() for p in rates.likelihoods.values())
        bits.backward()
        head = [p for n, p in model.named_parameters() if n.startswith(("h_s", "entropy_parameters", "params_full", "c2"))]
        assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in head), name
        assert all(p.grad is None for n, p in model.named_parameters() if n.startswith("g_a")), name


def test_the_walkthrough_model_is_one_small_file(monkeypatch):
    """docs/new_model.md's example model, run as written: it composes an existing latent codec
    and round-trips exactly."""
    import torch

    from lccodec import identity as ids
    from lccodec.coding import EscapeReader, EscapeWriter

    text = (DOCS / "new_model.md").read_text()
    source = re.search(r"```python\n(\"\"\"Mean-scale hyperprior with GSDN.*?)```", text, re.S).group(1)
    source = source.replace("from ..", "from lccodec.").replace("from .base", "from lccodec.models.base")
    monkeypatch.setitem(ids.BY_NAME, "hyperprior-gsdn", ids.ModelIdentity("hyperprior-gsdn", 99, "walkthrough"))
    namespace: dict = {}
    exec(compile(source, "docs/new_model.md", "exec"), namespace)
    torch.manual_seed(0)
    model = namespace["GsdnHyperpriorModel"](N=8, M=12).eval()
    assert model.model_id == 99 and "gsdn" not in model.config
    model.build_tables()
    x = torch.rand(1, 3, 64, 128)
    escapes = EscapeWriter()
    streams, flags, x_hat = model.compress(model.analyze(x), 3.0, escapes)
    decoded = model.decompress({s.kind: s for s in streams}, (64, 128), 3.0, EscapeReader(escapes.getvalue()),
                               torch.device("cpu"), flags, b"")
    assert torch.equal(decoded, x_hat)

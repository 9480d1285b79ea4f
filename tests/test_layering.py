"""The layers only import downwards, nothing below the faces imports `model.api`, and each one-line formula the
restructure gave a single home is defined once and imported everywhere else (`duplicates` cannot see one-line
copies)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from model.serving.deployment import deployment
from model.serving.overrides import override_symbols
from model.serving.protocol import CostedDeployment
from model.serving.stacked import StackedDeployment

ROOT = Path(__file__).resolve().parents[1] / "model"

# lowest first; a module may import its own layer and any layer before it
LAYERS = [
    ["errors", "precision", "lru"],
    ["architecture", "hardware"],
    ["operators"],
    ["roofline"],
    ["engines"],
    ["placement"],
    ["serving"],
    ["techniques"],
    ["planner", "training"],
    ["calibration", "validation"],
    ["scenarios"],
    ["bench", "cli", "app", "api", "format", "notebook"],
]
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}
FACES = {"bench", "cli", "app", "api", "format", "notebook", "scenarios", "validation"}


def _package(path: Path) -> str:
    rel = path.relative_to(ROOT)
    return rel.parts[0].removesuffix(".py")


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("model."):
            out.append(node.module)
            out += [f"{node.module}.{a.name}" for a in node.names if node.module == "model"]
        elif isinstance(node, ast.Import):
            out += [a.name for a in node.names if a.name.startswith("model.")]
    return out


MODULES = sorted(p for p in ROOT.rglob("*.py"))


def test_every_package_has_a_layer():
    packages = {_package(p) for p in MODULES if p.name != "__init__.py" or p.parent != ROOT}
    packages.discard("__init__")
    assert packages <= set(RANK), f"packages without a layer: {sorted(packages - set(RANK))}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down(path):
    here = _package(path)
    if here == "__init__":
        return
    for module in _imports(path):
        target = module.split(".")[1]
        if target == "api":  # the re-export module for the faces, whatever it re-exports
            assert here in FACES, f"{path.relative_to(ROOT)} imports model.api (faces only)"
            continue
        assert RANK[target] <= RANK[here], f"{path.relative_to(ROOT)} ({here}) imports {module} ({target}): upward"


# one-line formulas with one home: (pattern of a re-derivation, the module allowed to hold it)
ONE_HOME = [
    ("mean decode context I + (O - 1)/2", r"np\.maximum\(\s*\w+\s*-\s*1,\s*0\)\s*/\s*2|max\(\w+ - 1, 0\) / 2|\(\w+ - 1\) / 2\)",
     "serving/workload.py"),
    ("KV width kv_heads x (head_dim + v_head_dim)", r"\(\s*[\w.]*head_dim\s*\+\s*[\w.]*v_head_dim\s*\)", "architecture/blocks.py"),
    ("M/G/1 wait lambda E[S^2] / (2 (1 - rho))", r"/\s*\(2 \* \(1 - (rho|mid)\)\)", "serving/queueing.py"),
    ("hand-written roofline max(compute, memory)", r"max\(\s*compute\s*,\s*memory\s*\)|np\.maximum\(\s*compute\s*,\s*memory\s*\)",
     "roofline/kernel.py"),
]


@pytest.mark.parametrize("name,pattern,home", ONE_HOME, ids=[h[0] for h in ONE_HOME])
def test_one_line_formula_has_one_home(name, pattern, home):
    hits = [str(p.relative_to(ROOT)) for p in MODULES
            if re.search(pattern, "\n".join(line.split(" # ")[0] for line in p.read_text().splitlines()
                                            if not line.lstrip().startswith("#")))]
    stray = [h for h in hits if h != home and not h.startswith("scenarios/")]
    assert not stray, f"{name} is written again in {stray}; import it from {home}"


def test_lengths_and_slo_from_user_input_have_one_home():
    for face in ("cli/estimate.py", "cli/plan.py", "app/cache.py"):
        text = (ROOT / face).read_text()
        assert "Lengths.lognormal(" not in text and "/ 1e3 if" not in text, face


def test_deployment_kinds_satisfy_the_serving_protocol():
    d = deployment("llama-3.1-8b", "h100-sxm")
    assert isinstance(d, CostedDeployment)
    assert isinstance(override_symbols(d, "test", b_kv=1.0), CostedDeployment)
    assert isinstance(StackedDeployment.repeat([d, deployment("llama-3.1-8b", "h200")], 2), CostedDeployment)


def test_library_and_cli_work_without_the_app_extra():
    """Streamlit and altair are the app extra: importing the planner or running the CLI must not need them."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('streamlit', 'altair'):\n"
        "            raise ImportError(f'blocked {name}')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import model.planner.plan, model.training, model.techniques.diffusion\n"
        "from model.cli import main\n"
        "raise SystemExit(main(['estimate', '--model', 'llama-3.1-8b', '--gpu', 'h100-sxm', '--json']))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "ttft" in out.stdout

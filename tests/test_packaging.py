"""setup.py, the environment script and the README agree on what the package needs."""
import ast
import re
from pathlib import Path

from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]


def setup_keywords() -> dict:
    tree = ast.parse((ROOT / "setup.py").read_text())
    call = next(node for node in ast.walk(tree) if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "setup")
    return {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords
            if kw.arg in ("python_requires", "install_requires", "extras_require")}


def test_python_version_is_the_same_everywhere():
    """The environment needs Python 3.11 (fairseq-fixed is built for it): setup.py and README say so."""
    required = SpecifierSet(setup_keywords()["python_requires"])
    assert "3.11.7" in required and "3.9.18" not in required and "3.12.1" not in required
    assert 'sys.version_info[:2] == (3, 11)' in (ROOT / "scripts/setup_env.sh").read_text()
    assert re.search(r"\(Python 3\.11[,)]", (ROOT / "README.md").read_text())

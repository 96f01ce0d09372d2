"""The product card's layout, the install metadata, and conda/pip dependency sync."""

import subprocess
import sys
import tomllib

import yaml

from conftest import REPO


def test_top_level_layout():
    for name in ["robodiff", "envs", "policies", "real_robot", "scripts", "tests", "conda_environment.yaml",
                 "pyproject.toml", "Makefile", "README.md", "BENCHMARKS.md", ".ci/run"]:
        assert (REPO / name).exists(), name
    for pkg in ["robodiff", "envs", "policies", "real_robot"]:
        assert (REPO / pkg / "__init__.py").exists(), pkg


def test_conda_environment_matches_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = set(project["dependencies"]) | set(project["optional-dependencies"]["test"])
    env = yaml.safe_load((REPO / "conda_environment.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    listed = {p for p in pip if not p.startswith("-e")}
    assert listed == wanted, f"only in pyproject: {wanted - listed}; only in conda: {listed - wanted}"


def test_console_command_and_packages_installed():
    out = subprocess.run([sys.executable, "-c", "import robodiff, envs, policies, real_robot; print('ok')"],
                         capture_output=True, text=True, cwd="/")
    assert out.stdout.strip() == "ok", out.stderr
    exe = REPO / ".venv" / "bin" / "robodiff"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "robodiff.cli"]
    help_text = subprocess.run(cmd + ["data", "--help"], capture_output=True, text=True).stdout
    assert "info" in help_text and "convert" in help_text


def test_import_direction():
    """robodiff imports none of envs/policies/real_robot; envs and policies not each other."""
    import re
    rules = {"robodiff": ("envs", "policies", "real_robot"), "envs": ("policies", "real_robot"),
             "policies": ("envs", "real_robot")}
    for pkg, banned in rules.items():
        for f in (REPO / pkg).rglob("*.py"):
            text = f.read_text()
            for b in banned:
                assert not re.search(rf"^\s*(from|import)\s+{b}\b", text, re.M), f"{f} imports {b}"

"""The product card's layout, the install metadata, and conda/pip dependency sync."""

import subprocess
import sys
import tomllib

import pytest
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
    # the installed entry points load: every package's commands are listed, with no warning
    top = subprocess.run(cmd + ["--help"], capture_output=True, text=True, cwd="/")
    assert top.returncode == 0 and "warning" not in top.stderr, top.stderr
    assert all(c in top.stdout for c in ("train", "eval", "collect", "record", "deploy", "bench")), top.stdout


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


@pytest.mark.slow
def test_wheel_ships_the_configs_and_declares_the_commands(tmp_path):
    """What `pip install .` installs: the hydra configs inside the package, the command and env-runner entry
    points, so that `robodiff train|eval|collect|record|deploy|bench` need no clone."""
    import zipfile

    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path), str(REPO)], capture_output=True, text=True, cwd=tmp_path)
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = tmp_path.glob("robodiff-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {n for n in names if n.startswith("policies/configs/") and n.endswith(".yaml")}
    in_tree = {str(p.relative_to(REPO)) for p in (REPO / "policies" / "configs").rglob("*.yaml")}
    assert in_tree and shipped == in_tree
    eps = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    for line in ("robodiff = robodiff.cli:main", "policies = policies.commands:register", "envs = envs.commands:register",
                 "real_robot = real_robot.commands:register", "pusht = envs.pusht.runner:runner_from_config"):
        assert line in eps, eps


def test_commands_registered_by_each_package():
    """Each package's register() adds its commands beside `data`; none loads its command modules to do so."""
    import argparse

    import envs.commands
    import policies.commands
    import real_robot.commands
    from robodiff.cli import build_parser

    sub = argparse.ArgumentParser().add_subparsers()
    for mod in (envs.commands, policies.commands, real_robot.commands):
        mod.register(sub)
    assert {"train", "eval", "collect", "record", "deploy", "bench"} <= set(sub.choices)
    bench = sub.choices["bench"].get_default("_subparsers")
    assert {"env", "expert", "fidelity", "policy", "real-robot"} <= set(bench.choices)
    assert "data" in build_parser()._subparsers._group_actions[0].choices


def test_scripts_are_thin_entry_points():
    """No script edits sys.path or imports another script; each calls one command module."""
    import re

    scripts = sorted((REPO / "scripts").glob("*.py"))
    names = {p.stem for p in scripts}
    for p in scripts:
        text = p.read_text()
        assert "sys.path" not in text, p
        imported = set(re.findall(r"^\s*(?:from|import)\s+(\w+)", text, re.M))
        assert not imported & names, f"{p} imports a script: {imported & names}"


def test_help_loads_neither_torch_nor_diffusers():
    """`robodiff --help` builds every group's parser without the heavy libraries (it took 8-17 s when package
    __init__ files imported them eagerly); a replay buffer opens without torch too."""
    code = ("import sys, robodiff.cli; robodiff.cli.build_parser(); "
            "from robodiff.data import ReplayBuffer; "
            "print(sorted(m for m in ('torch', 'diffusers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr

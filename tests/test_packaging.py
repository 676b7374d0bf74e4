"""Packaging: environment.yml agrees with pyproject.toml, importing the package has no side
effects, every public name exists, and the command line starts.

Import side effects are measured in fresh interpreters (``subprocess``), because the test process
has long since imported the package.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

import prunegrad_lite as pgl

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
ENVIRONMENT = yaml.safe_load((ROOT / "environment.yml").read_text())
# pip name -> conda-forge name, where they differ
CONDA_NAMES = {"torch": "pytorch"}
SUBPROCESS_TIMEOUT = 300  # s; importing torch in a cold container can take a while


# ------------------------------------------------------------------------------------------------
# environment.yml <-> pyproject.toml
# ------------------------------------------------------------------------------------------------
def _pyproject_requirements() -> dict[str, list[Requirement]]:
    """{"core": [...], "<extra>": [...]} from pyproject.toml."""
    project = PYPROJECT["project"]
    groups = {"core": [Requirement(r) for r in project["dependencies"]]}
    for extra, reqs in project.get("optional-dependencies", {}).items():
        groups[extra] = [Requirement(r) for r in reqs]
    return groups


def _environment_entries() -> tuple[list[str], list[str]]:
    """(conda specs, pip lines) of environment.yml."""
    conda, pip = [], []
    for dep in ENVIRONMENT["dependencies"]:
        if isinstance(dep, dict):
            pip.extend(dep.get("pip", []))
        else:
            conda.append(str(dep))
    return conda, pip


def _conda_spec(spec: str) -> tuple[str, SpecifierSet]:
    """``"pytorch>=2.2"``, ``"python=3.11"``, ``"conda-forge::numpy 1.26.*"`` -> (name, specs).

    A conda ``=3.11`` means 3.11.*, which is ``==3.11.*`` for pip.
    """
    spec = spec.split("::")[-1].strip()
    match = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", spec)
    assert match, f"cannot read the conda spec {spec!r}"
    name, rest = match.group(1), match.group(2).replace(" ", "")
    parts = []
    for part in filter(None, rest.split(",")):
        if re.match(r"^=[^=]", part):
            version = part[1:]
            part = f"=={version}" if version.endswith("*") else f"=={version}.*"
        parts.append(part)
    return canonicalize_name(name), SpecifierSet(",".join(parts))


def _compatible(a: SpecifierSet, b: SpecifierSet) -> bool:
    """Whether some version satisfies both: try each version either names, and its neighbours."""
    if not str(a) or not str(b):
        return True
    candidates = set()
    for spec in [*a, *b]:
        version = Version(spec.version.rstrip(".*"))
        release = list(version.release) + [0] * (3 - len(version.release))
        candidates.add(version)
        for i in range(len(release)):
            bumped = release[: i + 1]
            bumped[i] += 1
            candidates.add(Version(".".join(map(str, bumped))))
    return any(v in a and v in b for v in candidates)


def _editable_extras(pip_lines: list[str]) -> set[str] | None:
    """The extras of the ``-e ".[...]"`` line, or None when there is none."""
    for line in pip_lines:
        match = re.fullmatch(r"""(?:-e|--editable)\s+["']?\.(?:\[([^\]]*)\])?["']?""", line.strip())
        if match:
            return {e.strip() for e in (match.group(1) or "").split(",") if e.strip()}
    return None


def test_environment_yml_installs_the_repository_editable_with_all_extras() -> None:
    _, pip = _environment_entries()
    extras = _editable_extras(pip)
    assert extras is not None, f'environment.yml has no pip line  -e ".[...]": {pip}'
    wanted = set(PYPROJECT["project"].get("optional-dependencies", {}))
    assert extras == wanted, (
        f"environment.yml installs the extras {sorted(extras)}, pyproject defines {sorted(wanted)}"
    )


def test_environment_yml_python_satisfies_requires_python() -> None:
    conda, _ = _environment_entries()
    pythons = [_conda_spec(s)[1] for s in conda if _conda_spec(s)[0] == "python"]
    assert pythons, "environment.yml does not pin a Python version"
    requires = SpecifierSet(PYPROJECT["project"]["requires-python"])
    assert _compatible(pythons[0], requires), f"python {pythons[0]} contradicts {requires}"


def test_environment_yml_covers_every_pyproject_dependency_without_contradiction() -> None:
    conda, pip = _environment_entries()
    listed: dict[str, SpecifierSet] = {}
    for spec in conda:
        name, specifiers = _conda_spec(spec)
        listed[name] = specifiers
    for line in pip:
        if not line.lstrip().startswith("-"):
            req = Requirement(line)
            listed[canonicalize_name(req.name)] = req.specifier
    extras = _editable_extras(pip) or set()

    problems = []
    for group, reqs in _pyproject_requirements().items():
        installed_by_editable = group == "core" or group in extras
        for req in reqs:
            pip_name = canonicalize_name(req.name)
            name = pip_name if pip_name in listed else CONDA_NAMES.get(pip_name, pip_name)
            if name in listed:
                if not _compatible(listed[name], req.specifier):
                    problems.append(f"{req} ({group}) vs environment.yml {name}{listed[name]}")
            elif not installed_by_editable:
                problems.append(f"{req} ({group}) is neither listed nor installed by the -e line")
    assert not problems, "environment.yml disagrees with pyproject.toml:\n" + "\n".join(problems)


def test_compatibility_check_itself() -> None:
    assert _compatible(SpecifierSet(">=2.2"), SpecifierSet("<=2.14.1"))
    assert not _compatible(SpecifierSet(">=2.2"), SpecifierSet("<2.0"))
    assert _conda_spec("python=3.11") == ("python", SpecifierSet("==3.11.*"))
    assert not _compatible(_conda_spec("python=3.9")[1], SpecifierSet(">=3.10"))
    assert _editable_extras(['-e ".[dev,imagenet]"']) == {"dev", "imagenet"}
    assert _editable_extras(["numpy"]) is None


@pytest.mark.parametrize("name", ["torch", "torchvision"])
def test_no_exact_pin_on_torch(name: str) -> None:
    for group, reqs in _pyproject_requirements().items():
        for req in reqs:
            if canonicalize_name(req.name) == name:
                exact = [s for s in req.specifier if s.operator in ("==", "===")]
                assert not exact, f"pyproject pins {req} ({group}); use a range"


# ------------------------------------------------------------------------------------------------
# import side effects, each in a fresh interpreter
# ------------------------------------------------------------------------------------------------
def _run_python(
    code: str, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=SUBPROCESS_TIMEOUT,
    )
    assert result.returncode == 0, f"subprocess failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def third_party_imports(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Import the package with the network blocked and empty data folders; return the
    third-party modules it imported (so that their own import side effects can be excluded)."""
    home = tmp_path_factory.mktemp("home")
    env = {
        **os.environ,
        "HOME": str(home),
        "PRUNEGRAD_LITE_DATA": str(home / "data"),
        "TORCH_HOME": str(home / "torch"),
        "XDG_CACHE_HOME": str(home / "xdg-cache"),
        "MPLCONFIGDIR": str(tmp_path_factory.mktemp("mplconfig")),
    }
    code = """
        import json, sys

        NETWORK = {
            "socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr",
            "socket.getnameinfo", "urllib.Request", "http.client.connect",
        }
        attempts = []  # recorded even when the caller swallows the error

        def no_network(event, args):
            if event in NETWORK:
                attempts.append(f"{event} {args!r}")
                raise RuntimeError(f"network access at import time: {event} {args!r}")

        sys.addaudithook(no_network)
        before = set(sys.modules)
        import prunegrad_lite
        skip = set(sys.stdlib_module_names) | {"prunegrad_lite"}
        modules = [  # in import order, submodules too (scipy.special is not loaded by scipy)
            m for m in sys.modules if m not in before and m.split(".")[0] not in skip
        ]
        print(json.dumps({"modules": modules, "network": attempts}))
    """
    report = json.loads(_run_python(code, env).stdout.strip().splitlines()[-1])
    network = report["network"]
    assert not network, f"importing prunegrad_lite reached for the network: {network}"
    for folder in ("data", "torch", "xdg-cache", ".cache"):
        written = sorted(str(p.relative_to(home)) for p in (home / folder).rglob("*"))
        assert not written, f"importing prunegrad_lite wrote {written}"
    return report["modules"]


def test_import_does_not_touch_the_network_or_write_data(third_party_imports: list[str]) -> None:
    assert "torch" in third_party_imports  # the fixture ran the import and checked


def test_import_has_no_global_side_effects(third_party_imports: list[str], tmp_path: Path) -> None:
    """Importing the package leaves RNG states, rcParams and warnings filters as they were.

    The dependencies it imports are imported first: their own side effects are not the package's.
    """
    modules = tmp_path / "modules.json"
    modules.write_text(json.dumps(third_party_imports))
    code = """
        import importlib, json, random, sys, warnings
        for name in json.loads(open(sys.argv[1]).read()):
            try:
                importlib.import_module(name)
            except Exception:
                pass
        import matplotlib, numpy, torch

        def snapshot():
            return {
                "torch.initial_seed": torch.initial_seed(),
                "torch rng state": torch.random.get_rng_state().tolist(),
                "numpy global rng": repr(numpy.random.get_state()),
                "python random": repr(random.getstate()),
                "matplotlib.rcParams": {k: repr(v) for k, v in matplotlib.rcParams.items()},
                "warnings.filters": [repr(f) for f in warnings.filters],
            }

        before = snapshot()
        import prunegrad_lite
        after = snapshot()
        changed = {}
        for key in before:
            if before[key] != after[key]:
                if isinstance(before[key], dict):
                    changed[key] = {k: (before[key].get(k), after[key].get(k))
                                    for k in set(before[key]) | set(after[key])
                                    if before[key].get(k) != after[key].get(k)}
                elif isinstance(before[key], list) and key == "warnings.filters":
                    changed[key] = [f for f in after[key] if f not in before[key]] or "reordered"
                else:
                    changed[key] = "changed"
        print(json.dumps(changed))
    """
    changed = json.loads(_run_python(code, args=(str(modules),)).stdout.strip().splitlines()[-1])
    assert not changed, f"importing prunegrad_lite changed global state: {changed}"


# ------------------------------------------------------------------------------------------------
# public names and the command line
# ------------------------------------------------------------------------------------------------
def test_every_name_in_all_exists() -> None:
    missing = [name for name in pgl.__all__ if not hasattr(pgl, name)]
    assert not missing, f"prunegrad_lite.__all__ names missing attributes: {missing}"
    duplicates = sorted({name for name in pgl.__all__ if pgl.__all__.count(name) > 1})
    assert not duplicates, f"listed twice in __all__: {duplicates}"


def test_version_matches_pyproject() -> None:
    assert pgl.__version__ == PYPROJECT["project"]["version"]


def _require_cli() -> None:
    if importlib.util.find_spec("prunegrad_lite.cli") is None:
        pytest.skip("prunegrad_lite/cli.py does not exist yet")


def test_console_script_help() -> None:
    _require_cli()
    scripts = PYPROJECT["project"]["scripts"]
    assert "prunegrad-lite" in scripts
    script = Path(sys.executable).parent / "prunegrad-lite"
    script = script if script.exists() else shutil.which("prunegrad-lite")
    assert script, 'console script prunegrad-lite not installed: pip install -e ".[dev,imagenet]"'
    result = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT
    )
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout.lower()


def test_python_m_help() -> None:
    _require_cli()
    result = subprocess.run(
        [sys.executable, "-m", "prunegrad_lite", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=SUBPROCESS_TIMEOUT,
    )
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout.lower()


# ------------------------------------------------------------------------------------------------
# README <-> CI
# ------------------------------------------------------------------------------------------------
def _readme_test_command() -> str:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"^### Running the tests\s*\n+```bash\n(.+?)\n```", readme, re.MULTILINE)
    assert match, "README.md has no bash block right after '### Running the tests'"
    lines = match.group(1).strip().splitlines()
    assert len(lines) == 1, f"the README test command should be one line: {lines}"
    return lines[0].strip()


def test_ci_runs_exactly_the_readme_test_command_in_smoke_mode() -> None:
    command = _readme_test_command()
    ci = (ROOT / ".ci" / "run").read_text()
    ci_lines = [line.strip() for line in ci.splitlines()]
    assert command in ci_lines, f"{command!r} (README) is not a line of .ci/run"
    assert "set -euo pipefail" in ci_lines
    assert "export PRUNEGRAD_LITE_SMOKE=1" in ci_lines
    assert "export MPLBACKEND=Agg" in ci_lines
    assert "PRUNEGRAD_LITE_SMOKE" in (ROOT / "README.md").read_text()

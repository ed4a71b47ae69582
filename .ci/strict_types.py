"""The strict-typing ratchet: ``mypy --strict`` on the packages listed as clean.

``[tool.ctloop.mypy] strict_packages`` in pyproject.toml lists the packages of
``src/ctloop`` that pass ``mypy --strict`` (configured in ``[tool.mypy]``). This
script type-checks exactly those and fails on any error in them; errors mypy
reports in other, not yet listed packages they import are not counted (they are
printed as a tally). Add a package to the list once it is clean; the list only
grows. Run: ``.venv/bin/python .ci/strict_types.py`` (``--all`` also prints the
error count of every package, for choosing the next one).

The modules ``[[tool.mypy.overrides]]`` give ``disallow_any_explicit`` (the second
ratchet: no explicit ``Any``) are checked by the same run; this script fails when one of
those module names does not exist, since mypy would silently match nothing.

The same mypy run checks ``tests/`` too (``[[tool.mypy.overrides]]`` for ``tests.*``:
the bodies of test functions are checked, ``check_untyped_defs``, without asking for
annotations); any error there fails like one in a listed package (all of tests/ is
clean today; keep it so). ``--no-tests`` skips them.
"""

# ruff: noqa: T201 - a CI script reports on stdout
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tomllib
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "ctloop"
_ERROR = re.compile(r"^src/ctloop/([^/:]+)[/:.].*: error: ")
_TEST_ERROR = re.compile(r"^(tests)/.*: error: ")


def strict_packages(root: Path = ROOT) -> list[str]:
    """The listed packages, checked to exist."""
    config = tomllib.loads((root / "pyproject.toml").read_text())
    listed = list(config["tool"]["ctloop"]["mypy"]["strict_packages"])
    src = root / "src" / "ctloop"
    missing = [p for p in listed if not (src / p).is_dir() and not (src / f"{p}.py").is_file()]
    if missing:
        raise SystemExit(f"strict_packages names packages that do not exist: {missing}")
    return listed


def no_any_modules(root: Path = ROOT) -> list[str]:
    """The module patterns ``[[tool.mypy.overrides]]`` give ``disallow_any_explicit = true``,
    checked to name modules that exist (mypy ignores a pattern that matches nothing, so a
    typo would switch the ratchet off without a word)."""
    config = tomllib.loads((root / "pyproject.toml").read_text())
    patterns = []
    for block in config["tool"]["mypy"].get("overrides", []):
        if block.get("disallow_any_explicit") is True:
            modules = block["module"]
            patterns += [modules] if isinstance(modules, str) else list(modules)
    missing = [p for p in patterns if not _module_path(root, p.removesuffix(".*")).exists()]
    if missing:
        raise SystemExit(f"disallow_any_explicit names modules that do not exist: {missing}")
    return patterns


def _module_path(root: Path, module: str) -> Path:
    """The package folder or the ``.py`` file of a dotted module name under src/."""
    path = root / "src" / Path(*module.split("."))
    return path if path.is_dir() else path.with_suffix(".py")


def errors_by_package(targets: list[str], root: Path = ROOT, *, tests: bool = False
                      ) -> tuple[Counter[str], list[str]]:
    """Run mypy on ``src/ctloop/<target>`` for each target (and on ``tests/`` with
    ``tests``, in the same run); errors per package (``tests`` for tests/) and their lines."""
    src = root / "src" / "ctloop"
    paths = [str((src / t).relative_to(root)) if (src / t).is_dir()
             else str((src / f"{t}.py").relative_to(root)) for t in targets]
    if tests:  # test folders have no __init__.py: name modules by their path (tests.unit...)
        paths = ["--explicit-package-bases", *paths, "tests"]
    done = subprocess.run([sys.executable, "-m", "mypy", *paths], cwd=root, text=True,
                          capture_output=True)
    if done.returncode not in (0, 1):
        raise SystemExit(f"mypy failed to run:\n{done.stdout}{done.stderr}")
    counts: Counter[str] = Counter()
    lines = []
    for line in done.stdout.splitlines():
        match = _ERROR.match(line) or _TEST_ERROR.match(line)
        if match:
            counts[match.group(1)] += 1
            lines.append(line)
    return counts, lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="tally every package of src/ctloop")
    parser.add_argument("--no-tests", action="store_true", help="do not type-check tests/")
    args = parser.parse_args()
    listed = strict_packages()
    no_any = no_any_modules()
    if args.all:
        every = sorted(p.name for p in SRC.iterdir() if p.is_dir() and not p.name.startswith("_"))
        counts, _ = errors_by_package(every)
        for name in every:
            mark = "listed" if name in listed else ""
            print(f"{name:<12} {counts.get(name, 0):>4} {mark}")
        print(f"{'total':<12} {sum(counts.values()):>4}")
    counts, lines = errors_by_package(listed, tests=not args.no_tests)
    checked = [*listed, "tests"]
    failing = {p: n for p, n in counts.items() if p in checked}
    for line in lines:
        match = _ERROR.match(line) or _TEST_ERROR.match(line)
        if match is not None and match.group(1) in failing:
            print(line)
    if failing:
        print(f"mypy --strict: {sum(failing.values())} error(s) in {sorted(failing)}; fix "
              "them (the list in pyproject.toml only grows).")
        return 1
    others = {p: n for p, n in counts.items() if p not in checked}
    print(f"mypy --strict: {len(listed)} listed packages clean"
          + f", no explicit Any in {len(no_any)} module patterns"
          + ("" if args.no_tests else ", tests/ clean")
          + (f" (imported, not listed: {dict(sorted(others.items()))})" if others else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

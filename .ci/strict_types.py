"""The strict-typing ratchet: ``mypy --strict`` on the packages listed as clean.

``[tool.ctloop.mypy] strict_packages`` in pyproject.toml lists the packages of
``src/ctloop`` that pass ``mypy --strict`` (configured in ``[tool.mypy]``). This
script type-checks exactly those and fails on any error in them; errors mypy
reports in other, not yet listed packages they import are not counted (they are
printed as a tally). Add a package to the list once it is clean; the list only
grows. Run: ``.venv/bin/python .ci/strict_types.py`` (``--all`` also prints the
error count of every package, for choosing the next one).

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
          + ("" if args.no_tests else ", tests/ clean")
          + (f" (imported, not listed: {dict(sorted(others.items()))})" if others else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

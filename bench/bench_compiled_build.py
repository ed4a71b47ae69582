"""Compile time against predict speed of LightGBM trees compiled by lleaves' code generator.

    .venv/bin/python bench/bench_compiled_build.py [--iterations 100] [--rounds 2]

Compares, on a 4-class model (4 x ITERATIONS trees) and a binary one (2 x
ITERATIONS trees) fitted here on generated data with missing values:

- ``lleaves``: lleaves' own ``gen_forest`` (every tree inlined into one root
  function, cache blocks of 34 trees), at LLVM speed level 2, as ctloop compiled
  before;
- ``lleaves O0`` and ``lleaves noinline``: the cheap knobs (no optimisation;
  trees kept out of line);
- ``ctloop``: ``compiled_lleaves.compile_object`` as it is (each block of trees
  a function of its own).

For each: CPU seconds to compile (code generation, LLVM, link), then CPU
microseconds per predict call of 1 and 100 rows, one thread, and whether the
answers equal LightGBM's (1e-9 relative). Rounds alternate the order; the load
average is printed with each line. Compare ratios within one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ctloop.models import compiled_lleaves as impl


def lleaves_object(text: str, *, speed: int = 2, noinline: bool = False) -> bytes:
    """lleaves' own code generator (block 34), optimised and linked as ctloop does."""
    import llvmlite.binding as llvm
    import llvmlite.ir
    from lleaves.compiler.ast import parse_to_ast
    from lleaves.compiler.codegen import gen_forest

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.txt"
        path.write_text(text)
        forest = parse_to_ast(str(path))
    forest.raw_score = False
    module = llvmlite.ir.Module(name="forest")
    gen_forest(forest, module, 34, "forest_root", True)
    if noinline:
        for function in module.functions:
            if function.name != "forest_root":
                function.attributes.add("noinline")
    module.triple = llvm.get_process_triple()
    parsed = llvm.parse_assembly(str(module))
    machine = impl._target_machine()
    builder = llvm.create_pass_builder(machine, llvm.create_pipeline_tuning_options(speed))
    builder.getModulePassManager().run(parsed, builder)
    obj = bytes(machine.emit_object(parsed))
    return impl._shared(obj) or obj


def cpu_us(call: Callable[[np.ndarray], object], x: np.ndarray, seconds: float = 1.0) -> float:
    call(x)
    n, cpu, end = 0, time.process_time(), time.perf_counter() + seconds
    while time.perf_counter() < end:
        call(x)
        n += 1
    return (time.process_time() - cpu) * 1e6 / n


def main() -> None:
    import lightgbm

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20_000, 7))
    x[rng.random(x.shape) < 0.1] = np.nan
    y = np.digitize(x[:, 0] + np.nan_to_num(x[:, 1]) * x[:, 2] + rng.normal(0, 0.5, len(x)),
                    [-1.0, 0.0, 1.0])
    base = {"verbose": -1, "num_threads": 1}
    models = {
        f"multiclass {4 * args.iterations} trees": lightgbm.train(
            {**base, "objective": "multiclass", "num_class": 4}, lightgbm.Dataset(x, y),
            args.iterations),
        f"binary {2 * args.iterations} trees": lightgbm.train(
            {**base, "objective": "binary"}, lightgbm.Dataset(x, (y > 1).astype(int)),
            2 * args.iterations),
    }
    builds: dict[str, Callable[[str], bytes]] = {
        "lleaves": lleaves_object,
        "lleaves O0": lambda text: lleaves_object(text, speed=0),
        "lleaves noinline": lambda text: lleaves_object(text, noinline=True),
        "ctloop": impl.compile_object,
    }
    print("load average at start:", " ".join(f"{v:.1f}" for v in os.getloadavg()))
    results: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    for n in range(args.rounds):
        for model_name, booster in models.items():
            text = booster.model_to_string()
            expected = booster.predict(x[:1000], num_threads=1)
            for name in builds if n % 2 == 0 else list(builds)[::-1]:
                cpu = time.process_time()
                data = builds[name](text)
                seconds = time.process_time() - cpu
                predict = impl.load_object(data, features=7,
                                           outputs=booster.num_model_per_iteration())
                equal = np.allclose(predict(x[:1000]), expected, rtol=1e-9, atol=0)
                one, hundred = cpu_us(predict, x[:1].copy()), cpu_us(predict, x[:100].copy())
                results.setdefault((model_name, name), []).append((seconds, one, hundred))
                print(f"[round {n + 1}] {model_name:<22} {name:<17} compile {seconds:5.1f} s CPU"
                      f" | 1 row {one:6.1f} us | 100 rows {hundred:6.1f} us | equal {equal}"
                      f" | load {os.getloadavg()[0]:.1f}", flush=True)
    med = statistics.median
    print("\nmedians, and ratios to lleaves' own code generator:")
    for (model_name, name), runs in results.items():
        ref = results[(model_name, "lleaves")]
        ratios = [med(r[i] for r in runs) / med(r[i] for r in ref) for i in range(3)]
        print(f"  {model_name:<22} {name:<17} compile {med(r[0] for r in runs):5.1f} s "
              f"({ratios[0]:.2f}x)  1 row {med(r[1] for r in runs):6.1f} us ({ratios[1]:.2f}x)"
              f"  100 rows {med(r[2] for r in runs):6.1f} us ({ratios[2]:.2f}x)")
    print("load average at end:", " ".join(f"{v:.1f}" for v in os.getloadavg()))


if __name__ == "__main__":
    main()

"""LightGBM trees compiled to machine code by lleaves, on the llvmlite that pip installs.

lleaves turns a LightGBM model text into LLVM IR (one function per tree, a
root that sums them and applies the objective). Its own driver calls LLVM
APIs removed in llvmlite 0.45 (the legacy pass manager and
``llvm.initialize()``), so this module keeps lleaves' parser and code
generator and does the last two steps itself with the new pass manager:
optimise, emit an object file (the bytes we cache), and load such bytes into
an MCJIT engine. Loading needs no compiler, so a cached object starts in
milliseconds; compiling a 200-tree model takes seconds, which is why
``ctloop.models.compiled`` compiles in the background.

The object is built for this machine's CPU (name and features are part of
the cache key): an object from another CPU is never loaded here.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.metadata
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["available", "cache_key_parts", "compile_object", "load_object"]

_ROOT = "forest_root"
_SPEED_LEVEL = 2  # O3 doubled the compile time here without a faster predict
_BLOCK = 34  # lleaves' default cache-blocking of trees
_lock = threading.Lock()  # LLVM's global state: one compile or load at a time
_ENTRY = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32)


def available() -> str | None:
    """None when lleaves and llvmlite import here; else why not."""
    try:
        import llvmlite.binding  # noqa: F401
        from lleaves.compiler.ast import parse_to_ast  # noqa: F401
        from lleaves.compiler.codegen import gen_forest  # noqa: F401
    except Exception as exc:  # an ImportError, or a lleaves whose internals moved
        why = f"{type(exc).__name__}: {exc}"
        return f"lleaves is not usable here ({why}); pip install 'ctloop[compiled]'"
    return None


def _versions() -> str:
    return ",".join(
        f"{dist}={importlib.metadata.version(dist)}" for dist in ("lleaves", "llvmlite")
    )


def _target_machine() -> Any:
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    target = llvm.Target.from_triple(llvm.get_process_triple())
    return target.create_target_machine(
        cpu=llvm.get_host_cpu_name(), features=_cpu_features(), reloc="pic", codemodel="large"
    )


def _cpu_features() -> str:
    import llvmlite.binding as llvm

    try:
        return str(llvm.get_host_cpu_features().flatten())
    except RuntimeError:  # LLVM cannot detect them on this host
        return ""


def cache_key_parts() -> dict[str, str]:
    """What the object depends on besides the model: compiler versions, options and CPU."""
    import llvmlite.binding as llvm

    features = hashlib.sha256(_cpu_features().encode()).hexdigest()[:16]
    return {
        "compiler": f"lleaves:{_versions()}:O{_SPEED_LEVEL}:b{_BLOCK}",
        "cpu": f"{llvm.get_process_triple()}:{llvm.get_host_cpu_name()}:{features}",
    }


def compile_object(model_text: str) -> bytes:
    """The LightGBM model text compiled to an object file for this CPU."""
    import llvmlite.binding as llvm
    import llvmlite.ir
    from lleaves.compiler.ast import parse_to_ast
    from lleaves.compiler.codegen import gen_forest

    with tempfile.TemporaryDirectory(prefix="ctloop-lleaves-") as folder:
        path = Path(folder) / "model.txt"  # lleaves parses a file
        path.write_text(model_text)
        forest = parse_to_ast(str(path))
    forest.raw_score = False
    ir = llvmlite.ir.Module(name="forest")
    gen_forest(forest, ir, _BLOCK, _ROOT, True)
    with _lock:
        ir.triple = llvm.get_process_triple()
        module = llvm.parse_assembly(str(ir))
        module.verify()
        machine = _target_machine()
        options = llvm.create_pipeline_tuning_options(speed_level=_SPEED_LEVEL)
        builder = llvm.create_pass_builder(machine, options)
        builder.getModulePassManager().run(module, builder)
        return bytes(machine.emit_object(module))


def load_object(data: bytes, *, features: int, outputs: int) -> Callable[[np.ndarray], np.ndarray]:
    """``predict(matrix) -> scores`` from an object made by :func:`compile_object`.

    ``matrix`` is float64 ``(n, features)``; the answer is ``(n,)`` or, for
    ``outputs`` > 1 (multiclass), ``(n, outputs)``, as LightGBM's predict.
    """
    import llvmlite.binding as llvm

    with _lock:
        engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), _target_machine())
        engine.add_object_file(llvm.ObjectFileRef.from_data(data))
        engine.finalize_object()
        address = engine.get_function_address(_ROOT)
    if not address:
        raise ValueError(f"the compiled object has no {_ROOT} function")
    return _Forest(engine, _ENTRY(address), features, outputs)


class _Forest:
    """The loaded code; holds its engine, which owns the code's memory."""

    __slots__ = ("engine", "entry", "features", "outputs")

    def __init__(self, engine: Any, entry: Any, features: int, outputs: int) -> None:
        self.engine = engine
        self.entry = entry
        self.features = features
        self.outputs = outputs

    def __call__(self, matrix: np.ndarray) -> np.ndarray:
        # A wrong width would read past the rows' memory: checked on every call.
        if matrix.ndim != 2 or matrix.shape[1] != self.features:
            raise ValueError(
                f"expected a matrix of {self.features} columns, got shape {matrix.shape}"
            )
        rows = np.ascontiguousarray(matrix, dtype=np.float64)
        n = rows.shape[0]
        out = np.zeros((n, self.outputs) if self.outputs > 1 else n, dtype=np.float64)
        if n:  # ctypes releases the GIL while the trees run
            self.entry(rows.ctypes.data, out.ctypes.data, 0, n)
        return out

"""LightGBM trees compiled to machine code by lleaves, on the llvmlite that pip installs.

lleaves turns a LightGBM model text into LLVM IR (one function per tree, a
root that sums them and applies the objective). Its own driver calls LLVM
APIs removed in llvmlite 0.45 (the legacy pass manager and
``llvm.initialize()``), so this module keeps lleaves' parser and code
generator and does the rest itself with the new pass manager: optimise, emit
an object file, and link it into a shared library when a C compiler driver
(``cc``) is here. Those bytes are what is cached. Loading a shared library is
one ``dlopen`` (no LLVM in the process: its library alone is 40 MB of RSS);
a bare object (no ``cc`` at compile time) is loaded through LLVM's MCJIT.
Compiling a 200-tree model takes seconds to a minute, which is why
``ctloop.models.compiled`` compiles in the background.

The code is built for this machine's CPU (its model and feature flags are part
of the cache key): code from another CPU is never loaded here.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.metadata
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ctloop.core.arrays import Floats

if TYPE_CHECKING:  # untyped libraries (ignore_missing_imports): names for the reader
    import llvmlite.binding as llvm
    import llvmlite.ir as ir
    from lleaves.compiler.ast.nodes import Forest, Tree

__all__ = ["available", "cache_key_parts", "compile_in_child", "compile_object", "load_object"]

_ROOT = "forest_root"
_SPEED_LEVEL = 2  # O3 doubled the compile time here without a faster predict
_BLOCK = 16  # trees per cache block, each block a function of its own (see _gen_forest)
_lock = threading.Lock()  # LLVM's global state: one compile or load at a time
_ET_DYN = 3  # ELF e_type of a shared library (a relocatable object is 1)
_ENTRY = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32)


def available() -> str | None:
    """None when lleaves and llvmlite are installed (found, not imported: LLVM is 40 MB)."""
    missing = [name for name in ("lleaves", "llvmlite") if importlib.util.find_spec(name) is None]
    if missing:
        return f"{' and '.join(missing)} not installed; pip install 'ctloop[compiled]'"
    return None


def _versions() -> str:
    return ",".join(
        f"{dist}={importlib.metadata.version(dist)}" for dist in ("lleaves", "llvmlite")
    )


def _target_machine() -> llvm.TargetMachine:
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
    """What the object depends on besides the model: compiler versions, options and CPU.

    The CPU is named by what the kernel reports (model and feature flags), so a
    cached object is found without loading LLVM; LLVM targets the same CPU.
    """
    return {
        "compiler": f"lleaves:{_versions()}:O{_SPEED_LEVEL}:b{_BLOCK}:split",
        "cpu": f"{platform.machine()}:{_cpu_identity()}",
    }


def _cpu_identity() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux
        return platform.processor() or platform.platform()
    first = text.split("\n\n", 1)[0]
    wanted = [line for line in first.splitlines()
              if line.split(":")[0].strip() in ("vendor_id", "model name", "flags", "Features")]
    return hashlib.sha256("\n".join(wanted).encode()).hexdigest()[:16]


def compile_object(model_text: str) -> bytes:
    """The LightGBM model text compiled to an object file for this CPU."""
    import llvmlite.binding as llvm
    import llvmlite.ir
    from lleaves.compiler.ast import parse_to_ast

    with tempfile.TemporaryDirectory(prefix="ctloop-lleaves-") as folder:
        path = Path(folder) / "model.txt"  # lleaves parses a file
        path.write_text(model_text)
        forest = parse_to_ast(str(path))
    forest.raw_score = False
    ir = llvmlite.ir.Module(name="forest")
    _gen_forest(forest, ir)
    with _lock:
        ir.triple = llvm.get_process_triple()
        module = llvm.parse_assembly(str(ir))
        module.verify()
        machine = _target_machine()
        options = llvm.create_pipeline_tuning_options(speed_level=_SPEED_LEVEL)
        builder = llvm.create_pass_builder(machine, options)
        builder.getModulePassManager().run(module, builder)
        obj = bytes(machine.emit_object(module))
    return _shared(obj) or obj


def _gen_forest(forest: Forest, module: ir.Module) -> None:
    """lleaves' ``gen_forest`` (float64), each cache block of trees in a function of its own.

    lleaves inlines every tree into one root function; LLVM's time grows faster
    than that function's size (a 400-tree multiclass model: 17 s of CPU with
    blocks of 34 trees, 140 s unblocked). A root that calls one function per
    block of 16 trees (trees inlined into it) compiles in about half the time
    and predicts as fast (1 row) or within a few per cent (100 rows).
    """
    import llvmlite.ir as ir
    from lleaves.compiler.codegen import codegen as cg

    signature = ir.FunctionType(ir.VoidType(), (cg.DOUBLE_PTR, cg.DOUBLE_PTR, cg.INT, cg.INT))
    root = ir.Function(module, signature, name=_ROOT)

    def tree_function(tree: Tree) -> ir.Function:
        types = (cg.INT_CAT if f.is_categorical else cg.get_fdtype(True) for f in tree.features)
        function = ir.Function(module, ir.FunctionType(cg.get_fdtype(True), types),
                               name=str(tree))
        function.linkage = "private"
        cg.gen_tree(tree, function, True)
        return cg.LTree(llvm_function=function, class_id=tree.class_id)

    trees = [tree_function(tree) for tree in forest.trees]
    if forest.n_classes > 1:
        trees.sort(key=lambda t: t.class_id)  # as lleaves: each class's trees together
    blocks = [trees[i : i + _BLOCK] for i in range(0, len(trees), _BLOCK)]
    builder = ir.IRBuilder(root.append_basic_block("entry"))
    for i, block in enumerate(blocks):
        function = ir.Function(module, signature, name=f"{_ROOT}_block{i}")
        function.linkage = "private"
        function.attributes.add("noinline")
        setup, end = function.append_basic_block("setup"), function.append_basic_block("end")
        ir.IRBuilder(end).ret_void()
        # adds to what earlier blocks stored (i > 0); the last applies the objective
        cg._populate_instruction_block(i, forest, function, block, setup, end,
                                       i == len(blocks) - 1, True)
        builder.call(function, root.args)
    builder.ret_void()


def compile_in_child(model_text: str, *, timeout: float = 1800.0) -> bytes:
    """:func:`compile_object` in a child process at a low CPU priority.

    The server's background compile runs here: lleaves' code generation is
    pure Python (it would hold the GIL against the requests for a second or
    more) and LLVM would stay in the server's memory (40 MB) after one use.
    """
    src = str(Path(__file__).resolve().parents[2])  # ctloop's own folder, however it runs
    path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p)
    done = subprocess.run(
        [sys.executable, "-m", "ctloop.models.compiled_lleaves"],
        input=model_text.encode(), capture_output=True, timeout=timeout,
        env={**os.environ, "PYTHONPATH": path},
    )
    if done.returncode != 0 or not done.stdout.startswith(b"\x7fELF"):
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"the compiler process exited {done.returncode}: {tail[0]}")
    return done.stdout


def _child() -> None:
    """``python -m ctloop.models.compiled_lleaves``: model text on stdin, object on stdout."""
    if hasattr(os, "nice"):
        # The requests come first (nice 10: about a tenth of a CPU's share against them);
        # not 19, at which a busy machine leaves the compile almost no time at all.
        os.nice(10)
    parent = os.getppid()

    def orphaned() -> None:  # the server went away: stop compiling for nobody
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=orphaned, daemon=True).start()
    data = compile_object(sys.stdin.buffer.read().decode())
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def _shared(obj: bytes) -> bytes | None:
    """The object linked into a shared library (loaded later without LLVM), or None.

    Needs a C compiler driver (``cc``) here; without one the object itself is
    kept and loaded through LLVM's MCJIT.
    """
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    with tempfile.TemporaryDirectory(prefix="ctloop-link-") as folder:
        source, target = Path(folder) / "forest.o", Path(folder) / "forest.so"
        source.write_bytes(obj)
        done = subprocess.run([cc, "-shared", "-o", str(target), str(source), "-lm"],
                              capture_output=True, timeout=300)
        return target.read_bytes() if done.returncode == 0 and target.is_file() else None


def load_object(data: bytes, *, features: int, outputs: int) -> Callable[[Floats], Floats]:
    """``predict(matrix) -> scores`` from the bytes :func:`compile_object` made.

    ``matrix`` is float64 ``(n, features)``; the answer is ``(n,)`` or, for
    ``outputs`` > 1 (multiclass), ``(n, outputs)``, as LightGBM's predict. A
    shared library is opened with the dynamic loader (no LLVM in the process);
    a bare object goes through MCJIT.
    """
    if data[:4] != b"\x7fELF" or len(data) < 18:
        raise ValueError("the compiled object is not an ELF file")
    if int.from_bytes(data[16:18], "little") == _ET_DYN:
        return _load_shared(data, features, outputs)
    import llvmlite.binding as llvm

    with _lock:
        engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), _target_machine())
        engine.add_object_file(llvm.ObjectFileRef.from_data(data))
        engine.finalize_object()
        address = engine.get_function_address(_ROOT)
    if not address:
        raise ValueError(f"the compiled object has no {_ROOT} function")
    return _Forest(engine, _ENTRY(address), features, outputs)


def _load_shared(data: bytes, features: int, outputs: int) -> _Forest:
    """dlopen the checked bytes from a private folder; the file goes once it is mapped."""
    folder = Path(tempfile.mkdtemp(prefix="ctloop-forest-"))  # mode 0700: ours alone
    path = folder / "forest.so"
    try:
        path.write_bytes(data)
        library = ctypes.CDLL(str(path))
    finally:
        path.unlink(missing_ok=True)
        folder.rmdir()
    entry = getattr(library, _ROOT)
    entry.restype = None
    entry.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32]
    return _Forest(library, entry, features, outputs)


class _Forest:
    """The loaded code; holds its engine or library, which owns the code's memory."""

    __slots__ = ("engine", "entry", "features", "outputs")

    def __init__(self, engine: llvm.ExecutionEngine | ctypes.CDLL,
                 entry: Callable[[int, int, int, int], None], features: int, outputs: int
                 ) -> None:
        self.engine = engine
        self.entry = entry
        self.features = features
        self.outputs = outputs

    def __call__(self, matrix: Floats) -> Floats:
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


if __name__ == "__main__":
    _child()

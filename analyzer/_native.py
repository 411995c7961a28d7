"""The compiled kernels: numba JIT on first use, or the same kernels compiled ahead of time.

Why this module exists: importing numba and bringing up its CPU target costs about 1 s per process
(0.9-1.1 s measured here, before any kernel runs) -- more than the whole flows stage of a 1M-packet
capture. So the kernel modules do not import numba. They declare their functions with

- `kernel(signature)`: an entry point called from Python, with its one numba signature;
- `helper()`: a function called only from other kernels (inlined or not, as numba decides).

and nothing imports numba until a kernel is first called. At that moment (`_bind`):

- if an ahead-of-time build of exactly these kernel sources is on disk (`build_aot`, which
  `analyzer.warm_up()` and `make setup` run), its functions take the entry points' places and numba
  is never imported: start-up drops by ~1 s;
- otherwise numba compiles each entry point for its signature (or loads it from numba's on-disk
  cache), exactly as `@njit(signature, cache=True)` would.

Both paths compile the same Python source with the same compiler (numba.pycc is numba's own AOT
front end), and both accept only the declared argument types, so a test suite run on either path
checks the call sites of both. `INTRANSIT_JIT=1` forces the JIT path (kernel development: an edited
kernel changes the fingerprint, so a stale AOT build is never used anyway).
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import os
import platform
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

KERNEL_MODULES = ("analyzer.sources._walk", "analyzer.decode._kernel", "analyzer.flows._kernel",
                  "analyzer.engines._dedup", "analyzer.sources._recv", "analyzer._siphash")
AOT_DIR_ENV = "INTRANSIT_AOT_DIR"
FORCE_JIT_ENV = "INTRANSIT_JIT"


class _Lazy:
    """Stands in a kernel module's namespace for a numba function until `_bind` replaces it."""

    def __init__(self, fn: Callable[..., Any], signature: str | None, options: dict[str, Any]) -> None:
        self.fn, self.signature, self.options = fn, signature, options
        self.__name__, self.__doc__, self.__wrapped__ = fn.__name__, fn.__doc__, fn

    @property
    def export_name(self) -> str:
        return f"{self.fn.__module__.rsplit('.', 2)[-2]}__{self.fn.__name__}"

    def __call__(self, *args: Any) -> Any:
        _bind()
        impl = self.fn.__globals__[self.fn.__name__]
        if impl is self:  # a helper called from Python while the AOT entry points are bound
            _bind_jit()
            impl = self.fn.__globals__[self.fn.__name__]
        return impl(*args)

    def __repr__(self) -> str:
        return f"<kernel {self.fn.__module__}.{self.fn.__name__} (not compiled yet)>"


_REGISTRY: list[_Lazy] = []
_LOCK = threading.RLock()
_mode: str | None = None  # None until bound, then "aot" or "jit"
aot_error: str | None = None  # why the AOT build was not used, when it was looked for and not used


def kernel(signature: str, **options: Any) -> Callable[[Callable[..., Any]], Any]:
    """Declare an entry point called from Python, compiled for exactly `signature`."""

    def declare(fn: Callable[..., Any]) -> Any:
        lazy = _Lazy(fn, signature, options)
        _REGISTRY.append(lazy)
        return lazy

    return declare


def helper(**options: Any) -> Callable[[Callable[..., Any]], Any]:
    """Declare a function called only from kernels (numba compiles it into its callers)."""

    def declare(fn: Callable[..., Any]) -> Any:
        lazy = _Lazy(fn, None, options)
        _REGISTRY.append(lazy)
        return lazy

    return declare


def copy_bytes(dst: Any, dst_off: int, src: Any, src_off: int, n: int) -> None:
    """`dst[dst_off:dst_off + n] = src[src_off:src_off + n]` for 1-d uint8 arrays that do not overlap.

    Kernels copy payload bytes with this instead of a slice assignment: numba compiles a slice
    assignment into a loop moving one byte at a time (callgrind: about 8 instructions per byte,
    13% of a whole `intransit flows` run in the flow table's two copies), while this compiles to
    memcpy (`_register_numba_extensions`). A range outside either array raises ValueError, as the
    slice assignment did; nothing is copied then."""
    if n > 0:
        if dst_off < 0 or src_off < 0 or dst_off + n > dst.shape[0] or src_off + n > src.shape[0]:
            raise ValueError("copy_bytes: range outside an array")
        dst[dst_off : dst_off + n] = src[src_off : src_off + n]


_extensions_registered = False


def _register_numba_extensions() -> None:
    """Teach numba to compile `copy_bytes` calls into memcpy (once; before any kernel compiles)."""
    global _extensions_registered
    if _extensions_registered:
        return
    from numba.core import cgutils, types
    from numba.extending import intrinsic, overload

    @intrinsic
    def _memcpy(typingctx: Any, dst: Any, dst_off: Any, src: Any, src_off: Any, n: Any) -> Any:
        sig = types.void(dst, types.int64, src, types.int64, types.int64)

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> None:
            d, d_off, s, s_off, count = args
            d_arr = context.make_array(signature.args[0])(context, builder, d)
            s_arr = context.make_array(signature.args[2])(context, builder, s)
            cgutils.raw_memcpy(builder, builder.gep(d_arr.data, [d_off]), builder.gep(s_arr.data, [s_off]),
                               count, 1)

        return sig, codegen

    @overload(copy_bytes)
    def _copy_bytes(dst: Any, dst_off: Any, src: Any, src_off: Any, n: Any) -> Any:
        if not (isinstance(dst, types.Array) and isinstance(src, types.Array) and dst.ndim == src.ndim == 1
                and dst.dtype == src.dtype == types.uint8 and dst.layout == src.layout == "C"):
            raise TypeError("copy_bytes: two C-contiguous 1-d uint8 arrays")

        def impl(dst: Any, dst_off: Any, src: Any, src_off: Any, n: Any) -> Any:  # the overload's annotations
            if n > 0:
                if dst_off < 0 or src_off < 0 or dst_off + n > dst.shape[0] or src_off + n > src.shape[0]:
                    raise ValueError("copy_bytes: range outside an array")
                _memcpy(dst, dst_off, src, src_off, n)  # type: ignore[call-arg]  # numba passes typingctx

        return impl

    _extensions_registered = True


def source_function(module: Any, name: str) -> Callable[..., Any]:
    """The plain Python function behind a kernel or helper (tests run it with numpy's bounds checks)."""
    for k in _REGISTRY:
        if k.fn.__module__ == module.__name__ and k.fn.__name__ == name:
            return k.fn
    raise LookupError(f"{module.__name__}.{name} is not a declared kernel")


def mode() -> str | None:
    """'aot', 'jit', or None before the first kernel call."""
    return _mode


def fingerprint() -> str:
    """Identifies the kernel sources, this loader, the Python and numpy ABI and the machine."""
    h = hashlib.sha256()
    for name in (*KERNEL_MODULES, __name__):
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise ImportError(f"kernel module {name} not found")
        h.update(Path(spec.origin).read_bytes())
    import numpy

    h.update(f"{sys.version}|{numpy.__version__}|{platform.machine()}|{platform.system()}".encode())
    return h.hexdigest()[:20]


def aot_dirs() -> list[Path]:
    """Where AOT builds are looked for and written, first match wins."""
    dirs = []
    if os.environ.get(AOT_DIR_ENV):
        dirs.append(Path(os.environ[AOT_DIR_ENV]))
    dirs.append(Path(__file__).parent / "_aot")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    dirs.append(cache / "intransit" / "aot")
    return dirs


def _module_name() -> str:
    return f"kernels_{fingerprint()}"


def _find_aot() -> Path | None:
    name = _module_name()
    for d in aot_dirs():
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            p = d / f"{name}{suffix}"
            if p.is_file():
                return p
    return None


def _import_kernels() -> None:
    for name in KERNEL_MODULES:
        importlib.import_module(name)


def _bind() -> None:
    global _mode, aot_error
    if _mode is not None:
        return
    with _LOCK:
        if _mode is not None:
            return
        _import_kernels()
        if os.environ.get(FORCE_JIT_ENV, "") not in ("", "0"):
            aot_error = f"{FORCE_JIT_ENV} is set"
        else:
            try:
                path = _find_aot()
                if path is None:
                    aot_error = "no ahead-of-time build for these kernel sources (analyzer.warm_up() makes one)"
                else:
                    _bind_aot(path)
                    return
            except Exception as exc:  # a broken or foreign build: numba's JIT does the same work
                aot_error = f"ahead-of-time build not usable: {exc}"
        _bind_jit()


def _bind_aot(path: Path) -> None:
    global _mode
    spec = importlib.util.spec_from_file_location(path.name.split(".")[0], path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    entries = [k for k in _REGISTRY if k.signature is not None]
    impls = {k.export_name: getattr(module, k.export_name) for k in entries}  # all or nothing
    for k in entries:
        assert k.signature is not None
        k.fn.__globals__[k.fn.__name__] = _checked(k.fn.__name__, impls[k.export_name], k.signature)
    _mode = "aot"


def _arg_specs(signature: str) -> list[tuple[str, int]]:
    """(dtype name, ndim) per argument of a numba signature string such as
    'int64(uint8[::1], int64, boolean[:, ::1])'; ndim 0 is a scalar. Every array is C-contiguous."""
    inner = signature[signature.index("(", signature.index(")") if signature.startswith("UniTuple") else 0) + 1:]
    inner = inner[: inner.rindex(")")]
    specs, depth, token = [], 0, ""
    for ch in inner + ",":
        if ch == "," and depth == 0:
            token = token.strip()
            name, _, dims = token.partition("[")
            specs.append(("bool" if name == "boolean" else name, dims.count(":") - dims.count("::")))
            token = ""
            continue
        depth += ch == "["
        depth -= ch == "]"
        token += ch
    return specs


def _checked(name: str, impl: Callable[..., Any], signature: str) -> Callable[..., Any]:
    """The AOT entry point behind the argument checks numba's dispatcher makes.

    numba.pycc's wrappers convert any array to the declared one without looking at its dtype: an
    int32 array passed for int64 would be read past its end. The JIT path refuses such a call, and
    so does this (a few microseconds per call; kernels are called per batch, not per packet).
    """
    import numpy as np

    specs = [(np.dtype(dt) if nd else None, nd) for dt, nd in _arg_specs(signature)]

    def call(*args: Any) -> Any:
        if len(args) != len(specs):
            raise TypeError(f"{name}: {len(args)} arguments for {len(specs)} declared")
        for i, (a, (dt, nd)) in enumerate(zip(args, specs, strict=True)):
            if dt is None:
                if not isinstance(a, (int, np.integer)):
                    raise TypeError(f"{name}: argument {i} must be an integer or bool, not {type(a).__name__}")
            elif not (isinstance(a, np.ndarray) and a.dtype == dt and a.ndim == nd and a.flags.c_contiguous
                      and a.flags.writeable):
                raise TypeError(f"{name}: argument {i} must be a writeable C-contiguous {nd}-d {dt} array, "
                                f"got {getattr(a, 'dtype', type(a).__name__)} {getattr(a, 'shape', '')}")
        return impl(*args)

    call.__name__ = call.__qualname__ = name
    return call


def _bind_jit() -> None:
    """Replace every declared function by a numba dispatcher; compile (or load) the entry points."""
    global _mode
    with _LOCK:
        if _mode == "jit":
            return
        _import_kernels()
        import numba

        _register_numba_extensions()
        dispatchers = []
        # First every name becomes a dispatcher (numba resolves a kernel's callees when it compiles
        # it, so they must all be in place), then the entry points compile for their signatures.
        for k in _REGISTRY:
            d = numba.njit(cache=True, **k.options)(k.fn)
            k.fn.__globals__[k.fn.__name__] = d
            dispatchers.append((k, d))
        for k, d in dispatchers:
            if k.signature is not None:
                d.compile(k.signature)
                d.disable_compile()
        _mode = "jit"


def build_aot(dest: Path | None = None, quiet: bool = True) -> Path:
    """Compile every entry point ahead of time into one extension module; returns its path.

    Needs numba and a C compiler (numba.pycc links its runtime helpers). Writes atomically, so
    concurrent builds and readers never see half a file.
    """
    _import_kernels()
    _bind_jit()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba.pycc announces its own future replacement
        from numba.pycc import CC

    name = _module_name()
    dest_dirs = [dest] if dest is not None else aot_dirs()
    last_error: Exception | None = None
    for d in dest_dirs:
        try:
            d.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=d, prefix=".build-") as tmp:
                cc = CC(name)
                cc.output_dir = tmp
                cc.verbose = not quiet
                for k in _REGISTRY:
                    if k.signature is not None:
                        cc.export(k.export_name, k.signature)(k.fn)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    cc.compile()
                built = next(Path(tmp).glob(f"{name}.*"))
                final = d / built.name
                os.replace(built, final)
            _prune(d, keep=final)
            return final
        except (OSError, StopIteration) as exc:
            last_error = exc
            continue
    raise OSError(f"could not write the ahead-of-time build anywhere ({last_error})")


def _prune(d: Path, keep: Path) -> None:
    """Remove builds of older kernel sources from `d`."""
    for old in d.glob("kernels_*"):
        if old != keep and old.is_file():
            old.unlink(missing_ok=True)

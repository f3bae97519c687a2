"""How jaxdl compiles: JAX's persistent compilation cache, on for jaxdl's commands (a second run loads what
the first compiled); programs that run once, compiled at the backend's level 0; and a clock of compiling.

``jaxdl run`` and ``jaxdl reproduce`` keep compiled XLA programs in
``$JAXDL_COMPILATION_CACHE`` (default: ``xla/`` in jaxdl's cache folder, see
:func:`jaxdl.data.cache.cache_dir`), trimmed to 1 GiB as a command starts, the
oldest written first out (:func:`trim`). Every program is kept, the eager
operations' small ones too: they are most of a short run's compiling
(``docs/performance.md``). Programs compiled under other
XLA flags (``--xla_cpu_max_isa=AVX2``) get entries of their own (checked here),
and XLA:CPU's loader refuses a cached program built for CPU features the
loading machine lacks (jax-ml/jax#38445 shows that check at work), so a cache
folder shared by different CPUs does not crash them. A
``JAX_COMPILATION_CACHE_DIR`` of the user's own stands; ``JAXDL_COMPILATION_CACHE=off``
turns the cache off. The library itself never turns it on: that is the caller's choice.

:class:`CompileClock` adds up what JAX reports of its own compiling (tracing,
lowering, XLA's compilation or the cache's load), so that a run can say how
much of its time went there, first run and second.
"""

from __future__ import annotations

import collections
import contextlib
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

ENV = "JAXDL_COMPILATION_CACHE"
MAX_BYTES = 2**30


def enable() -> Path | None:
    """Turns the cache on (before anything compiles).

    Reads ``$JAXDL_COMPILATION_CACHE``: "off" (or 0, false, no) leaves the cache off, a path puts it
    there; a ``$JAX_COMPILATION_CACHE_DIR`` of the user's own is left to JAX.

    Returns:
      The cache's folder, or None where turned off.
    """
    setting = os.environ.get(ENV, "").strip()
    if setting.lower() in ("0", "off", "false", "no"):
        return None
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return Path(os.environ["JAX_COMPILATION_CACHE_DIR"])  # JAX reads it itself
    from jaxdl.data.cache import cache_dir

    path = Path(setting).expanduser() if setting else cache_dir() / "xla"
    import jax

    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    # JAX's own bound scans every entry on every write (its cost grows with the folder: measured in
    # docs/performance.md), so JAX keeps the folder unbounded and the bound is enforced here, once
    jax.config.update("jax_compilation_cache_max_size", -1)
    trim(path)
    # importing jaxdl may already have compiled (and so set up the cache, without a folder)
    from jax.experimental.compilation_cache import compilation_cache

    compilation_cache.reset_cache()
    # A program that cannot be kept (a full disk, a read-only folder) costs only the next run's compiling,
    # and one that cannot be read (another process's trim removed it, or is still writing it) only this
    # compile: the run goes on, and a failure of its own files is reported in one line where it happens.
    for action in ("writing", "reading"):
        warnings.filterwarnings(
            "ignore", message=f"Error {action} persistent compilation cache entry", category=UserWarning
        )
    return path


def trim(path: Path, max_bytes: int = MAX_BYTES) -> int:
    """Deletes the cache folder's oldest entries (by the time they were written) until it holds at most
    ``max_bytes``; also JAX's access-time files, which only its own bounded mode kept. Other files are
    not touched, and an entry another process removed meanwhile is skipped.

    Args:
      path: the cache's folder; a missing folder is left missing.
      max_bytes: the most its entries may hold afterwards.

    Returns:
      The bytes deleted.
    """
    if not path.is_dir():
        return 0
    entries, freed = [], 0
    for file in path.glob("*-atime"):
        with contextlib.suppress(OSError):  # a read-only folder: the run goes on
            file.unlink(missing_ok=True)
    for file in path.glob("*-cache"):
        with contextlib.suppress(OSError):
            stat = file.stat()
            entries.append((stat.st_mtime_ns, stat.st_size, file))
    total = sum(size for _, size, _ in entries)
    for _, size, file in sorted(entries):
        if total <= max_bytes:
            break
        with contextlib.suppress(OSError):
            file.unlink(missing_ok=True)
            freed += size
        total -= size
    return freed


# XLA's CPU backend optimises each program's machine code (LLVM) after its HLO passes (fusion,
# simplification, buffer assignment), which this leaves alone: the same program and the same buffers,
# compiled in about half the time into code that runs slower (docs/performance.md).
BACKEND_LEVEL_0 = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def level_0_options() -> dict[str, Any] | None:
    """The compiler options for a program that runs once, as ``jax.jit``'s ``compiler_options``.

    Returns:
      :data:`BACKEND_LEVEL_0` for an outermost program on a CPU; None inside a
      trace (``jax.jit`` takes compiler options only for the outermost program:
      a nested one is part of it) and on other backends (the saving is measured
      on CPUs only; a GPU's level 0 is its own code generator's).
    """
    import jax
    from jax._src import core  # no public test for "not inside a trace" yet

    return BACKEND_LEVEL_0 if core.trace_state_clean() and jax.default_backend() == "cpu" else None


def run_once(fn: Callable[..., Any], *args: Any) -> Any:
    """``jax.jit(fn)(*args)``, compiled with :func:`level_0_options`.

    For programs that run once and briefly, such as an initialisation: on a
    CPU their compiling takes longer than their running, and level 0 halves it.
    Inside ``jax.jit``, ``jax.grad``, ``jax.eval_shape`` or on another backend
    it is plain ``jax.jit(fn)(*args)``.

    Args:
      fn: the function, as it would be given to ``jax.jit``.
      *args: its arguments.

    Returns:
      What ``fn(*args)`` returns.
    """
    import jax

    return jax.jit(fn, compiler_options=level_0_options())(*args)


# JAX's monitoring events (jax._src.dispatch) -> the names a run reports them under
_EVENTS = {
    "/jax/core/compile/jaxpr_trace_duration": "trace_s",
    "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower_s",
    "/jax/core/compile/backend_compile_duration": "xla_s",  # compiling, or loading from the cache
}
_totals: collections.Counter[str] = collections.Counter()
_listening = False


def _listen(event: str, seconds: float, **_: object) -> None:
    if event in _EVENTS:
        _totals[_EVENTS[event]] += seconds
        _totals["programs"] += event.endswith("backend_compile_duration")
    elif event == "/jax/compilation_cache/cache_retrieval_time_sec":
        _totals["cache_hits"] += 1


class CompileClock:
    """Seconds JAX spends tracing, lowering and compiling from now on, read by :meth:`read`.

    ``xla_s`` is XLA's part (a program loaded from the persistent cache counts its load
    time); ``programs`` counts XLA programs asked for, ``cache_hits`` those loaded.
    """

    def __init__(self) -> None:
        global _listening
        if not _listening:  # one listener for the process: JAX has no public way to remove one
            import jax

            jax.monitoring.register_event_duration_secs_listener(_listen)
            _listening = True
        self._start = collections.Counter(_totals)

    def read(self) -> dict[str, float]:
        """The seconds and counts since this clock was made.

        Returns:
          ``{"trace_s", "lower_s", "xla_s", "programs", "cache_hits"}``, seconds rounded to milliseconds.
        """
        now = collections.Counter(_totals)
        now.subtract(self._start)
        figures = {name: round(now[name], 3) for name in ("trace_s", "lower_s", "xla_s")}
        return figures | {"programs": int(now["programs"]), "cache_hits": int(now["cache_hits"])}

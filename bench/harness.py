"""What every bench script does around its measurement: a temp dir, the clock, the
machine and its load (figures are only comparable between runs with a similar load), and
the result printed as JSON or as Markdown tables."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({model}), Python {platform.python_version()}"


def load() -> str:
    """Load average and CPU pressure (share of time some task waited for a CPU): the
    figures are only comparable between runs with a similar load."""
    try:
        avg = Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        avg = "?"
    pressure = "?"
    try:
        first = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        pressure = first.split()[1].split("=")[1] + "%"
    except (OSError, IndexError):
        pass
    return f"{avg} (CPU pressure avg10 {pressure})"


def run_and_report(
    measure: Callable[[Path], Awaitable[dict[str, Any]]],
    *,
    prefix: str,
    as_json: bool,
    render: Callable[[dict[str, Any]], str],
) -> None:
    """Run ``measure(workdir)`` in a fresh temp dir (always removed) and print its result."""
    os.environ.setdefault("PORTAL_OPS_OPERATOR", "bench")
    work = Path(tempfile.mkdtemp(prefix=prefix))
    load_before = load()
    started = time.perf_counter()
    try:
        out = asyncio.run(measure(work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    elapsed = time.perf_counter() - started
    loads = f"before: {load_before}; after: {load()}"
    if as_json:
        print(
            json.dumps({**out, "machine": machine(), "elapsed": elapsed, "load": loads}, indent=2)
        )
        return
    print(f"Machine: {machine()}; {time.strftime('%Y-%m-%d')}; script ran {elapsed:.1f} s")
    print(f"Load average {loads}\n")
    print(render(out))

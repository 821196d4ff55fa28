"""Reading what hosts and tools print: df, /proc, coverage reports, audit JSON, build
manifests, log lines. Pure functions, so each format is tested on its own; they raise
``ValueError`` on output they do not understand (the check then reports ``error``)."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any


@dataclass(frozen=True)
class DiskUsage:
    free_percent: float
    avail_kb: int
    total_kb: int
    mount: str


def parse_df(output: str) -> DiskUsage:
    """``df -P PATH``: the last line is ``fs blocks used avail capacity mount``."""
    lines = [ln for ln in output.strip().splitlines() if ln.strip()]
    if len(lines) < 2:
        raise ValueError(f"unexpected df output: {output.strip()[:120]!r}")
    fields = lines[-1].split()
    if len(fields) < 6:
        raise ValueError(f"unexpected df line: {lines[-1]!r}")
    used, avail = int(fields[2]), int(fields[3])
    if used + avail <= 0:
        raise ValueError("df reports a filesystem of size 0")
    return DiskUsage(
        free_percent=round(100.0 * avail / (used + avail), 1),
        avail_kb=avail,
        total_kb=used + avail,
        mount=" ".join(fields[5:]),
    )


def parse_meminfo(output: str) -> tuple[float, int, int]:
    """(percent used, available kB, total kB) from /proc/meminfo, by MemAvailable."""
    values: dict[str, int] = {}
    for line in output.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[key.strip()] = int(parts[0])
    total = values.get("MemTotal")
    if not total:
        raise ValueError("no MemTotal in /proc/meminfo")
    available = values.get("MemAvailable")
    if available is None:  # kernels before 3.14
        available = sum(values.get(k, 0) for k in ("MemFree", "Buffers", "Cached"))
    return round(100.0 * (1 - available / total), 1), available, total


def parse_load(output: str) -> tuple[float, int]:
    """(5-minute load average, cores) from ``cat /proc/loadavg; nproc``."""
    lines = output.strip().splitlines()
    if len(lines) < 2:
        raise ValueError(f"unexpected load output: {output.strip()[:120]!r}")
    load5 = float(lines[0].split()[1])
    cores = int(lines[1].strip())
    if cores < 1:
        raise ValueError(f"nproc says {cores} cores")
    return load5, cores


def parse_coverage(text: str) -> tuple[float, str]:
    """(line coverage percent, format) from a Clover XML, Cobertura XML or text report."""
    stripped = text.strip()
    if not stripped:
        raise ValueError("the coverage report is empty")
    if stripped.startswith("<"):
        import xml.etree.ElementTree as ET  # 0.6 MB, for an XML report only

        try:
            root = ET.fromstring(stripped)
        except ET.ParseError as exc:
            raise ValueError(f"coverage report is not well-formed XML: {exc}") from None
        if root.tag != "coverage":
            raise ValueError(f"unknown XML coverage report (root <{root.tag}>)")
        if root.get("line-rate") is not None:
            return round(100.0 * float(root.get("line-rate", "0")), 2), "cobertura"
        metrics = root.find("project/metrics")
        if metrics is not None:
            for total_key, covered_key in (
                ("statements", "coveredstatements"),
                ("elements", "coveredelements"),
            ):
                total = int(metrics.get(total_key, "0"))
                if total > 0:
                    covered = int(metrics.get(covered_key, "0"))
                    return round(100.0 * covered / total, 2), "clover"
            return 0.0, "clover"
        raise ValueError("XML coverage report with neither line-rate nor project metrics")
    for pattern in (
        r"Lines:\s*([0-9]+(?:\.[0-9]+)?)\s*%",  # PHPUnit --coverage-text
        r"^TOTAL\s.*?([0-9]+(?:\.[0-9]+)?)%\s*$",  # coverage.py report
        r"^\s*([0-9]+(?:\.[0-9]+)?)\s*%?\s*$",  # a bare number
    ):
        match = re.search(pattern, stripped, re.MULTILINE)
        if match:
            value = float(match.group(1))
            if not 0 <= value <= 100:
                raise ValueError(f"coverage {value} is not a percentage")
            return value, "text"
    raise ValueError("no coverage percentage found (Clover, Cobertura or a plain percentage)")


@dataclass(frozen=True)
class Advisory:
    package: str
    id: str
    severity: str | None  # lower case; None when the tool does not say (pip-audit)
    title: str


def _json_object(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        start, end = text.find("{"), text.rfind("}")
        if start >= 0 and end > start:
            return json.loads(text[start : end + 1])
        raise


def parse_audit(text: str) -> list[Advisory]:
    """Advisories from ``composer audit --format=json``, ``pip-audit -f json`` or
    ``npm audit --json`` output."""
    try:
        data = _json_object(text)
    except ValueError:
        raise ValueError("the audit output is not JSON (use --format=json / -f json)") from None
    found: list[Advisory] = []
    if isinstance(data, dict) and "advisories" in data:  # composer
        advisories = data["advisories"] or {}
        for package, items in advisories.items():
            entries = items.values() if isinstance(items, dict) else items
            for adv in entries:
                severity = adv.get("severity")
                found.append(
                    Advisory(
                        package=adv.get("packageName") or package,
                        id=str(adv.get("cve") or adv.get("advisoryId") or "?"),
                        severity=str(severity).lower() if severity else None,
                        title=str(adv.get("title") or ""),
                    )
                )
        return found
    deps = None
    if isinstance(data, dict) and "dependencies" in data:  # pip-audit >= 2
        deps = data["dependencies"]
    elif isinstance(data, list):  # older pip-audit
        deps = data
    if deps is not None:
        for dep in deps:
            for vuln in dep.get("vulns", []) or []:
                found.append(
                    Advisory(
                        package=str(dep.get("name", "?")),
                        id=str(vuln.get("id", "?")),
                        severity=None,
                        title=str(vuln.get("description", ""))[:120],
                    )
                )
        return found
    if isinstance(data, dict) and isinstance(data.get("vulnerabilities"), dict):  # npm >= 7
        for name, vuln in data["vulnerabilities"].items():
            found.append(
                Advisory(
                    package=name,
                    id=str(name),
                    severity=str(vuln.get("severity", "")).lower() or None,
                    title="",
                )
            )
        return found
    raise ValueError("unknown audit JSON (composer audit, pip-audit or npm audit expected)")


def manifest_paths(text: str, base: str) -> list[str]:
    """URL paths of the built assets in a Vite, Laravel Mix or flat name->file manifest."""
    try:
        data = json.loads(text)
    except ValueError:
        raise ValueError("the build manifest is not JSON") from None
    if not isinstance(data, dict):
        raise ValueError("the build manifest is not a JSON object")
    prefix = "/" + base.strip("/") + "/" if base.strip("/") else "/"
    paths: list[str] = []

    def add(file: str) -> None:
        path = file if file.startswith("/") else prefix + file
        if path not in paths:
            paths.append(path)

    for value in data.values():
        if isinstance(value, str):  # Mix ("/js/app.js?id=..") or flat ("app-1a2b.js")
            add(value)
        elif isinstance(value, dict):  # Vite
            if isinstance(value.get("file"), str):
                add(value["file"])
            for key in ("css", "assets"):
                for item in value.get(key) or []:
                    if isinstance(item, str):
                        add(item)
    return paths


_STAMP = re.compile(
    r"(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:[.,](\d+))?\s?(Z|[+-]\d{2}:?\d{2})?"
)


def line_time(line: str, zone: tzinfo | None) -> float | None:
    """Epoch seconds of a log line's leading timestamp (Laravel ``[2025-08-01 02:00:00]``,
    ISO 8601, JSON ``{"datetime": ...}``); ``zone`` for stamps without an offset (None:
    local time). None when the line starts no entry (e.g. a stack trace line)."""
    match = _STAMP.search(line[:64])
    if not match:
        return None
    day, clock, fraction, offset = match.groups()
    text = f"{day}T{clock}"
    if fraction:
        text += "." + fraction[:6]
    if offset:
        text += "+00:00" if offset == "Z" else offset
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return None
    if stamp.tzinfo is None:
        if zone is None:
            return time.mktime(stamp.timetuple()) + stamp.microsecond / 1e6
        stamp = stamp.replace(tzinfo=zone)
    return stamp.timestamp()


@dataclass(frozen=True)
class LogErrors:
    count: int
    examples: list[str]
    stamped: int  # entries with a readable timestamp
    complete: bool  # the lines read reach back before ``since``


def count_log_errors(text: str, since: float, pattern: str, zone: tzinfo | None) -> LogErrors:
    """Entries after ``since`` whose first line matches ``pattern``; lines without a stamp
    belong to the entry above them and are not counted again."""
    regex = re.compile(pattern)
    count = stamped = 0
    examples: list[str] = []
    complete = False
    for line in text.splitlines():
        when = line_time(line, zone)
        if when is None:
            continue
        stamped += 1
        if when < since:
            complete = True
            continue
        if regex.search(line):
            count += 1
            if len(examples) < 3:
                examples.append(line.strip()[:200])
    return LogErrors(count, examples, stamped, complete)

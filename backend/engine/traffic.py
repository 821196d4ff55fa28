"""Traffic around a host's switch: drain it from the load balancer, health-check it, put
it back. Without a load balancer, draining is a no-op and the reload must be graceful."""

from __future__ import annotations

import asyncio
import time
import urllib.parse

import httpx

from ..config import Config, HostConfig
from ..shell import fill


def backend_name(host: HostConfig) -> str:
    return host.backend_name or host.name


def health_url(config: Config, host: HostConfig) -> str | None:
    template = host.health_url or config.portal.health_url
    if not template:
        return None
    return template.format(address=host.address, name=host.name)


def lb_action(config: Config, host: HostConfig, action: str) -> tuple[str, str] | None:
    """(kind, target) for ``drain``/``enable``: an URL to POST or a local command to run."""
    lb = config.load_balancer
    name = backend_name(host)
    if lb.kind == "http":
        template = lb.drain_url if action == "drain" else lb.enable_url
        assert template is not None
        return ("http", template.format(backend=urllib.parse.quote(name, safe="")))
    if lb.kind == "command":
        template = lb.drain_command if action == "drain" else lb.enable_command
        assert template is not None
        return ("command", fill(template, backend=name))
    return None


async def run_lb_action(kind: str, target: str, timeout: float = 40.0) -> tuple[bool, str]:
    if kind == "http":
        try:
            async with httpx.AsyncClient(timeout=timeout) as client:
                response = await client.post(target)
            return response.is_success, f"HTTP {response.status_code} {response.text[:200]}"
        except httpx.HTTPError as exc:
            return False, f"load balancer unreachable: {exc!r}"
    proc = await asyncio.create_subprocess_exec(
        "/bin/sh",
        "-c",
        target,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        return False, "load balancer command timed out"
    return proc.returncode == 0, out.decode(errors="replace")[-300:]


async def wait_healthy(url: str, timeout: float, interval: float = 0.25) -> tuple[bool, str]:
    """Poll ``url`` until it answers 2xx twice in a row, or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    streak = 0
    async with httpx.AsyncClient(timeout=min(5.0, timeout)) as client:
        while time.monotonic() < deadline:
            try:
                response = await client.get(url)
                last = f"HTTP {response.status_code}"
                streak = streak + 1 if response.is_success else 0
                if streak >= 2:
                    return True, last
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}"
                streak = 0
            await asyncio.sleep(interval)
    return False, f"not healthy after {timeout:.0f}s (last: {last})"


def batches(hosts: list[HostConfig], specs: list[str]) -> list[list[HostConfig]]:
    """Split hosts into rollout batches, canary first (Ansible ``serial`` semantics): each
    spec is the size of the next batch, a count or a percentage of all hosts (at least 1);
    the last spec repeats until every host is in a batch."""
    total = len(hosts)
    out: list[list[HostConfig]] = []
    index = 0
    spec_index = 0
    while index < total:
        spec = specs[min(spec_index, len(specs) - 1)]
        size = max(1, total * int(spec[:-1]) // 100) if spec.endswith("%") else int(spec)
        out.append(hosts[index : index + size])
        index += size
        spec_index += 1
    return out

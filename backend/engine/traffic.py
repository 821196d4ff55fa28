"""Traffic around a host's switch: drain it from the load balancer, health-check it, put
it back. Without a load balancer, draining is a no-op and the reload must be graceful.

Load balancers: ``http`` (POST a drain/enable URL), ``command`` (a local command; a
non-zero exit or anything on stderr fails the step, its output is kept), and ``haproxy``
(the runtime API on a Unix socket or TCP: ``set server B/S state drain|ready``, every
answer checked, and a drain waits until ``show stat`` counts no session on the server).
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from dataclasses import dataclass

from ..config import Config, HostConfig, LoadBalancerConfig
from ..haproxy import HAProxyRuntime, server_of
from ..haproxy import RuntimeAPIError as LoadBalancerError
from ..health import health_url as health_url  # re-exported: engine callers import it here
from ..shell import fill


def backend_name(host: HostConfig) -> str:
    return host.backend_name or host.name


# -- HAProxy runtime API -----------------------------------------------------------------------


def haproxy_server(lb: LoadBalancerConfig, host: HostConfig) -> tuple[str, str]:
    """(backend, server) of ``host`` in HAProxy (see :func:`backend.haproxy.server_of`)."""
    return server_of(backend_name(host), lb.backend or "")


def runtime(config: Config) -> HAProxyRuntime:
    lb = config.load_balancer
    assert lb.socket is not None
    return HAProxyRuntime(lb.socket, min(lb.timeout, 10.0))


async def preflight(config: Config, hosts: list[HostConfig]) -> list[str]:
    """Problems that would make a switch unsafe, found before anything changes: the runtime
    API unreachable, or a host's backend/server unknown to HAProxy; the same for the stats
    socket the batch analysis reads (``[monitor.haproxy]``, when it is another one); a
    ``[validation] version_key`` missing from the live version document. Each problem
    names its source. Empty when all is well."""
    lb, stats = config.load_balancer, config.monitor.haproxy
    targets: list[tuple[str, str, str]] = []  # (what, socket, default backend)
    if lb.kind == "haproxy" and lb.socket:
        targets.append(("load balancer: ", lb.socket, lb.backend or ""))
    if stats.enabled and config.rollout.analysis_seconds > 0:
        socket, backend = stats.socket or lb.socket, stats.backend or lb.backend or ""
        if not socket:
            targets.append(("[monitor.haproxy] ", "", backend))
        elif (socket, backend) != (lb.socket, lb.backend or "") or lb.kind != "haproxy":
            targets.append(("[monitor.haproxy] ", socket, backend))
    problems: list[str] = []
    if config.validation.version_key and config.portal.version_url:
        # the checks (and their HTTP client) only load where there is a key to look up
        from ..checks.release import version_key_problems

        problems += await version_key_problems(config, hosts)
    for what, socket, default in targets:
        if not socket:
            problems.append(f"{what}has no socket (and [load_balancer] names none)")
            continue
        try:
            rows = await HAProxyRuntime(socket, min(lb.timeout, 10.0)).show_stat()
        except LoadBalancerError as exc:
            problems.append(f"{what}{exc}")
            continue
        known = {(r.get("pxname"), r.get("svname")) for r in rows}
        backends = {r.get("pxname") for r in rows}
        for host in hosts:
            backend, server = server_of(backend_name(host), default)
            if backend not in backends:
                problems.append(f"{what}{host.name}: HAProxy has no backend {backend!r}")
            elif (backend, server) not in known:
                problems.append(
                    f"{what}{host.name}: HAProxy backend {backend!r} has no server {server!r}"
                )
    return problems


# -- one action on one host ----------------------------------------------------------------------


@dataclass
class LBResult:
    ok: bool
    detail: str  # one line for the error or the journal
    output: str = ""  # what the command printed / the balancer answered, kept in the journal


def lb_action(config: Config, host: HostConfig, action: str) -> tuple[str, str] | None:
    """(kind, target) for ``drain``/``enable``: an URL to POST, a local command to run, or
    a runtime API command; None without a load balancer."""
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
    if lb.kind == "haproxy":
        backend, server = haproxy_server(lb, host)
        state = "drain" if action == "drain" else "ready"
        return ("haproxy", f"set server {backend}/{server} state {state}")
    return None


async def perform(config: Config, host: HostConfig, action: str) -> LBResult:
    """Run ``drain``/``enable`` for one host and check the answer."""
    target = lb_action(config, host, action)
    if target is None:
        return LBResult(True, "no load balancer")
    kind, text = target
    if kind == "haproxy":
        backend, server = haproxy_server(config.load_balancer, host)
        try:
            command = await runtime(config).set_state(
                backend, server, "drain" if action == "drain" else "ready"
            )
        except LoadBalancerError as exc:
            return LBResult(False, str(exc))
        return LBResult(True, command)
    return await run_lb_action(kind, text, config.load_balancer.timeout)


async def run_lb_action(kind: str, target: str, timeout: float = 40.0) -> LBResult:
    if kind == "http":
        import httpx  # here, not at the top: importing the engine must stay cheap (~0.1 s)

        try:
            async with httpx.AsyncClient(timeout=timeout) as client:
                response = await client.post(target)
        except httpx.HTTPError as exc:
            return LBResult(False, f"load balancer unreachable: {exc!r}")
        detail = f"HTTP {response.status_code} {response.text[:200]}"
        return LBResult(response.is_success, detail, response.text[:2000])
    proc = await asyncio.create_subprocess_exec(
        "/bin/sh",
        "-c",
        target,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return LBResult(False, f"load balancer command timed out after {timeout:g}s")
    stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
    output = (stdout + stderr)[-4000:]
    if proc.returncode != 0:
        return LBResult(
            False, f"exited {proc.returncode}: {(stderr or stdout).strip()[-300:]}", output
        )
    if stderr.strip():
        # `echo ... | socat` exits 0 when HAProxy answers "No such server.": a command that
        # complains on stderr did not do its job
        return LBResult(False, f"printed to stderr: {stderr.strip()[-300:]}", output)
    return LBResult(True, f"exit 0{': ' + stdout.strip()[-200:] if stdout.strip() else ''}", output)


async def wait_drained(config: Config, host: HostConfig) -> LBResult:
    """After a drain: for HAProxy, poll ``show stat`` until the server's current sessions
    (``scur``) reach 0, at most ``drain_timeout`` seconds; for other balancers, which
    cannot be asked, wait ``[rollout] drain_seconds``."""
    lb = config.load_balancer
    if lb.kind != "haproxy":
        await asyncio.sleep(config.rollout.drain_seconds)
        return LBResult(True, f"waited {config.rollout.drain_seconds:g}s")
    backend, server = haproxy_server(lb, host)
    api = runtime(config)
    started = time.monotonic()
    deadline = started + lb.drain_timeout
    sessions = "?"
    while True:
        try:
            row = await api.server_row(backend, server)
        except LoadBalancerError as exc:
            return LBResult(False, str(exc))
        sessions = row.get("scur") or "0"
        if sessions == "0":
            return LBResult(
                True, f"{backend}/{server} drained in {time.monotonic() - started:.2f}s"
            )
        if time.monotonic() >= deadline:
            return LBResult(
                False,
                f"{backend}/{server} still had {sessions} session(s) after"
                f" drain_timeout {lb.drain_timeout:g}s",
            )
        await asyncio.sleep(lb.poll_interval)


async def wait_healthy(url: str, timeout: float, interval: float = 0.25) -> tuple[bool, str]:
    """Poll ``url`` until it answers 2xx twice in a row, or ``timeout`` passes."""
    import httpx

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

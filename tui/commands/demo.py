"""``portal-ops demo``: the control room (or a headless run) on a sandbox on this machine."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import click

from backend.events import Event

from .common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, fail
from .printer import EventPrinter

SCENARIOS = ["health", "migration", "errors", "host"]
_HANG_UPS = (signal.SIGHUP, signal.SIGTERM)


def _hung_up(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def no_resume() -> None:
    """A terminal that hangs up sends SIGHUP, then SIGCONT; Textual's SIGCONT handler
    resumes its driver, which started a new terminal-input thread on the dead terminal
    after the room had closed: it spun at 100 % of a core and kept the process from ever
    exiting. Once the terminal is gone (or the room closed) there is nothing to resume."""
    signal.signal(signal.SIGCONT, signal.SIG_DFL)


class _RoomHangUp:
    """The hang-up handler while the control room may be running: the room is asked to
    close, on its own event loop, as ``q`` closes it (Textual stops its driver's threads;
    the room its workers and followers), rather than SystemExit raised wherever the room's
    loop happened to be. Outside the room's loop (building the sandbox, or after the room
    closed) it exits. A demo left by the tmux test had run 22 minutes at 100 % of a core
    (see :func:`no_resume`)."""

    def __init__(self) -> None:
        self.app: object | None = None

    def __call__(self, signum: int, _frame: FrameType | None) -> None:
        no_resume()
        app = self.app
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if app is None or loop is None:
            raise SystemExit(128 + signum)
        loop.call_soon_threadsafe(self._close, app, 128 + signum)

    @staticmethod
    def _close(app: object, code: int) -> None:
        try:
            app.exit(return_code=code)  # type: ignore[attr-defined]
        except Exception:
            pass  # already closing


def _on_hang_up(action: Callable[[int, FrameType | None], None] | signal.Handlers) -> None:
    """A closed terminal (SIGHUP: tmux killed, an SSH session gone) or a kill (SIGTERM)
    ends the demo as ``q`` does, its sandbox torn down: by default Python dies at once and
    leaves the sandbox's load balancer, hosts and Redis running behind a gone terminal.
    During the teardown a second one is ignored, so it cannot cut the teardown short."""
    for hang_up in _HANG_UPS:
        signal.signal(hang_up, action)


@click.group(invoke_without_command=True)
@click.option(
    "--headless", is_flag=True, help="No control room: run v1 -> v2 under load and print a summary."
)
@click.option(
    "--break", "scenario", type=click.Choice(SCENARIOS), help="Make version 2 fail this way."
)
@click.option("--json", "as_json", is_flag=True, help="With --headless: print the summary as JSON.")
@click.option(
    "--keep", is_flag=True, help="With --headless: leave the sandbox in place afterwards."
)
@click.pass_context
def demo(
    ctx: click.Context, headless: bool, scenario: str | None, as_json: bool, keep: bool
) -> None:
    """Run portal-ops on a sandbox portal on this machine: no config, no root, no services.

    \b
    portal-ops demo                      the control room on a fresh sandbox
    portal-ops demo --headless [--json]  deploy v1 -> v2 under load, print a summary
    portal-ops demo --headless --break=health|migration|errors|host
    portal-ops demo up / down            leave a sandbox running to try every command
    """
    if ctx.invoked_subcommand is not None:
        return
    if headless or as_json:
        _headless(scenario, as_json, keep)
        return
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        fail(
            "no terminal: the control room draws full-screen; use"
            " `portal-ops demo --headless` (text) or `--headless --json`",
            EXIT_USAGE,
        )
    _control_room(scenario)


def _headless(scenario: str | None, as_json: bool, keep: bool) -> None:
    from backend.demo.run import run_headless

    printer = None if as_json else EventPrinter()
    on_event: Callable[[Event], None] | None = None
    if not as_json:
        click.echo("Building the sandbox: 3 hosts behind a load balancer; deploying version 1...")
        started = [False]

        def print_event(event: Event) -> None:
            if event.kind == "deployment.started" and event.data.get("revision") == "v2":
                started[0] = True
                click.echo("Version 1 is live. Deploying version 2 while the load probe runs:\n")
            if started[0] and printer is not None:
                printer(event)

        on_event = print_event
    _on_hang_up(_hung_up)
    summary = asyncio.run(run_headless(scenario, on_event=on_event, keep=keep))
    if as_json:
        click.echo(json.dumps(summary, indent=2, default=str))
    else:
        _print_summary(summary)
    sys.exit(EXIT_OK if summary["outcome"] == "succeeded" else EXIT_FAILED)


def _print_summary(s: dict) -> None:
    click.echo("\nSummary")
    click.echo(
        f"  deployment   {s['deployment_id']}  outcome: {s['outcome']}  ({s['seconds']:.1f}s)"
    )
    for p in s["phases"]:
        click.echo(f"    {p['number']}. {p['title']:<32} {p['status']:<10} {p['seconds']:6.2f}s")
    if s.get("rollback"):
        rb = s["rollback"]
        click.echo(
            f"  rollback     {rb['outcome']} in {rb['seconds']:.1f}s; database: {rb['database']}"
        )
        if rb.get("trigger"):  # who acted, in words (the rule's full message is above)
            from tui.triggers import trigger_text

            click.echo(f"  trigger      {trigger_text(rb['trigger'])}")
    click.echo(f"  hosts now on {', '.join(f'{k}: {v}' for k, v in s['live_releases'].items())}")
    click.echo(f"  load probe   {s['requests_sent']} requests sent, {s['requests_failed']} failed")
    if s["requests_failed"]:
        for f in s["probe"].get("failures", [])[:5]:
            click.echo(f"    {f}")
    for name, flag in ((s.get("flags") or {}).get("release_flags") or {}).items():
        state = "on" if flag.get("enabled") else "off"
        counted = flag.get("evaluations")
        usage = (
            f", {counted} evaluation(s) by the portal's FlagClient" if counted is not None else ""
        )
        click.echo(f"  flag         {name}: {state} at {flag.get('percentage')}%{usage}")
    click.echo(f"  demo took    {s['demo_seconds']:.1f}s")
    if s.get("state_dir") and not s.get("sandbox"):  # the sandbox is gone, its reports kept
        click.echo(f"  reports      {Path(s['state_dir']) / 'reports'}")
    if s.get("sandbox"):
        config = s["sandbox"].get("config") if isinstance(s["sandbox"], dict) else s["sandbox"]
        click.echo(f"\nThe sandbox is still up. Try it:\n  export PORTAL_OPS_CONFIG={config}")
        click.echo(
            "  portal-ops history; portal-ops feature stats ui-improvements; portal-ops demo down"
        )


def _control_room(scenario: str | None) -> None:
    import shutil
    import tempfile

    from backend.demo.run import bring_up
    from tui.app import run_control_room

    root = Path(tempfile.mkdtemp(prefix="portal-ops-demo-"))
    click.echo("Building the sandbox and deploying version 1 (a few seconds)...")
    hang_up = _RoomHangUp()
    _on_hang_up(hang_up)
    try:
        session = asyncio.run(bring_up(root, scenario))
        traffic = BackgroundProbe(session.sandbox.url)  # live graphs need live traffic
        traffic.start()
        try:
            code = run_control_room(
                session.config,
                engine=session.engine(),
                on_app=lambda app: setattr(hang_up, "app", app),
            )
        finally:
            no_resume()
            traffic.stop()
            session.close()
    finally:
        from backend.demo.sandbox import Sandbox

        _on_hang_up(signal.SIG_IGN)
        if (root / "sandbox.json").exists():
            Sandbox.load(root).stop()
        shutil.rmtree(root, ignore_errors=True)
    sys.exit(code)


class BackgroundProbe:
    """The demo's load probe on its own thread and event loop, beside the Textual app: the
    monitor and the health graphs then show real traffic through the load balancer."""

    def __init__(self, url: str, rate: float = 15.0) -> None:
        import threading

        self.url = url
        self.rate = rate
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-probe", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        from backend.demo.probe import LoadProbe

        async def main() -> None:
            probe = LoadProbe(self.url, rate=self.rate, max_seconds=3600)
            await probe.start()
            while not self._stop.is_set():
                await asyncio.sleep(0.2)
            await probe.stop()

        asyncio.run(main())


@demo.command("up")
@click.option("--break", "scenario", type=click.Choice(SCENARIOS), help="Version 2 fails this way.")
def up(scenario: str | None) -> None:
    """Start the sandbox and leave it running (version 1 live)."""
    from backend.demo.run import bring_up, demo_root

    root = demo_root()
    click.echo(f"Building the sandbox in {root} and deploying version 1...")
    try:
        session = asyncio.run(bring_up(root, scenario))
    except Exception as exc:
        fail(f"could not start the sandbox: {exc}", EXIT_FAILED)
    path = session.sandbox.config_path
    click.echo(f"\nSandbox up: 3 hosts behind {session.sandbox.url}")
    click.echo(f"Config: {path}\n")
    click.echo(f"  export PORTAL_OPS_CONFIG={path}")
    click.echo(f"  export PORTAL_OPS_DEMO_WEBHOOK={session.sandbox.notify_url}\n")
    click.echo(
        "Then try: portal-ops deploy --dry-run | portal-ops deploy | portal-ops history |"
        " portal-ops rollback | portal-ops validate pre | portal-ops feature list | portal-ops ui"
    )
    click.echo(f"Stop it with: portal-ops demo down {session.sandbox.root}")
    session.close()


@demo.command("down")
@click.argument("root", required=False, type=click.Path(file_okay=False, path_type=Path))
def down(root: Path | None) -> None:
    """Stop a sandbox started by `demo up` (ROOT, else the newest) and remove its files."""
    from backend.demo.run import newest_demo_root
    from backend.demo.sandbox import Sandbox, SandboxError

    root = root or newest_demo_root()
    try:
        box = Sandbox.load(root)
    except SandboxError as exc:
        fail(str(exc))
    box.remove()
    click.echo(f"Sandbox stopped and removed ({root}).")

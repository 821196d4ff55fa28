"""Confirmations. Each says what will happen before it happens; none fires on a stray key.

- Deploy: the dry-run plan (every command, per host and phase), then ``y``/Enter on the
  Deploy button, ``n``/escape to cancel.
- Rollback: type the deployment id exactly, and a reason (audited); only then is the
  button enabled. A stray ``R`` (or two) can never roll back production.
- Emergency-disable flags: a reason is required.
- Quit while the room runs a deployment: says that quitting cancels it and what stays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Unpack

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from ..widgets._options import InputOptions


class _Dialog(ModalScreen[object]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)


class _YesNoDialog(_Dialog):
    """A plain yes/no: focus starts on #cancel; ``y`` (action_confirm) or #confirm dismisses
    True. Subclasses bind ``y`` and name the buttons."""

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def action_confirm(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#confirm")
    def _confirm(self) -> None:
        self.dismiss(True)


class ConfirmDeploy(_YesNoDialog):
    """The dry-run summary, then an explicit yes. On a short screen the dialog takes the
    whole height and the plan scrolls inside it, so its keys and buttons stay visible."""

    # textual declares these `ClassVar[...] | None`, which mypy reads as instance variables
    VERTICAL_BREAKPOINTS: ClassVar[list[tuple[int, str]] | None] = [(0, "-short"), (40, "-tall")]  # type: ignore[misc]

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,n", "cancel", "Cancel"),
        Binding("y", "confirm", "Deploy"),
    ]

    def __init__(self, summary: str, plan_text: str) -> None:
        super().__init__()
        self.summary = summary
        self.plan_text = plan_text

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog -plan"):
            yield Label("Deploy?", classes="title")
            yield Static(self.summary, classes="explain", markup=False)
            with VerticalScroll(id="plan"):
                yield Static(self.plan_text, markup=False)
            yield Label("y deploys · n or escape cancels · the plan scrolls", classes="hint")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel", compact=True)
                yield Button("Deploy", id="confirm", variant="primary", compact=True)


LOCKED = "Roll back (locked)"  # the button's words say armed or not, colour or none
ARMED = "Roll back NOW"


@dataclass(frozen=True)
class RollbackRequest:
    deployment_id: str
    reason: str


class IdInput(Input):
    """The typed-id box. Once enter was pressed on it, keys still addressed to it (typed
    ahead, or read in one burst before the focus moved) go to the reason box: focus moves
    after the keys already queued, and an operator's reason used to land on the id."""

    def __init__(self, *, then: str, **kwargs: Unpack[InputOptions]) -> None:
        super().__init__(**kwargs)
        self.then = then  # the id of the box enter moves to
        self.hand_off: Input | None = None

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "enter" and self.hand_off is None:
            # here: the enter binding (and the dialog's move of the focus) run only after
            # the keys already queued behind it
            self.hand_off = self.screen.query_one(f"#{self.then}", Input)
            await super()._on_key(event)
            return
        target = self.hand_off
        if target is not None and (event.is_printable or event.key in ("enter", "backspace")):
            event.stop()
            event.prevent_default()
            if event.key == "enter":
                await target.action_submit()
            elif event.key == "backspace":
                target.action_delete_left()
            elif event.character:
                target.insert_text_at_cursor(event.character)
            return
        await super()._on_key(event)

    def _on_focus(self, event: events.Focus) -> None:
        self.hand_off = None  # back on the id: keys are the id's again
        super()._on_focus(event)


class ConfirmRollback(_Dialog):
    """Type the deployment id to arm the rollback; a reason is required and audited.

    Opaque, with the room's header kept live above it (status, deployment, live release,
    breaches, counts, lock): a translucent screen re-blended the whole room behind it on
    every repaint, the most of what R and each typed key cost at 120x36, while the header
    is what the decision needs from the room."""

    DRAWS_STATE: ClassVar[bool] = True  # the app's clock and feed draw on its header

    def __init__(self, deployment_id: str, what: str) -> None:
        super().__init__()
        self.deployment_id = deployment_id
        self.what = what

    def compose(self) -> ComposeResult:
        from ..widgets.header import DeployHeader
        from ..widgets.hoststrip import HostStrip

        room = getattr(self.app, "room", None)
        with Vertical(id="dialog-room"):
            yield DeployHeader(
                p95_limit_ms=getattr(room, "target_ms", 200.0),
                error_rate_limit=getattr(room, "error_rate_limit", 0.01),
            )
            yield HostStrip()
        with Vertical(classes="dialog -danger"):
            yield Label(f"Roll back {self.deployment_id}?", classes="title")
            yield Static(self.what, classes="explain", markup=False)
            yield Label(f"Type the deployment id ({self.deployment_id}) to confirm:")
            yield IdInput(
                then="reason", id="typed-id", compact=True, placeholder="(type the id shown above)"
            )
            yield Label("Reason (recorded in the journal and the report):")
            yield Input(id="reason", compact=True, placeholder="(e.g. p95 above 500 ms)")
            yield Label(self._status(), id="problem", classes="problem")
            yield Label("escape cancels · the button arms when the id matches", classes="hint")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel", compact=True)
                yield Button(LOCKED, id="confirm", variant="error", disabled=True, compact=True)

    def on_mount(self) -> None:
        self.query_one("#typed-id", Input).focus()
        state = getattr(self.app, "state", None)
        clock = getattr(self.app, "clock", None)
        if state is not None and clock is not None:
            self.show(state, clock())

    def show(self, state: Any, now: float) -> None:
        """The room's header and which release each host serves, live."""
        from ..widgets.header import DeployHeader
        from ..widgets.hoststrip import HostStrip

        self.query_one(DeployHeader).show(state, now)
        self.query_one(HostStrip).show(state)
        self._state = state

    def tick(self, now: float) -> None:
        state = getattr(self, "_state", None)
        if state is not None:
            self.show(state, now)

    def restyle(self) -> None:
        clock = getattr(self.app, "clock", None)
        self.tick(clock() if clock else 0.0)

    def _missing(self, typed: str = "", reason: str = "") -> list[str]:
        missing = []
        if typed != self.deployment_id:
            if not typed:
                missing.append("the deployment id")
            elif self.deployment_id.startswith(typed):
                missing.append(f"the rest of the id ({len(typed)}/{len(self.deployment_id)})")
            else:
                missing.append("the id: what is typed does not match it")
        if not reason:
            missing.append("a reason")
        return missing

    def _status(self, typed: str = "", reason: str = "") -> str:
        """Always says what is missing, or that it is armed: in words, not only colour."""
        missing = self._missing(typed, reason)
        if missing:
            return "missing: " + " · ".join(missing)
        return f"ARMED: enter or the button rolls back {self.deployment_id}"

    def _values(self) -> tuple[str, str]:
        return (
            self.query_one("#typed-id", Input).value.strip(),
            self.query_one("#reason", Input).value.strip(),
        )

    @property
    def armed(self) -> bool:
        typed = self.query_one("#typed-id", Input).value.strip()
        reason = self.query_one("#reason", Input).value.strip()
        return typed == self.deployment_id and bool(reason)

    @on(Input.Changed)
    def _changed(self) -> None:
        armed = self.armed
        button = self.query_one("#confirm", Button)
        button.disabled = not armed
        button.label = ARMED if armed else LOCKED
        self.query_one("#problem", Label).update(self._status(*self._values()))

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "typed-id":
            self.query_one("#reason", Input).focus()
            return
        self._try_confirm()

    @on(Button.Pressed, "#confirm")
    def _confirm(self) -> None:
        self._try_confirm()

    def _try_confirm(self) -> None:
        typed, reason = self._values()
        problem = self.query_one("#problem", Label)
        problem.update(self._status(typed, reason))
        if typed != self.deployment_id:
            self.query_one("#typed-id", Input).focus()
            return
        if not reason:
            self.query_one("#reason", Input).focus()
            return
        self.dismiss(RollbackRequest(self.deployment_id, reason))


class ReasonPrompt(_Dialog):
    """Ask why (for the audit trail) before a flag change that cannot wait."""

    def __init__(self, title: str, explain: str, action_label: str = "Disable all") -> None:
        super().__init__()
        self.title_text = title
        self.explain = explain
        self.action_label = action_label

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog -danger"):
            yield Label(self.title_text, classes="title")
            yield Static(self.explain, classes="explain", markup=False)
            yield Label("Reason (required, audited):")
            yield Input(id="reason", compact=True, placeholder="e.g. checkout errors since 14:02")
            yield Label("", id="problem", classes="problem")
            yield Label("enter confirms · escape cancels", classes="hint")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel", compact=True)
                yield Button(self.action_label, id="confirm", variant="error", compact=True)

    def on_mount(self) -> None:
        self.query_one("#reason", Input).focus()

    @on(Input.Submitted)
    @on(Button.Pressed, "#confirm")
    def _confirm(self) -> None:
        reason = self.query_one("#reason", Input).value.strip()
        if not reason:
            self.query_one("#problem", Label).update("a reason is required")
            return
        self.dismiss(reason)


QUIT_WHILE_RUNNING = (
    "portal-ops owns this run: quitting now cancels {what} {id} where it stands."
    " The lock on the hosts and the journal stay, so `portal-ops resume {id}` continues it"
    " and `portal-ops rollback {id}` rolls it back, from this or another terminal."
)


class ConfirmQuit(_YesNoDialog):
    """Quitting while this room runs a deployment or rollback: say exactly what happens."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,n", "cancel", "Stay"),
        Binding("y", "confirm", "Quit and cancel"),
    ]

    def __init__(self, deployment_id: str, what: str = "deployment") -> None:
        super().__init__()
        self.deployment_id = deployment_id
        self.what = what

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog -danger"):
            yield Label(f"A {self.what} is running: quit?", classes="title")
            yield Static(
                QUIT_WHILE_RUNNING.format(what=self.what, id=self.deployment_id),
                classes="explain",
                markup=False,
            )
            yield Label("y quits and cancels · n or escape stays", classes="hint")
            with Horizontal(classes="buttons"):
                yield Button("Stay", id="cancel", variant="primary", compact=True)
                yield Button("Quit and cancel", id="confirm", variant="error", compact=True)

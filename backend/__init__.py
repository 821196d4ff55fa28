"""portal-ops backend: everything headless (config, transports, engine, checks, flags, monitor).

Nothing in this package imports a UI library; the Textual app and the CLI in ``tui/`` are
subscribers of the event stream the backend emits.
"""

__version__ = "0.1.0"

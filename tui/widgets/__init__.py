"""The control room's panes: each draws plain view-model data from ``tui.state``."""

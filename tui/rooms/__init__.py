"""The control room apps: what both modes share (base), the operator's, the watcher's."""

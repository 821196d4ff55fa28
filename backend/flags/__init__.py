"""Feature flags: store, evaluation, overrides, kill switch, Redis publication, usage stats."""

"""Live monitoring: metric sources, rolling windows, rules that trigger rollback."""

"""One module per subcommand (or group) of ``portal-ops``."""

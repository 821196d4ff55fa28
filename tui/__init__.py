"""portal-ops fronts: the command line and the Textual control room."""

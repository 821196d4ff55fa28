"""Screens of the control room: the room itself, flags, help, and the confirmations."""

"""Notifications: events rendered through templates and routed by severity to channels."""

"""Jinja2 mail templates (package data)."""

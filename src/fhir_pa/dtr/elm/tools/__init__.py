"""Maintenance scripts for the ELM engine (not imported at run time)."""

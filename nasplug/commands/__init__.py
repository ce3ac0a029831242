"""Subcommands of the ``nasplug`` CLI, one module each (see :mod:`nasplug.cli`)."""

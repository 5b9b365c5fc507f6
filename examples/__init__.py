"""Runnable examples: ``python examples/NAME.py --help`` (see each module's docstring)."""

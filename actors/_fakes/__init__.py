"""The fakes users test with: the fault plan, the `fake` spec, the fake CLI executable, the
provider emulator.

The actor runtime never imports this package; only the public re-exports in `actors` do.
"""

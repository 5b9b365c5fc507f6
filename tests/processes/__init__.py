"""The runtime against real processes: the fake CLI, tiny Python programs, /bin/echo."""

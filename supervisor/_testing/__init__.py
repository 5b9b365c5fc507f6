"""The pytest plugin behind `supervisor.testing` (registered as the ``llmsup`` ``pytest11`` entry
point): leak checks read from /proc (`_leaks`), the fixtures and options (`_plugin`), the
provider emulator on a thread (`_emulator`)."""

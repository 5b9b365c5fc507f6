"""The real claude, codex and gemini binaries against the provider emulator on loopback."""

"""Per-CLI knowledge: specs, adapters and classifiers for claude, codex, gemini, any CLI."""

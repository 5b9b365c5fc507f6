"""Pure policies, parsers and classifiers: no processes, time injected or simulated."""

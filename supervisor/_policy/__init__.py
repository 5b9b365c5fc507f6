"""Pure policies on an injected clock: backoff, retry budget, circuit breaker, restart intensity.

No I/O and no trio tasks here; the engine calls these and does the I/O itself.
"""

"""Fan-out over a Ray cluster: one node actor per node hosting a local trio supervisor, one
gate actor holding each CLI's breaker and retry budget for the whole fleet, and the
driver's dispatcher.

Only `supervisor.ray` and `supervisor._llmsup._map._on_ray` import the modules that import
``ray`` (`_actors`, `_fleet`); the rules (`_gate_rules`, `_dispatch`) and the fleet-backed
breaker (`_fleet_breaker`) and retry budget (`_fleet_budget`) are pure and tested without
Ray.
"""

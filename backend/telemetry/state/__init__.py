"""Reading external state: pure functions that return small frozen dataclasses.

Nothing here knows about OpenTelemetry. Each reader takes the object it reads
(a pool, a cache backend, a queue, a Redis client) and returns what it found,
or raises; :mod:`telemetry.callbacks` decides how readings become
observations and what a failure costs.
"""

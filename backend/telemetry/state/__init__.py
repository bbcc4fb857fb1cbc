"""Reading external state, all in one place.

The readers (:mod:`.breakers`, :mod:`.cache`, :mod:`.database`,
:mod:`.process`, :mod:`.queue`, :mod:`.redis`) are pure functions that take
the object they read (a pool, a cache backend, a queue, a Redis client) and
return small frozen dataclasses, or raise; nothing in them knows about
OpenTelemetry. :mod:`.sources` runs each reader time-bounded and isolated,
keeping its last reading and health; :mod:`.callbacks` decides how readings
become observations and what a failure costs.
"""

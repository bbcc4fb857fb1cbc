"""Tracer and meter providers that can be pointed at another provider later.

Why: the contrib instrumentors take their providers once, when they
instrument (``FlaskInstrumentor.instrument_app``, ``SQLAlchemyInstrumentor``,
``RedisInstrumentor``; the last two once per process). A forked gunicorn
worker gets a pipeline of its own (new resource, new ``service.instance.id``),
so the instrumentations must follow it without being instrumented again:
instrumenting twice is refused by the instrumentors, and un-instrumenting a
Flask app would drop any WSGI wrapper added after it. These proxies, built on
the public ``opentelemetry.trace`` and ``opentelemetry.metrics`` interfaces,
are handed to the instrumentors once and re-pointed with :meth:`bind`.

Unbound, they behave like the API's no-op providers (nothing recorded).
"""
from __future__ import annotations

import threading
from typing import Any

from opentelemetry import metrics, trace


class _Rebindable:
    """The target provider and a generation that changes at every :meth:`bind`."""

    def __init__(self) -> None:
        self.target: Any = None
        self.generation = 0
        self._lock = threading.Lock()

    def bind(self, target: Any) -> None:
        with self._lock:
            self.target = target
            self.generation += 1


class RebindableTracerProvider(_Rebindable, trace.TracerProvider):
    """A tracer provider whose tracers start spans from the provider bound now."""

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        return _RebindableTracer(self, args, kwargs)


class _RebindableTracer(trace.Tracer):
    def __init__(self, owner: RebindableTracerProvider, args: tuple, kwargs: dict):
        self._owner, self._args, self._kwargs = owner, args, kwargs
        self._generation, self._tracer = -1, trace.NoOpTracer()

    def _current(self) -> trace.Tracer:
        owner = self._owner
        if self._generation != owner.generation:  # a benign race: both threads build the same tracer
            target = owner.target
            self._tracer = target.get_tracer(*self._args, **self._kwargs) if target else trace.NoOpTracer()
            self._generation = owner.generation
        return self._tracer

    @property
    def resource(self) -> Any:
        """The bound provider's resource (None when unbound), for tests and diagnostics."""
        return getattr(self._owner.target, "resource", None)

    def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
        return self._current().start_span(*args, **kwargs)

    def start_as_current_span(self, *args: Any, **kwargs: Any):
        return self._current().start_as_current_span(*args, **kwargs)


class RebindableMeterProvider(_Rebindable, metrics.MeterProvider):
    """A meter provider whose synchronous instruments record into the provider bound now.

    Used only when the instrumentations' own metrics are kept
    (``SUBLARR_METRICS_KEEP_SEMCONV``); otherwise they get the API's no-op
    provider and cost nothing. Observable instruments are registered again on
    every bound provider.
    """

    def __init__(self) -> None:
        super().__init__()
        self._observables: list[tuple[Any, str, tuple, dict]] = []  # (meter, factory, args, kwargs)

    def bind(self, target: Any) -> None:
        super().bind(target)
        for meter, factory, args, kwargs in list(self._observables):
            meter.create_in_target(factory, args, kwargs)

    def get_meter(self, *args: Any, **kwargs: Any) -> metrics.Meter:
        return _RebindableMeter(self, args, kwargs)


class _RebindableMeter(metrics.Meter):
    def __init__(self, owner: RebindableMeterProvider, args: tuple, kwargs: dict):
        name = args[0] if args else kwargs.get("name", "")
        super().__init__(name)
        self._owner, self._args, self._kwargs = owner, args, kwargs
        self._generation, self._meter = -1, metrics.NoOpMeter(name)

    def current(self) -> metrics.Meter:
        owner = self._owner
        if self._generation != owner.generation:
            target = owner.target
            self._meter = (target.get_meter(*self._args, **self._kwargs) if target
                           else metrics.NoOpMeter(self.name))
            self._generation = owner.generation
        return self._meter

    def create_in_target(self, factory: str, args: tuple, kwargs: dict) -> Any:
        return getattr(self.current(), factory)(*args, **kwargs)

    def _sync(self, factory: str, args: tuple, kwargs: dict) -> "_RebindableInstrument":
        return _RebindableInstrument(self, factory, args, kwargs)

    def _observable(self, factory: str, args: tuple, kwargs: dict) -> Any:
        self._owner._observables.append((self, factory, args, kwargs))
        return self.create_in_target(factory, args, kwargs)

    def create_counter(self, *args: Any, **kwargs: Any):
        return self._sync("create_counter", args, kwargs)

    def create_up_down_counter(self, *args: Any, **kwargs: Any):
        return self._sync("create_up_down_counter", args, kwargs)

    def create_histogram(self, *args: Any, **kwargs: Any):
        return self._sync("create_histogram", args, kwargs)

    def create_gauge(self, *args: Any, **kwargs: Any):
        return self._sync("create_gauge", args, kwargs)

    def create_observable_counter(self, *args: Any, **kwargs: Any):
        return self._observable("create_observable_counter", args, kwargs)

    def create_observable_up_down_counter(self, *args: Any, **kwargs: Any):
        return self._observable("create_observable_up_down_counter", args, kwargs)

    def create_observable_gauge(self, *args: Any, **kwargs: Any):
        return self._observable("create_observable_gauge", args, kwargs)


class _RebindableInstrument:
    """One synchronous instrument, created again in each bound provider on first use."""

    def __init__(self, meter: _RebindableMeter, factory: str, args: tuple, kwargs: dict):
        self._meter, self._factory, self._args, self._kwargs = meter, factory, args, kwargs
        self._generation, self._instrument = -1, None

    def _current(self) -> Any:
        generation = self._meter._owner.generation
        if self._generation != generation:
            self._instrument = self._meter.create_in_target(self._factory, self._args, self._kwargs)
            self._generation = generation
        return self._instrument

    def add(self, *args: Any, **kwargs: Any) -> None:
        self._current().add(*args, **kwargs)

    def record(self, *args: Any, **kwargs: Any) -> None:
        self._current().record(*args, **kwargs)

    def set(self, *args: Any, **kwargs: Any) -> None:
        self._current().set(*args, **kwargs)

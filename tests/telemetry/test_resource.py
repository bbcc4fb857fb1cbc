"""service.name defaults to sublarr and yields to the standard OTEL_* variables."""
from telemetry.meter_provider import build_resource


def test_default_service_name(monkeypatch):
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    attrs = build_resource().attributes
    assert attrs["service.name"] == "sublarr"
    assert attrs["service.version"]


def test_otel_service_name_wins(monkeypatch):
    monkeypatch.setenv("OTEL_SERVICE_NAME", "sublarr-web")
    assert build_resource().attributes["service.name"] == "sublarr-web"


def test_otel_resource_attributes_apply(monkeypatch):
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=subs,deployment.environment=home")
    attrs = build_resource().attributes
    assert attrs["service.name"] == "subs" and attrs["deployment.environment"] == "home"


def test_an_instance_id_given_from_outside_becomes_one_per_process(monkeypatch):
    """As the OpenTelemetry Operator injects it: one id per container, so each process adds its pid."""
    import os
    import uuid

    from telemetry.state.callbacks import StateTargets
    from telemetry.pipeline import build_pipeline
    from telemetry.settings import Settings

    def instance_id():
        pipeline = build_pipeline(Settings(), lambda queries: StateTargets())
        pipeline.shutdown()
        return pipeline.instance_id

    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.instance.id=ns.pod.web")
    assert instance_id() == f"ns.pod.web-{os.getpid()}"
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES")
    first, second = instance_id(), instance_id()
    assert uuid.UUID(first) and uuid.UUID(second) and first != second

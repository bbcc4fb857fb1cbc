"""service.name defaults to sublarr and yields to the standard OTEL_* variables."""
from telemetry.provider import build_resource


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

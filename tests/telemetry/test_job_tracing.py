"""Job spans in the RQ worker and their exemplars on sublarr_job_duration_seconds.

In-process tests run real rq workers (forking and simple) against a real
Redis with tracing on and an in-memory span exporter beside the configured
one; the end-to-end test runs Sublarr's topology (web app enqueuing through
TracedQueue, ``python -m refapp.worker`` forking work-horses) exporting spans
to the real collector while a real Prometheus with exemplar storage scrapes
the worker's SUBLARR_METRICS_LISTEN endpoint in OpenMetrics.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import redis
from rq import Queue

from harness.support import REPO, free_port, sample_value, wait_for
from telemetry import Settings
from telemetry.rq_worker import SimpleWorker, TracedQueue, Worker, WorkerTelemetry
from harness.tracing import close_refapp, collector_env, collector_log, make_refapp, parse_debug_log
from harness.net import get_text

OPENMETRICS = "application/openmetrics-text; version=1.0.0"
OK = {"queue": "sublarr", "function": "refapp.jobs.sleep_for", "status": "finished"}
BAD = {"queue": "sublarr", "function": "refapp.jobs.always_fails", "status": "failed"}
_EXEMPLAR = re.compile(r'^sublarr_job_duration_seconds_bucket\{(.*)\} \S+ # '
                       r'\{span_id="([0-9a-f]{16})",trace_id="([0-9a-f]{32})"\} (\S+) (\S+)$')


def traced_worker_telemetry(telemetry_class=WorkerTelemetry):
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from refapp.jobs import JOB_FUNCTIONS

    settings = Settings(exporters=("prometheus",), traces_exporters=("console",))
    telemetry = telemetry_class(settings, job_functions=JOB_FUNCTIONS)
    exporter = InMemorySpanExporter()
    telemetry.pipeline.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    return telemetry, exporter


def job_exemplars(text: str) -> list[dict]:
    found = []
    for line in text.splitlines():
        match = _EXEMPLAR.match(line)
        if match:
            labels, span_id, trace_id, value, timestamp = match.groups()
            found.append({"labels": labels, "span_id": span_id, "trace_id": trace_id, "value": float(value),
                          "timestamp": float(timestamp)})
    return found


@pytest.mark.parametrize("worker_class", [Worker, SimpleWorker], ids=["forking", "simple"])
def test_each_job_gets_a_consumer_span_that_is_its_exemplar(worker_class, redis_url, monkeypatch, capsys):
    from opentelemetry.trace import SpanKind, StatusCode

    from refapp import jobs

    monkeypatch.setenv("SUBLARR_SIM_LATENCY_SCALE", "0")
    connection = redis.Redis.from_url(redis_url)
    queue = Queue("sublarr", connection=connection)
    ok_job = queue.enqueue(jobs.sleep_for, 0.05)
    bad_job = queue.enqueue(jobs.always_fails)
    telemetry, exporter = traced_worker_telemetry()
    before = time.time()
    try:
        worker = worker_class([queue], connection=connection, telemetry=telemetry)
        worker.work(burst=True)
        text = telemetry.pipeline.renderer.render(OPENMETRICS).body.decode()
        plain = telemetry.pipeline.renderer.render(None).body.decode()
        spans = {s.attributes["messaging.message.id"]: s for s in exporter.get_finished_spans()
                 if s.instrumentation_scope.name == "telemetry.rq_worker"}
    finally:
        telemetry.shutdown()
    capsys.readouterr()  # the console exporter's output

    assert set(spans) == {ok_job.id, bad_job.id}
    for job, span in ((ok_job, spans[ok_job.id]), (bad_job, spans[bad_job.id])):
        assert span.name == "process sublarr" and span.kind is SpanKind.CONSUMER
        assert span.parent is None
        assert {k: span.attributes[k] for k in ("messaging.system", "messaging.operation.name",
                                                "messaging.operation.type", "messaging.destination.name",
                                                "messaging.message.id", "messaging.client.id",
                                                "code.function.name")} == {
            "messaging.system": "rq", "messaging.operation.name": "process", "messaging.operation.type": "process",
            "messaging.destination.name": "sublarr", "messaging.message.id": job.id,
            "messaging.client.id": worker.name, "code.function.name": job.func_name}
        # The worker process's identity, the one its metrics carry (a horse has no identity of its own).
        assert span.resource.attributes["service.instance.id"] == telemetry.pipeline.instance_id
    ok, bad = spans[ok_job.id], spans[bad_job.id]
    assert ok.status.status_code is StatusCode.UNSET and "error.type" not in ok.attributes
    assert ok.attributes["rq.job.status"] == "finished"
    assert (ok.end_time - ok.start_time) / 1e9 >= 0.05
    # The exception as the job raised it, handed over from the work-horse when forking.
    assert bad.status.status_code is StatusCode.ERROR
    assert bad.status.description == "RuntimeError: always_fails: deliberate failure"
    assert bad.attributes["error.type"] == "RuntimeError" and bad.attributes["rq.job.status"] == "failed"
    (event,) = bad.events
    assert event.name == "exception" and event.attributes["exception.type"] == "RuntimeError"

    # The metrics are unchanged by tracing; each observation's exemplar is its job's span.
    assert sample_value(plain, "sublarr_jobs_total", OK) == 1
    assert sample_value(plain, "sublarr_jobs_total", BAD) == 1
    assert sample_value(plain, "sublarr_job_duration_seconds_count", OK) == 1
    assert " # {" not in plain, "the text format has no exemplars"
    exemplars = job_exemplars(text)
    assert {(e["trace_id"], e["span_id"]) for e in exemplars} == {
        (format(s.context.trace_id, "032x"), format(s.context.span_id, "016x")) for s in (ok, bad)}
    for exemplar in exemplars:
        span = ok if exemplar["span_id"] == format(ok.context.span_id, "016x") else bad
        assert f'function="{span.attributes["code.function.name"]}"' in exemplar["labels"]
        # The observation's time (after the span started, before the scrape), not the scrape's.
        assert span.start_time / 1e9 <= exemplar["timestamp"] <= span.end_time / 1e9 + 1
        assert before <= exemplar["timestamp"]


class SlowToLeave(WorkerTelemetry):
    """A work-horse that takes a second to leave after its job, as one does whose span
    flush waits on an unreachable collector."""

    LEAVING_SECONDS = 1.0

    def flush_spans(self) -> None:
        time.sleep(self.LEAVING_SECONDS)
        super().flush_spans()


def test_a_horse_leaving_slowly_is_not_in_the_job_duration_or_its_span(redis_url, monkeypatch, capsys):
    from refapp import jobs

    monkeypatch.setenv("SUBLARR_SIM_LATENCY_SCALE", "0")
    connection = redis.Redis.from_url(redis_url)
    queue = Queue("sublarr", connection=connection)
    job = queue.enqueue(jobs.sleep_for, 0.05)
    telemetry, exporter = traced_worker_telemetry(SlowToLeave)
    try:
        worker = Worker([queue], connection=connection, telemetry=telemetry)
        started = time.monotonic()
        worker.work(burst=True)
        wall = time.monotonic() - started
        returned_ns = time.time_ns()
        plain = telemetry.pipeline.renderer.render(None).body.decode()
        (span,) = [s for s in exporter.get_finished_spans() if s.instrumentation_scope.name == "telemetry.rq_worker"]
    finally:
        telemetry.shutdown()
    capsys.readouterr()

    assert span.attributes["messaging.message.id"] == job.id
    assert wall >= SlowToLeave.LEAVING_SECONDS, "the horse did take its time to leave"
    seconds = sample_value(plain, "sublarr_job_duration_seconds_sum", OK)
    assert 0.05 <= seconds <= wall - SlowToLeave.LEAVING_SECONDS
    # The span ends when the horse's work ended, covering the same interval as the observation.
    assert span.end_time <= returned_ns - SlowToLeave.LEAVING_SECONDS * 1e9
    assert abs((span.end_time - span.start_time) / 1e9 - seconds) < 0.05


def current_span_id() -> str:
    """A job: the id of the span current while it runs."""
    from opentelemetry.trace import get_current_span

    return format(get_current_span().get_span_context().span_id, "016x")


class BusyWhileWaiting(Worker):
    """A forking worker that does traced bookkeeping of its own while the horse works."""

    def monitor_work_horse(self, job, queue):
        tracer = self.telemetry.pipeline.tracer_provider.get_tracer("test.bookkeeping")
        with tracer.start_as_current_span("worker bookkeeping"):
            pass
        return super().monitor_work_horse(job, queue)


@pytest.mark.parametrize("worker_class", [BusyWhileWaiting, SimpleWorker], ids=["forking", "simple"])
def test_the_job_span_is_current_where_the_job_runs_and_not_around_the_workers_waiting(
        worker_class, redis_url, capsys):
    connection = redis.Redis.from_url(redis_url)
    queue = Queue("sublarr", connection=connection)
    job = queue.enqueue(current_span_id)
    telemetry, exporter = traced_worker_telemetry()
    try:
        worker_class([queue], connection=connection, telemetry=telemetry).work(burst=True)
        spans = exporter.get_finished_spans()
    finally:
        telemetry.shutdown()
    capsys.readouterr()

    (job_span,) = [s for s in spans if s.instrumentation_scope.name == "telemetry.rq_worker"]
    job.refresh()
    assert job.return_value() == format(job_span.context.span_id, "016x")
    for span in spans:
        if span.name == "worker bookkeeping":
            assert span.parent is None, "the worker's own work while it waits is no child of the job"
    assert any(s.name == "worker bookkeeping" for s in spans) == (worker_class is BusyWhileWaiting)


def test_traced_queue_links_the_job_span_to_the_enqueuing_span(redis_url, capsys):
    from opentelemetry.sdk.trace import TracerProvider

    from refapp import jobs

    connection = redis.Redis.from_url(redis_url)
    queue = TracedQueue("sublarr", connection=connection)
    with TracerProvider().get_tracer("web").start_as_current_span("POST /api/v1/jobs") as request_span:
        linked = queue.enqueue(jobs.sleep_for, 0, meta={"mine": 1})
    unlinked = queue.enqueue(jobs.sleep_for, 0)  # no current span: nothing added
    assert unlinked.meta == {}
    assert linked.meta["mine"] == 1
    telemetry, exporter = traced_worker_telemetry()
    try:
        SimpleWorker([queue], connection=connection, telemetry=telemetry).work(burst=True)
        spans = {s.attributes["messaging.message.id"]: s for s in exporter.get_finished_spans()
                 if s.instrumentation_scope.name == "telemetry.rq_worker"}
    finally:
        telemetry.shutdown()
    capsys.readouterr()
    (link,) = spans[linked.id].links
    assert link.context.trace_id == request_span.get_span_context().trace_id
    assert link.context.span_id == request_span.get_span_context().span_id
    # A link, not a parent: the job's trace is its own.
    assert spans[linked.id].context.trace_id != request_span.get_span_context().trace_id
    assert spans[linked.id].parent is None
    assert spans[unlinked.id].links == ()


@pytest.mark.parametrize("meta", [None, "x", {"sublarr_trace_context": "x"}, {"sublarr_trace_context": {"traceparent": 5}},
                                  {"sublarr_trace_context": {"traceparent": "00-zz-yy-01"}},
                                  {"sublarr_trace_context": {"traceparent": "00-" + "0" * 32 + "-" + "0" * 16 + "-01"}}])
def test_a_missing_or_mangled_creation_context_gives_no_link(meta):
    from telemetry.job_spans import creation_link

    assert creation_link(meta) is None


def test_exception_type_names_are_qualified_except_builtins():
    from rq.timeouts import JobTimeoutException

    from telemetry.job_spans import exception_type_name

    assert exception_type_name(RuntimeError) == "RuntimeError"
    assert exception_type_name(JobTimeoutException) == "rq.timeouts.JobTimeoutException"


def test_unsampled_job_spans_leave_no_exemplar(redis_url, capsys):
    from refapp import jobs

    connection = redis.Redis.from_url(redis_url)
    queue = Queue("sublarr", connection=connection)
    queue.enqueue(jobs.sleep_for, 0)
    settings = Settings(exporters=("prometheus",), traces_exporters=("console",), traces_sampler="always_off")
    telemetry = WorkerTelemetry(settings)
    try:
        SimpleWorker([queue], connection=connection, telemetry=telemetry).work(burst=True)
        text = telemetry.pipeline.renderer.render(OPENMETRICS).body.decode()
    finally:
        telemetry.shutdown()
    capsys.readouterr()
    assert sample_value(text, "sublarr_jobs_total", OK) == 1
    assert job_exemplars(text) == [] and " # {" not in text


OFF_PROBE = """
import json, sys
import redis
from rq import Queue
from telemetry import Settings
from telemetry.rq_worker import SimpleWorker, WorkerTelemetry

connection = redis.Redis.from_url(sys.argv[1])
queue = Queue("sublarr-off-probe", connection=connection)
queue.enqueue("builtins.len", "abc")
telemetry = WorkerTelemetry(Settings(exporters=("prometheus",)))
SimpleWorker([queue], connection=connection, telemetry=telemetry).work(burst=True)
text = telemetry.pipeline.renderer.render(None).body.decode()
telemetry.shutdown()
print(json.dumps({
    "job_spans": telemetry.job_spans is not None,
    "imported": sorted(m for m in sys.modules if m in ("telemetry.job_spans", "telemetry.tracing",
                                                        "opentelemetry.sdk.trace", "opentelemetry.propagate")
                       or m.startswith("opentelemetry.instrumentation")),
    "counted": 'sublarr_jobs_total{function="builtins.len",queue="sublarr-off-probe",status="finished"} 1.0' in text,
}))
"""


def test_tracing_off_starts_no_span_and_imports_nothing(redis_url):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = str(REPO / "backend")
    result = subprocess.run([sys.executable, "-c", OFF_PROBE, redis_url], env=env, capture_output=True, text=True,
                            timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"job_spans": False, "imported": [],
                                                                   "counted": True}


# the real collector and a real Prometheus ------------------------------------------
@pytest.mark.e2e
def test_job_exemplars_reach_prometheus_and_name_job_spans_at_the_collector(
        debug_collector, prometheus_factory, redis_url, tmp_path, monkeypatch):
    """Sublarr's topology with tracing on: the web app enqueues through TracedQueue, the forking
    worker (``python -m refapp.worker``) traces each job, serves its metrics on
    SUBLARR_METRICS_LISTEN and pushes them over OTLP; Prometheus (exemplar storage on) scrapes
    OpenMetrics from it and stores job exemplars whose ids are those of job spans the collector
    received, as are those of the pushed job histogram."""

    n_jobs, worker_service = 3, "sublarr-worker-traced"
    for key, value in collector_env(debug_collector, OTEL_SERVICE_NAME="sublarr-web-traced",
                                    OTEL_METRICS_EXPORTER="prometheus").items():
        monkeypatch.setenv(key, value)
    app, telemetry = make_refapp(tmp_path, Settings.from_env(), redis_url)
    assert type(app.job_queue.queue) is TracedQueue
    port = free_port()
    env = dict(os.environ, SUBLARR_DATABASE_URL=f"sqlite:///{tmp_path / 'app'}.db", SUBLARR_REDIS_URL=redis_url,
               SUBLARR_DATA_DIR=str(tmp_path), SUBLARR_SIM_LATENCY_SCALE="0", SUBLARR_SIM_FAILURE_RATE="0",
               PYTHONPATH=str(REPO / "backend"), OTEL_SERVICE_NAME=worker_service,
               SUBLARR_METRICS_LISTEN=f"127.0.0.1:{port}", OTEL_METRICS_EXPORTER="prometheus,otlp")
    log = open(tmp_path / "worker.log", "w")
    worker = subprocess.Popen([sys.executable, "-m", "refapp.worker"], env=env, stdout=log, stderr=log,
                              start_new_session=True)  # its group: horses included, killed at the end
    started = time.time() - 5
    try:
        wait_for(lambda: get_text(f"http://127.0.0.1:{port}/metrics"), timeout=30, what="the worker's metrics listener")
        prometheus = prometheus_factory(
            {"global": {"scrape_interval": "1s"},
             "scrape_configs": [{"job_name": "sublarr-worker", "static_configs": [
                 {"targets": [f"127.0.0.1:{port}"]}]}]},
            flags=["--enable-feature=exemplar-storage"])
        client = app.test_client()
        for i in range(n_jobs):
            response = client.post("/api/v1/jobs", json={"file_path": f"/m/{i}.srt", "fmt": "srt"})
            assert response.status_code == 202, response.get_data(as_text=True)
        from refapp import jobs
        app.job_queue.enqueue(jobs.always_fails)

        def stored():
            found = prometheus.api("query_exemplars", query="sublarr_job_duration_seconds_bucket", start=started,
                                   end=time.time() + 60)
            exemplars = [dict(e, series=series["seriesLabels"]) for series in found for e in series["exemplars"]]
            return exemplars if len(exemplars) >= 2 else None
        exemplars = wait_for(stored, timeout=60, what="job exemplars in Prometheus")
        metrics_text = get_text(f"http://127.0.0.1:{port}/metrics")
    finally:
        worker.send_signal(signal.SIGTERM)  # the worker flushes its spans on exit
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
        try:
            os.killpg(worker.pid, signal.SIGKILL)  # a horse left behind must not take later tests' jobs
        except ProcessLookupError:
            pass
        log.close()
        close_refapp(app, telemetry)  # flushes the request spans

    def received():
        spans, metrics = parse_debug_log(collector_log(debug_collector))
        jobs_ = [s for s in spans if s["resource"].get("service.name") == worker_service
                 and s.get("Name") == "process sublarr"]
        pushed = [e for m in metrics if m.get("Name") == "sublarr_job_duration_seconds"
                  and m["resource"].get("service.name") == worker_service for p in m["points"] for e in p["exemplars"]]
        return (spans, jobs_, pushed) if len(jobs_) == n_jobs + 1 and pushed else None
    spans, job_spans, pushed = wait_for(received, timeout=30, interval=0.5,
                                        what="the job spans and the pushed job exemplars at the collector")
    # The OTLP path carries the same exemplars.
    assert {(e["Trace ID"], e["Span ID"]) for e in pushed} <= {(s["Trace ID"], s["ID"]) for s in job_spans}

    # Every stored exemplar names a job span the collector received, of the function it is labelled with.
    by_ids = {(s["Trace ID"], s["ID"]): s for s in job_spans}
    for exemplar in exemplars:
        labels = exemplar["labels"]
        span = by_ids.get((labels["trace_id"], labels["span_id"]))
        assert span is not None, labels
        assert span["Kind"] == "Consumer" and span["scope"] == "telemetry.rq_worker"
        assert span["attributes"]["code.function.name"] == exemplar["series"]["function"]
        assert span["attributes"]["messaging.destination.name"] == exemplar["series"]["queue"] == "sublarr"
        assert exemplar["timestamp"] >= started
    functions = {e["series"]["function"] for e in exemplars}
    assert "refapp.jobs.run_translation" in functions

    # One identity: the worker process's, on its job spans and its work-horses' spans alike.
    instances = {s["resource"]["service.instance.id"] for s in spans
                 if s["resource"].get("service.name") == worker_service}
    assert len(instances) == 1
    assert sample_value(metrics_text, "sublarr_jobs_total", BAD) == 1

    failed = [s for s in job_spans if s["attributes"]["code.function.name"] == "refapp.jobs.always_fails"]
    assert [s["attributes"]["error.type"] for s in failed] == ["RuntimeError"]
    assert "Status code    : Error" in collector_log(debug_collector)

    # The work-horse's queries are children of its job span (context inherited through the fork,
    # flushed before the horse exits).
    translations = [s for s in job_spans if s["attributes"]["code.function.name"] == "refapp.jobs.run_translation"]
    for job_span in translations:
        children = [s for s in spans if s["Parent ID"] == job_span["ID"]]
        assert any(s["scope"] == "opentelemetry.instrumentation.sqlalchemy" for s in children), job_span["ID"]
    # And each links to the web request that enqueued it (a link, in the request's trace).
    requests_ = {s["Trace ID"] for s in spans if s["resource"].get("service.name") == "sublarr-web-traced"
                 and s.get("Name") == "POST /api/v1/jobs"}
    assert len(requests_) == n_jobs
    log_text = collector_log(debug_collector)
    for trace_id in requests_:
        assert re.search(rf"SpanLink #0\s+-> Trace ID: {trace_id}", log_text), trace_id
    worker_log = (tmp_path / "worker.log").read_text()
    assert "could not send its spans" not in worker_log and "spans unsent" not in worker_log, worker_log



def test_a_horses_span_flush_that_never_returns_does_not_keep_the_horse(caplog):
    """The SDK's flush exports on the calling thread without a bound of its own; a horse
    blocked there (a lock inherited from the fork) must still leave, and say what it lost."""
    import threading

    from opentelemetry.sdk.trace import SpanProcessor

    from telemetry.rq_worker import HORSE_SPAN_FLUSH_GRACE_SECONDS, HORSE_SPAN_FLUSH_SECONDS

    class NeverFlushes(SpanProcessor):
        def __init__(self):
            self.release = threading.Event()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            self.release.wait()
            return True

    telemetry, _ = traced_worker_telemetry()
    blocked = NeverFlushes()
    telemetry.pipeline.tracer_provider.add_span_processor(blocked)
    flushing = threading.Thread(target=telemetry.flush_spans)
    try:
        flushing.start()
        flushing.join(timeout=HORSE_SPAN_FLUSH_SECONDS + HORSE_SPAN_FLUSH_GRACE_SECONDS + 10)
        assert not flushing.is_alive(), "flush_spans waited for a flush that never returns"
        assert any("spans unsent" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    finally:
        blocked.release.set()
        telemetry.shutdown()


@pytest.mark.parametrize("captured, expected", [
    (None, (3.0, None)),  # SimpleWorker, or a horse killed before its hand-over
    ({"finished_monotonic": 12.0, "finished_ns": 7}, (2.0, 7)),
    ({"finished_monotonic": 9.0, "finished_ns": 7}, (3.0, None)),  # before the job started: ignored
    ({"finished_monotonic": 14.0, "finished_ns": 7}, (3.0, None)),  # after the worker saw the end: ignored
    ({"finished_monotonic": "12", "finished_ns": 7}, (3.0, None)),
    ({"finished_monotonic": 12.0}, (3.0, None)),
    ({"finished_monotonic": True, "finished_ns": 7}, (3.0, None)),
])
def test_the_job_interval_takes_the_horses_end_only_within_the_workers_view(captured, expected):
    from telemetry.rq_worker import job_interval

    assert job_interval(10.0, 13.0, captured) == expected

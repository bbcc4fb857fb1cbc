"""What the tests share: real servers (Redis, PostgreSQL, Prometheus, the collector,
VictoriaMetrics) with their fixtures, scraping and waiting helpers, small apps.

Imported as ``harness.<module>``; nothing is imported from a conftest.
"""

"""Query helpers shaped like Sublarr's ``db`` package (``db.jobs``, ``db.wanted``).

They run in the Flask app context and use the app's session, as Sublarr's do;
telemetry finds them by name and reports the queue gauges from them.
"""

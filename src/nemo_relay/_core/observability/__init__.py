"""The observability plugin and its exporters: ATOF (``atof``), ATIF (``atif``) and OpenTelemetry (``otel``).

Exporters are subscribers: they receive finished events on the dispatcher thread (never on the
caller's path), keep their own bounded queues and threads for network I/O, count what they drop in
runtime diagnostics, and shut down within a deadline. ``config`` validates the plugin's configuration
and ``plugin`` wires the exporters into the plugin system.
"""

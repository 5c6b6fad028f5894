"""OpenTelemetry export: traces (``traces`` with the ``full``, ``openinference`` and ``gen_ai`` projections),
logs (``logs``) and metrics (``metrics``), built on ``opentelemetry-sdk`` (the ``otel`` extra).

Nothing here installs a global provider: each subscriber owns its providers (or uses the one it was
given) and shuts them down itself.
"""

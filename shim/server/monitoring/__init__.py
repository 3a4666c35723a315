"""Production monitoring of the served kernel: drift against its training profile, prediction
health, live accuracy from feedback (``monitor``, ``drift``, ``feedback``) and OpenTelemetry
traces (``tracing``). Everything here is off, and costs one ``if`` per request, unless the
contract names a profile (monitoring) or ``OTEL_*`` configure an exporter (tracing)."""

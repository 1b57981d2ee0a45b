"""Where the analyses read spans: the local store, or ClickHouse's ``otel_traces``."""

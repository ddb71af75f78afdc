"""The OTLP collector: receive, sample, redact, price, publish to Redis streams."""

"""OTLP receivers: decode a request, run the pipeline, answer in the client's protocol."""

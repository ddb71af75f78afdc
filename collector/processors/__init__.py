"""Pipeline stages; each takes a SpanBatch and returns it (or a smaller one)."""

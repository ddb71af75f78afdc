"""The read-only query API over traces, spans and LLM usage."""

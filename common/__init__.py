"""Code shared by the collector, the storage writer, the API and the CLI.

It holds the contracts of docs/ARCHITECTURE.md that more than one service relies on
(settings, logging, metrics and health endpoints, the Redis connection and stream format) and imports
none of the services.
"""

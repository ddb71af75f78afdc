"""The load generator: realistic LLM-application traces as OTLP requests, and ways to send them.

`traces` builds ExportTraceServiceRequest messages deterministically from a seed;
`send` sends them over OTLP gRPC, HTTP protobuf or HTTP JSON with concurrent senders at
full speed or a target rate. `observatory seed` and the end-to-end benchmark use both.
"""

from cli.loadgen.models import BUILT_IN, Model
from cli.loadgen.traces import Batch, Profile, Stats, TraceFactory, plan

__all__ = ["BUILT_IN", "Batch", "Model", "Profile", "Stats", "TraceFactory", "plan"]

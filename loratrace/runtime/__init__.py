"""The span runtime: what every loratrace instrumentor shares, and what the next one (SGLang, TGI) builds on.

An instrumentor reads its library (which adapter served, how many tokens) and hands the facts to this package,
which knows what a generation span is and how it leaves the serving thread:

``generation``        the deferred generation span and everything it touches in the OpenTelemetry SDK
``recorder``          a generation's profile (model, adapter, start attributes), its metrics, the recorder
``finisher``          the background thread that builds generation spans off the serving thread, in bursts
``export_requests``   the thread that asks span processors to export after each burst
``worker``            the one background-worker class both threads (and the flush of ``loratrace.force_flush``)
                      are made of
``release_scope``     ``loratrace.context``: the release context and the scope a generation stays open in
``request_scopes``    ``loratrace.request_scopes``: one scope per request of an offline batch
``annotations``       ``mark_fallback``, ``record_schema_attempt``, ``record_eval`` on the current generation
``watched_exporters`` OTLP exporters that know whether their endpoint listens
``span_sender``       spans a command sends to a collector, with the outcome checked

Importing a submodule loads the OpenTelemetry SDK; this package itself imports nothing.
"""

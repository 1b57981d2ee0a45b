"""How the collector answers a request: one outcome per case, its HTTP status and its gRPC code together.

Both receivers answer from this one table, so an OTLP/HTTP client and an OTLP/gRPC client are told the same
thing: the HTTP status, and in the HTTP body the ``google.rpc.Status`` whose code the gRPC receiver aborts with.
"""

from __future__ import annotations

from enum import Enum
from http import HTTPStatus

from google.rpc import code_pb2


class Outcome(Enum):
    """An answer: ``http_status`` for OTLP/HTTP, ``grpc_code`` (``google.rpc.Code``) for OTLP/gRPC and bodies."""

    OK = ("ok", HTTPStatus.OK, code_pb2.OK)
    BAD_REQUEST = ("bad_request", HTTPStatus.BAD_REQUEST, code_pb2.INVALID_ARGUMENT)
    # not RESOURCE_EXHAUSTED: a retry of the same bytes cannot help
    TOO_LARGE = ("too_large", HTTPStatus.REQUEST_ENTITY_TOO_LARGE, code_pb2.INVALID_ARGUMENT)
    # the store writer is behind: retry after the delay
    OVERLOADED = ("overloaded", HTTPStatus.SERVICE_UNAVAILABLE, code_pb2.UNAVAILABLE)
    # shutting down, the disk full, the log not keeping up: retry after the delay
    UNAVAILABLE = ("unavailable", HTTPStatus.SERVICE_UNAVAILABLE, code_pb2.UNAVAILABLE)
    # too many bytes in flight: retry after the delay
    BUSY = ("busy", HTTPStatus.TOO_MANY_REQUESTS, code_pb2.RESOURCE_EXHAUSTED)
    UNAUTHENTICATED = ("unauthenticated", HTTPStatus.UNAUTHORIZED, code_pb2.UNAUTHENTICATED)
    # what only HTTP can get wrong: the path, the framing, the media type
    NOT_FOUND = ("not_found", HTTPStatus.NOT_FOUND, code_pb2.UNIMPLEMENTED)
    LENGTH_REQUIRED = ("length_required", HTTPStatus.LENGTH_REQUIRED, code_pb2.INVALID_ARGUMENT)
    UNSUPPORTED_MEDIA_TYPE = ("unsupported_media_type", HTTPStatus.UNSUPPORTED_MEDIA_TYPE, code_pb2.INVALID_ARGUMENT)

    def __init__(self, label: str, http_status: HTTPStatus, grpc_code: int) -> None:
        self.label = label
        self.http_status = http_status
        self.grpc_code = grpc_code

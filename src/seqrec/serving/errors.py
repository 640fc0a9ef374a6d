"""Requests a served run cannot answer: the HTTP status, the field at fault and the message that says why."""

from __future__ import annotations

from seqrec.errors import SeqrecError


class RequestError(SeqrecError):
    """A well-formed request the run cannot answer (`status` 4xx); `field` names the request field at fault."""

    status = 422

    def __init__(self, message: str, field: str | None = None, id: str | None = None) -> None:
        super().__init__(message)
        self.field, self.id = field, id


class NotFound(RequestError):
    """An id the run does not know (`id`, in `field`)."""

    status = 404

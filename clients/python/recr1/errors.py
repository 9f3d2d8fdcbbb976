"""The typed errors a call raises: one class per status code, all subclasses of RecR1Error."""

from recr1.v1 import envelope_pb2

Code = envelope_pb2.Code


class RecR1Error(Exception):
    """A call that did not succeed: the status code, the message and the offending field."""

    code = Code.UNKNOWN

    def __init__(self, message, code=None, field="", retry_after_ms=0, request_id=0):
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.field = field
        self.retry_after_ms = retry_after_ms
        self.request_id = request_id

    @property
    def code_name(self):
        return Code.Name(self.code)

    def __str__(self):
        return f"{self.code_name}: {self.message}"


class InvalidArgument(RecR1Error):
    code = Code.INVALID_ARGUMENT


class DeadlineExceeded(RecR1Error):
    code = Code.DEADLINE_EXCEEDED


class NotFound(RecR1Error):
    code = Code.NOT_FOUND


class PermissionDenied(RecR1Error):
    code = Code.PERMISSION_DENIED


class ResourceExhausted(RecR1Error):
    code = Code.RESOURCE_EXHAUSTED


class FailedPrecondition(RecR1Error):
    code = Code.FAILED_PRECONDITION


class Unauthenticated(RecR1Error):
    code = Code.UNAUTHENTICATED


class Unimplemented(RecR1Error):
    code = Code.UNIMPLEMENTED


class Internal(RecR1Error):
    code = Code.INTERNAL


class Unavailable(RecR1Error):
    code = Code.UNAVAILABLE


_BY_CODE = {cls.code: cls for cls in RecR1Error.__subclasses__()}


def error_for(status, request_id=0):
    """The exception for a non-OK Status message."""
    cls = _BY_CODE.get(status.code, RecR1Error)
    return cls(status.message, code=status.code, field=status.field,
               retry_after_ms=status.retry_after_ms, request_id=request_id)

"""Lambda's error names, as data, and the one exception tree of the service.

Two families live here because both are part of Lambda's contract:

* ``ServiceError`` and its subclasses are API failures. Each carries the exact exception name AWS
  uses and its HTTP status; ``lamina.api.responses`` turns any of them into the
  ``x-amzn-ErrorType`` header plus ``{"Type", "message"}`` body so that boto3 raises the class of
  the same name.
* ``FunctionErrorType`` lists the dotted error types the platform reports inside a failed
  invocation's payload (``Runtime.ExitError``, ``Sandbox.Timedout``, ...).
"""

from __future__ import annotations

import enum
from typing import Any, ClassVar


class ServiceError(Exception):
    """An API call failed; ``code`` is the AWS exception name, ``status`` its HTTP status."""

    code: ClassVar[str] = "ServiceException"
    status: ClassVar[int] = 500
    error_type: ClassVar[str] = "Service"

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields

    def body(self) -> dict[str, Any]:
        return {"Type": self.error_type, "message": self.message, **self.fields}


class _UserError(ServiceError):
    error_type = "User"


class InvalidParameterValue(_UserError):
    code, status = "InvalidParameterValueException", 400


class InvalidRequestContent(_UserError):
    code, status = "InvalidRequestContentException", 400


class ValidationError(_UserError):
    """Raised where AWS answers a request that breaks the model's constraints."""

    code, status = "ValidationException", 400


class ResourceNotFound(_UserError):
    code, status = "ResourceNotFoundException", 404


class ResourceConflict(_UserError):
    code, status = "ResourceConflictException", 409


class ResourceNotReady(ServiceError):
    code, status = "ResourceNotReadyException", 502


class PreconditionFailed(_UserError):
    code, status = "PreconditionFailedException", 412


class RequestTooLarge(_UserError):
    code, status = "RequestTooLargeException", 413


class UnsupportedMediaType(_UserError):
    code, status = "UnsupportedMediaTypeException", 415


class TooManyRequests(_UserError):
    code, status = "TooManyRequestsException", 429


class InvalidZipFile(_UserError):
    code, status = "InvalidZipFileException", 502


class CodeStorageExceeded(_UserError):
    code, status = "CodeStorageExceededException", 400


class InvalidRuntime(_UserError):
    code, status = "InvalidRuntimeException", 502


class AccessDenied(_UserError):
    code, status = "AccessDeniedException", 403


class UnrecognizedClient(_UserError):
    code, status = "UnrecognizedClientException", 403


class InvalidSignature(_UserError):
    code, status = "InvalidSignatureException", 403


class IncompleteSignature(_UserError):
    """The Authorization header (or presigned query) is malformed."""

    code, status = "IncompleteSignatureException", 400


class RequestEntityTooLarge(_UserError):
    """A request body over the operation's limit (CreateFunction's 70 MB, say)."""

    code, status = "RequestEntityTooLargeException", 413


class MissingAuthenticationToken(_UserError):
    code, status = "MissingAuthenticationTokenException", 403


class UnknownOperation(_UserError):
    code, status = "UnknownOperationException", 404


class ProvisionedConcurrencyConfigNotFound(_UserError):
    code, status = "ProvisionedConcurrencyConfigNotFoundException", 404


class SnapStartError(_UserError):
    """A SnapStart environment failed its restore (an after-restore hook raised), or a
    version's snapshot could not be made (its Init failed)."""

    code, status = "SnapStartException", 400


class SnapStartTimeout(_UserError):
    """A snapshot's Init, or an environment's restore, overran its 10 seconds."""

    code, status = "SnapStartTimeoutException", 408


class KMSAccessDenied(ServiceError):
    """The function's environment variables could not be decrypted (altered ciphertext)."""

    code, status = "KMSAccessDeniedException", 502


class KMSNotFound(ServiceError):
    """A key needed to decrypt the environment variables is gone."""

    code, status = "KMSNotFoundException", 502


class NotImplementedYet(ServiceError):
    """An operation of the Lambda API that lamina does not serve yet."""

    code, status = "ServiceException", 501


class ServiceUnavailable(ServiceError):
    code, status = "ServiceException", 503


class InternalError(ServiceError):
    code, status = "ServiceException", 500


class FunctionErrorType(enum.StrEnum):
    """The dotted error types that the platform itself puts in a failed invocation's payload."""

    EXIT_ERROR = "Runtime.ExitError"
    OUT_OF_MEMORY = "Runtime.OutOfMemory"
    IMPORT_MODULE_ERROR = "Runtime.ImportModuleError"
    HANDLER_NOT_FOUND = "Runtime.HandlerNotFound"
    INVALID_ENTRYPOINT = "Runtime.InvalidEntrypoint"
    TRUNCATED_RESPONSE = "Runtime.TruncatedResponse"
    UNKNOWN = "Runtime.Unknown"
    MALFORMED_HANDLER = "Runtime.MalformedHandlerName"
    USER_CODE_SYNTAX_ERROR = "Runtime.UserCodeSyntaxError"
    TIMED_OUT = "Sandbox.Timedout"
    RESPONSE_TOO_LARGE = "Function.ResponseSizeTooLarge"
    EXTENSION_INIT_ERROR = "Extension.InitError"
    EXTENSION_CRASH = "Extension.Crash"

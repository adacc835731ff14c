"""The API's own exception types.

Kept apart from errors.py, which imports rest_framework.views: DRF reads DEFAULT_PARSER_CLASSES
while defining APIView, so a parser that imported errors.py would import itself half-made when
errors.py is the first API module loaded (as it is when Django checks CSRF_FAILURE_VIEW).
"""

from rest_framework import exceptions


class PayloadTooLarge(exceptions.APIException):
    status_code = 413
    default_detail = "The request body is too large."
    default_code = "payload_too_large"

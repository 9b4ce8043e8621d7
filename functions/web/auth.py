"""Key checks. Custom Vision sends `Training-Key` / `Prediction-Key` (the SDK writes `Training-key`);
header names are matched without case, and `Ocp-Apim-Subscription-Key` is accepted as well."""

from __future__ import annotations

import hmac

from cvcore.errors import Unauthorized

SUBSCRIPTION_HEADER = "ocp-apim-subscription-key"


def require_key(headers, header: str, expected: str) -> None:
    supplied = headers.get(header) or headers.get(SUBSCRIPTION_HEADER)
    if not supplied:
        raise Unauthorized(
            "Unauthorized",
            f"Access denied: the {header} header is missing. Send the key of this deployment in it.",
        )
    if not hmac.compare_digest(supplied.encode(), expected.encode()):
        raise Unauthorized(
            "Unauthorized",
            f"Access denied due to an invalid {header}. Make sure to provide a valid "
            "key for this deployment.",
        )

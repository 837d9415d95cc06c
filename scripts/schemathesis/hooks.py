"""Schemathesis hooks for scripts/schemathesis.sh.

JSON Schema cannot say everything the server checks: whether a mapping compiles, whether a
rule's connector exists and fits it, that `between` has min <= max, that activeUntil is after
activeFrom, how deep conditions nest, whether an identifier is valid for its kind, whether a
replay's draft rules are valid rules. The
configuration lets those operations answer 422 to a request the document allows; this check
makes sure such a 422 is for one of those reasons only, named by the problem document.
"""

import schemathesis


def _mapping(problem):
    return problem.get("code") == "invalid_mapping"


def _rule(problem):
    path = problem.get("path") or ""
    detail = problem.get("detail") or ""
    return (
        path in ("/connectorId", "/activeUntil")
        or (path.endswith("/max") and "max must not be below min" in detail)
        or "conditions nest deeper than" in detail
        or "more than 256 conditions" in detail
    )


def _connector_replacement(problem):
    # A connector's event type cannot change under rules that read purchase fields.
    return _mapping(problem) or problem.get("path") == "/eventType"


def _replay(problem):
    # A replay's connector must exist, its draft mapping compile and its draft rules be valid
    # rules of that connector; `to` must be after `from`.
    path = problem.get("path") or ""
    return (
        _mapping(problem)
        or path in ("/connectorId", "/to")
        or path.startswith("/rules")
    )


def _identifier(problem):
    return problem.get("path") == "value" and "not a valid identifier" in (problem.get("detail") or "")


def _webhook_target(problem):
    # Whether a URL parses as one, and where its name resolves, is the server's to find out.
    return problem.get("path") == "/url"


KNOWN_REFUSALS = {
    "createWebhook": _webhook_target,
    "createConnector": _mapping,
    "replaceConnector": _connector_replacement,
    "simulate": _mapping,
    "createRule": _rule,
    "replaceRule": _rule,
    "findMember": _identifier,
    "createReplay": _replay,
}


@schemathesis.check
def refusals_only_for_what_the_schema_cannot_say(ctx, response, case):
    """A 422 to a request the document allows names a reason JSON Schema cannot express."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 422:
        return None
    operation_id = case.operation.definition.raw.get("operationId")
    known = KNOWN_REFUSALS.get(operation_id)
    problem = response.json()
    if known is None or not known(problem):
        raise AssertionError(
            f"{operation_id}: a request the document allows was refused for a reason it could state: {problem}"
        )
    return None

"""Verifies captured webhook deliveries with the Standard Webhooks project's own Python library
(`standardwebhooks` on PyPI), the way a receiver would.

    python verify.py DELIVERIES.json

DELIVERIES.json: a list of {"secrets": ["whsec_..."], "headers": {name: value}, "body": text}.
Every delivery must verify with each of its secrets, and must fail once its body is altered
by one character. Prints "N passed, 0 failed"; exits 1 on any failure, 2 when the library is
missing.
"""

import json
import sys

try:
    from standardwebhooks.webhooks import Webhook, WebhookVerificationError
except ImportError:
    sys.stderr.write(
        "the Python library standardwebhooks is missing: run scripts/standardwebhooks.sh "
        "(installs it in a virtualenv under the cargo target directory), or "
        "`pip install standardwebhooks==1.1.0`\n"
    )
    sys.exit(2)


def main(path):
    with open(path, encoding="utf-8") as f:
        deliveries = json.load(f)
    passed = failed = 0
    for delivery in deliveries:
        headers, body = delivery["headers"], delivery["body"]
        for secret in delivery["secrets"]:
            hook = Webhook(secret)
            try:
                parsed = hook.verify(body, headers)
                assert isinstance(parsed, dict), "the body is a JSON object"
            except (WebhookVerificationError, AssertionError) as e:
                failed += 1
                print(f"REJECTED {headers.get('webhook-id')}: {e}", file=sys.stderr)
                continue
            altered = body[:-1] + (" " if body[-1] != " " else "\n")
            try:
                hook.verify(altered, headers)
                failed += 1
                print(f"ALTERED BODY ACCEPTED {headers.get('webhook-id')}", file=sys.stderr)
            except WebhookVerificationError:
                passed += 1
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

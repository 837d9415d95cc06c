"""What a member's long ledger costs the change feed: the ledger messages of the stream (and of
webhooks) carry the member's balance just after the entry, which the store computes from the
member's ledger. Against a running example server (this machine only), with the Python
standard library:

    python3 benches/feed_cost.py --url http://127.0.0.1:18190 --admin-token T [--entries 10000]

1. A program with the seed connector and a rule without limits; `--entries` events for the
   member `long@example.com` (bulks of 1000) and one for `short@example.com`.
2. Catch-up: a stream of one member (`?memberId=`) from the start (`Last-Event-ID: 0`), read
   to the member's last message: the long member's 2 x entries messages (events and ledger).
3. Tail reads, `--repeat` times for each member: a stream of the member from just before its
   last ledger message, timed to that message's arrival (one feed page with one ledger message).
4. Live: a stream of the whole program is open; one event for a member is ingested, and the
   time from the request to the arrival of the member's ledger message is taken, `--repeat`
   times for each member, alternating.

Prints one JSON line with the medians (ms).
"""

import argparse
import http.client
import json
import statistics
import time
import urllib.parse

MAPPING = (
    '{ "clientEventId": eventId, "profile": {"kind": "default", "value": profile.email}, '
    '"payload": {"timestamp": timestamp, "tags": [{"name": "theme", "value": article.theme}], '
    '"counters": [{"name": "total", "value": totalArticlesRead}]} }'
)


class Api:
    def __init__(self, url, token):
        parsed = urllib.parse.urlparse(url)
        self.host, self.port = parsed.hostname, parsed.port
        self.token = token

    def call(self, method, path, body=None, token=None, raw=None):
        connection = http.client.HTTPConnection(self.host, self.port, timeout=600)
        headers = {"Content-Type": "application/json"}
        if token or self.token:
            headers["Authorization"] = f"Bearer {token or self.token}"
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        text = response.read()
        connection.close()
        if response.status >= 300:
            raise SystemExit(f"{method} {path}: {response.status} {text[:300]!r}")
        return json.loads(text) if text else None

    def stream(self, pid, token, member=None, last=None):
        """An open SSE response (a socket file to read lines from)."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=600)
        query = f"?memberId={member}" if member else ""
        headers = {"Authorization": f"Bearer {token}"}
        if last is not None:
            headers["Last-Event-ID"] = str(last)
        connection.request("GET", f"/v1/programs/{pid}/stream{query}", headers=headers)
        response = connection.getresponse()
        assert response.status == 200, response.status
        return connection, response


def messages(response):
    """Yields (id, event, data) of each SSE message."""
    block = {}
    while True:
        line = response.fp.readline()
        if not line:
            return
        line = line.decode().rstrip("\n")
        if line == "":
            if "id" in block:
                yield int(block["id"]), block.get("event"), block.get("data")
            block = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            block[name] = value


def article(event_id, email):
    return {
        "eventId": event_id,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "profile": {"email": email},
        "article": {"theme": "sport"},
        "totalArticlesRead": 5,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--admin-token", required=True)
    parser.add_argument("--entries", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    api = Api(args.url, args.admin_token)

    program = api.call("POST", "/v1/programs", {"name": f"Feed cost {time.time()}"})
    pid, token = program["id"], program["adminToken"]
    connector = api.call(
        "POST",
        f"/v1/programs/{pid}/connectors",
        {"name": "Article Read", "eventType": "custom.basic",
         "auth": {"type": "queryToken", "token": "feed-cost-token"}, "mapping": MAPPING},
        token=token,
    )
    cid = connector["id"]
    api.call(
        "POST",
        f"/v1/programs/{pid}/rules",
        {"name": "Sport", "connectorId": cid,
         "conditions": {"tag": "theme", "op": "eq", "value": "sport"}, "points": {"fixed": 10}},
        token=token,
    )
    ingest_path = f"/v1/incoming/{cid}?token=feed-cost-token"
    started = time.monotonic()
    for start in range(0, args.entries, 1000):
        bulk = [article(f"long-{i}", "long@example.com")
                for i in range(start, min(start + 1000, args.entries))]
        answer = api.call("POST", ingest_path, raw=json.dumps(bulk))
        assert answer["accepted"] == len(bulk), answer
    api.call("POST", ingest_path, raw=json.dumps(article("short-0", "short@example.com")))
    loaded_s = time.monotonic() - started
    members = {}
    for name in ("long", "short"):
        member = api.call(
            "GET", f"/v1/programs/{pid}/members?kind=default&value={name}@example.com",
            token=token)
        members[name] = member["id"]

    result = {"entries": args.entries, "load_s": round(loaded_s, 2)}
    # 2. Catch-up of each member's messages from the start.
    last_ledger = {}
    for name, mid in members.items():
        expected = 2 * (args.entries if name == "long" else 1)
        started = time.monotonic()
        connection, response = api.stream(pid, token, member=mid, last=0)
        count = 0
        for position, event, _ in messages(response):
            count += 1
            if event == "ledger":
                last_ledger[name] = position
            if count == expected:
                break
        result[f"catch_up_{name}_ms"] = round((time.monotonic() - started) * 1000, 1)
        connection.close()

    # 3. Tail reads: one page with the member's last ledger message.
    for name, mid in members.items():
        times = []
        for _ in range(args.repeat):
            started = time.monotonic()
            connection, response = api.stream(pid, token, member=mid, last=last_ledger[name] - 1)
            for position, event, _ in messages(response):
                if position == last_ledger[name]:
                    break
            times.append((time.monotonic() - started) * 1000)
            connection.close()
        result[f"tail_read_{name}_ms"] = round(statistics.median(times), 2)

    # 4. Live: from the ingestion request to the member's ledger message on an open stream.
    connection, response = api.stream(pid, token)
    feed = messages(response)
    live = {name: [] for name in members}
    for n in range(args.repeat):
        for name, mid in members.items():
            email = f"{name}@example.com"
            started = time.monotonic()
            api.call("POST", ingest_path, raw=json.dumps(article(f"live-{name}-{n}", email)))
            for _, event, data in feed:
                if event == "ledger" and json.loads(data)["memberId"] == mid:
                    break
            live[name].append((time.monotonic() - started) * 1000)
    connection.close()
    for name, times in live.items():
        result[f"live_{name}_ms"] = round(statistics.median(times), 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""A local HTTP server that answers the few Stripe endpoints billing calls, and records
every request. Meter events are counted as Stripe counts them: once per identifier.

`fail` is a list of answers to give before the next successes: an HTTP status (the
request is refused), or "lost" (the event is counted, then a 500 is answered, as when
Stripe's reply never reaches us).
"""

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import count
from urllib.parse import parse_qsl


@dataclass
class Recorded:
    method: str
    path: str
    form: dict
    idempotency_key: str | None
    status: int


@dataclass
class FakeStripe:
    requests: list[Recorded] = field(default_factory=list)
    meter_events: dict[str, dict] = field(default_factory=dict)  # identifier -> form
    cancelled: set[str] = field(default_factory=set)
    fail: list = field(default_factory=list)
    always_fail: int | None = None
    url: str = ""
    _ids: count = field(default_factory=lambda: count(1))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def counted(self) -> dict[tuple[str, str, str], int]:
        """Tokens per (customer, meter event name, model), less what was cancelled."""
        totals: dict[tuple[str, str, str], int] = {}
        for identifier, form in self.meter_events.items():
            if identifier in self.cancelled:
                continue
            key = (
                form["payload[stripe_customer_id]"],
                form["event_name"],
                form["payload[model]"],
            )
            totals[key] = totals.get(key, 0) + int(form["payload[value]"])
        return totals

    def paths(self, path: str) -> list[Recorded]:
        return [request for request in self.requests if request.path == path]

    def answer(self, path: str, form: dict) -> tuple[int, dict]:
        failure = self.fail.pop(0) if self.fail else self.always_fail
        if isinstance(failure, int):
            code = "rate_limit" if failure == 429 else "api_error"
            return failure, {"error": {"type": "api_error", "code": code, "message": "injected"}}
        number = next(self._ids)
        if path == "/v1/billing/meter_events":
            # Stripe keeps the first event of an identifier and ignores the rest.
            self.meter_events.setdefault(form["identifier"], form)
            body = {"object": "billing.meter_event", "identifier": form["identifier"]}
        elif path == "/v1/billing/meter_event_adjustments":
            self.cancelled.add(form["cancel[identifier]"])
            body = {"object": "billing.meter_event_adjustment", "status": "pending"}
        elif path == "/v1/customers":
            body = {"id": f"cus_{number}", "object": "customer"}
        elif path == "/v1/subscriptions":
            body = {"id": f"sub_{number}", "object": "subscription", "status": "active"}
        elif path == "/v1/checkout/sessions":
            body = {
                "id": f"cs_{number}",
                "object": "checkout.session",
                "url": f"https://checkout.stripe.com/c/pay/cs_{number}",
            }
        elif path == "/v1/billing_portal/sessions":
            body = {
                "id": f"bps_{number}",
                "object": "billing_portal.session",
                "url": "https://billing.stripe.com/p/session/x",
            }
        else:
            return 404, {"error": {"type": "invalid_request_error", "message": f"no {path}"}}
        if failure == "lost":
            return 500, {"error": {"type": "api_error", "message": "reply lost"}}
        return 200, body


def start() -> tuple[FakeStripe, ThreadingHTTPServer]:
    fake = FakeStripe()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = dict(parse_qsl(self.rfile.read(length).decode()))
            with fake.lock:
                status, body = fake.answer(self.path, form)
                fake.requests.append(
                    Recorded("POST", self.path, form, self.headers.get("Idempotency-Key"), status)
                )
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Request-Id", "req_test")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return fake, server

"""End-to-end check of metricopt_client against a running server (run by test/value-api/python-client.e2e.test.ts).

    python3 clients/python/check_client.py URL API_KEY VALUE_FUNCTION_ID D

Prints one JSON line with what it saw; exits non-zero on the first failed check.
"""

import http.server
import json
import math
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from metricopt_client import ValueApiClient, ValueApiError  # noqa: E402


def check(cond: bool, what: str) -> None:
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def main() -> None:
    url, key, vf_id, d = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    phi = [math.sin(i + 1) for i in range(d)]
    out = {}
    with ValueApiClient(url, api_key=key, backoff=0.01) as client:
        check(client.health()["status"] == "ok", "health")
        check("/v1/value-functions/{id}/guide" in client.openapi()["paths"], "openapi")
        listed = client.list_value_functions()
        check([v["id"] for v in listed] == [vf_id], "list")
        check(client.get_value_function(vf_id)["d"] == d, "describe")
        p = client.predict(vf_id, phi)
        out["predict"] = p
        g = client.gradient(vf_id, [phi, phi])
        check(len(g["gradients"]) == 2 and len(g["gradients"][0]) == d, "gradient shape")
        out["gradient"] = g["gradients"][0]
        values, gradients, version = client.gradient_binary(vf_id, [phi])
        check(version == p["version"], "binary version header")
        check(abs(values[0] - p["values"][0]) < 1e-6, "binary value matches JSON")
        check(max(abs(a - b) for a, b in zip(gradients[0], g["gradients"][0])) < 1e-6, "binary gradient matches JSON")
        bvalues, _ = client.predict_binary(vf_id, [phi, phi])
        check(len(bvalues) == 2, "binary predict")
        step = client.guide(vf_id, phi, [phi, [-x for x in phi]], seed=11, P=4)
        check(len(step["direction"]) == d and step["seed"] == 11 and step["P"] == 4, "guide")
        out["guide"] = step
        try:
            client.predict(vf_id, phi[1:])
            check(False, "wrong dimension must raise")
        except ValueApiError as e:
            check(e.status == 400 and e.code == "DIMENSION_MISMATCH", f"dimension error, got {e.status} {e.code}")
            out["dimensionError"] = e.message
        try:
            client.predict("nope", phi)
            check(False, "unknown id must raise")
        except ValueApiError as e:
            check(e.status == 404 and e.code == "VALUE_FUNCTION_NOT_FOUND", "404")
        local_errors = {}
        for name, call in [
            ("nan", lambda: client.predict(vf_id, [float("nan")] + phi[1:])),
            ("inf in a loss gradient", lambda: client.guide(vf_id, phi, [phi, [float("inf")] * d])),
            ("not a number", lambda: client.gradient(vf_id, [phi, ["x"] * d])),
            ("beyond float32", lambda: client.predict_binary(vf_id, [[1e39] + phi[1:]])),
            ("ragged rows", lambda: client.gradient_binary(vf_id, [phi, phi[1:]])),
            ("rows not sequences", lambda: client.predict_binary(vf_id, phi)),
        ]:
            try:
                call()
                check(False, f"{name} must raise")
            except ValueApiError as e:
                check(e.status == 0, f"{name}: status {e.status}")
                local_errors[name] = [e.code, e.message]
        out["localErrors"] = local_errors
    out["invalidResponse"] = not_json_answer()
    try:
        ValueApiClient(url, api_key="wrong").list_value_functions()
        check(False, "wrong key must raise")
    except ValueApiError as e:
        check(e.status == 401 and e.code == "UNAUTHORIZED", "401")
    try:
        ValueApiClient("http://127.0.0.1:9", retries=1, backoff=0.01).health()
        check(False, "unreachable must raise")
    except ValueApiError as e:
        check(e.status == 0 and e.code == "NETWORK", "network error")
    print(json.dumps(out))


def not_json_answer() -> list:
    """What the client raises for a 200 whose body is HTML (a captive portal, a proxy page)."""

    class Html(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<html>proxy login</html>"
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Html)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        ValueApiClient(f"http://127.0.0.1:{server.server_address[1]}", retries=0).health()
        check(False, "a non-JSON 200 must raise")
    except ValueApiError as e:
        return [e.status, e.code, e.message]
    finally:
        server.shutdown()
    return []


if __name__ == "__main__":
    main()

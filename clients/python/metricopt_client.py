"""Python client of the MetricOpt value-function API, standard library only.

    from metricopt_client import ValueApiClient
    client = ValueApiClient("http://127.0.0.1:8787", api_key="...")
    step = client.guide("a9a-mcr", phi=[...], loss_gradients=[g1, g2, g3])
    phi = [p - 0.05 * u for p, u in zip(phi, step["direction"])]

Every route of docs/value-api.md has a method; `predict_binary` / `gradient_binary` use the
little-endian float32 form for the lowest latency. Calls reuse one HTTP connection and retry
with exponential backoff on 5xx and network errors (never on 4xx, which raise ValueApiError
at once with the server's stable error code).
"""

from __future__ import annotations

import http.client
import json
import random
import struct
import time
import urllib.parse
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

__all__ = ["ValueApiClient", "ValueApiError"]

Vector = Sequence[float]
Batch = Sequence[Vector]

VERSION_HEADER = "x-value-function-version"


class ValueApiError(Exception):
    """An error answer of the API (status 0 = the server could not be reached)."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"[{code}] {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details


class ValueApiClient:
    def __init__(
        self,
        base_url: str,
        api_key: Optional[str] = None,
        retries: int = 3,
        backoff: float = 0.1,
        timeout: float = 10.0,
    ) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"base_url must be http(s)://host[:port][/prefix], got {base_url!r}")
        self._scheme = parsed.scheme
        self._host = parsed.hostname
        self._port = parsed.port
        self._prefix = parsed.path.rstrip("/")
        self._api_key = api_key
        self._retries = retries
        self._backoff = backoff
        self._timeout = timeout
        self._conn: Optional[http.client.HTTPConnection] = None

    # -- routes -------------------------------------------------------------------------------

    def health(self) -> Dict[str, Any]:
        return self._json("GET", "/healthz")

    def openapi(self) -> Dict[str, Any]:
        return self._json("GET", "/openapi.json")

    def list_value_functions(self) -> List[Dict[str, Any]]:
        return self._json("GET", "/v1/value-functions")["valueFunctions"]

    def get_value_function(self, vf_id: str) -> Dict[str, Any]:
        return self._json("GET", f"/v1/value-functions/{urllib.parse.quote(vf_id, safe='')}")

    def predict(self, vf_id: str, phi: Union[Vector, Batch], version: Optional[int] = None) -> Dict[str, Any]:
        """Metric estimates: {"values": [...natural direction], "normalised": [...], "version": n}."""
        return self._json("POST", self._path(vf_id, "predict", version), {"phi": _plain(phi)})

    def gradient(self, vf_id: str, phi: Union[Vector, Batch], version: Optional[int] = None) -> Dict[str, Any]:
        """Estimates plus "gradients": d(normalised, lower-is-better value)/d(phi), one row per phi."""
        return self._json("POST", self._path(vf_id, "gradient", version), {"phi": _plain(phi)})

    def guide(
        self,
        vf_id: str,
        phi: Vector,
        loss_gradients: Batch,
        P: Optional[int] = None,
        sigma2: Optional[float] = None,
        seed: Optional[int] = None,
        version: Optional[int] = None,
    ) -> Dict[str, Any]:
        """Guided-ES descent direction (MetricOpt Eq. 3-4): step with phi <- phi - alpha * direction."""
        body: Dict[str, Any] = {"phi": _plain(phi), "lossGradients": [_plain(g) for g in loss_gradients]}
        if P is not None:
            body["P"] = P
        if sigma2 is not None:
            body["sigma2"] = sigma2
        if seed is not None:
            body["seed"] = seed
        return self._json("POST", self._path(vf_id, "guide", version), body)

    def predict_binary(self, vf_id: str, rows: Batch, version: Optional[int] = None) -> Tuple[List[float], int]:
        """(values, version) through the float32 form; rows is n x d."""
        data, served = self._binary(self._path(vf_id, "predict", version), rows)
        return data, served

    def gradient_binary(
        self, vf_id: str, rows: Batch, version: Optional[int] = None
    ) -> Tuple[List[float], List[List[float]], int]:
        """(values, gradients n x d, version) through the float32 form."""
        data, served = self._binary(self._path(vf_id, "gradient", version), rows)
        n = len(rows)
        d = len(rows[0])
        gradients = [data[n + r * d : n + (r + 1) * d] for r in range(n)]
        return data[:n], gradients, served

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> "ValueApiClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport ----------------------------------------------------------------------------

    def _path(self, vf_id: str, op: str, version: Optional[int]) -> str:
        query = "" if version is None else f"?version={int(version)}"
        return f"/v1/value-functions/{urllib.parse.quote(vf_id, safe='')}/{op}{query}"

    def _json(self, method: str, path: str, body: Any = None) -> Any:
        payload = None if body is None else json.dumps(body, allow_nan=False).encode("utf-8")
        status, _, data = self._send(method, path, payload, "application/json")
        return json.loads(data)

    def _binary(self, path: str, rows: Batch) -> Tuple[List[float], int]:
        flat = [float(x) for row in rows for x in row]
        payload = struct.pack(f"<{len(flat)}f", *flat)
        _, headers, data = self._send("POST", path, payload, "application/octet-stream")
        values = list(struct.unpack(f"<{len(data) // 4}f", data))
        return values, int(headers.get(VERSION_HEADER, "0"))

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=self._timeout)
        return self._conn

    def _send(
        self, method: str, path: str, payload: Optional[bytes], content_type: str
    ) -> Tuple[int, Dict[str, str], bytes]:
        headers = {"accept": "application/json"}
        if payload is not None:
            headers["content-type"] = content_type
        if self._api_key:
            headers["authorization"] = f"Bearer {self._api_key}"
        last: Optional[ValueApiError] = None
        for attempt in range(self._retries + 1):
            if attempt:
                time.sleep(self._backoff * (2 ** (attempt - 1)) * (0.5 + random.random()))
            try:
                conn = self._connection()
                conn.request(method, self._prefix + path, body=payload, headers=headers)
                res = conn.getresponse()
                data = res.read()
                res_headers = {k.lower(): v for k, v in res.getheaders()}
            except (OSError, http.client.HTTPException) as e:
                self.close()  # a broken keep-alive connection: reconnect on the next try
                last = ValueApiError(0, "NETWORK", f"value API unreachable: {e}")
                continue
            if 200 <= res.status < 300:
                return res.status, res_headers, data
            error = _error(res.status, data)
            if res.status < 500:
                raise error
            last = error
        assert last is not None
        raise last


def _error(status: int, data: bytes) -> ValueApiError:
    try:
        err = json.loads(data)["error"]
        return ValueApiError(status, err["code"], err["message"], err.get("details"))
    except (ValueError, KeyError, TypeError):
        return ValueApiError(status, f"HTTP_{status}", data[:200].decode("utf-8", "replace"))


def _plain(x: Any) -> Any:
    """Lists of floats from lists, tuples, or anything with .tolist() (numpy arrays, torch tensors)."""
    if hasattr(x, "tolist"):
        return x.tolist()
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return float(x)

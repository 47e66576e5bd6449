"""Python client of the MetricOpt value-function API, standard library only.

    from metricopt_client import ValueApiClient
    client = ValueApiClient("http://127.0.0.1:8787", api_key="...")
    step = client.guide("a9a-mcr", phi=[...], loss_gradients=[g1, g2, g3])
    phi = [p - 0.05 * u for p, u in zip(phi, step["direction"])]

Bring your own model (docs/bring-your-own-model.md): a `Recorder` logs phi and the metric in
your own training loop, and `Recorder.fit` uploads them, fits a value function on the service
and waits for it; then `guide` / `gradient` against it.

Every route of docs/value-api.md has a method; `predict_binary` / `gradient_binary` use the
little-endian float32 form for the lowest latency. Calls reuse one HTTP connection and retry
with exponential backoff on 5xx and network errors (never on 4xx, which raise ValueApiError
at once with the server's stable error code).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import math
import random
import struct
import time
import urllib.parse
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

__all__ = ["ValueApiClient", "ValueApiError", "Recorder"]

Vector = Sequence[float]
Batch = Sequence[Vector]

VERSION_HEADER = "x-value-function-version"


class ValueApiError(Exception):
    """An error answer of the API, with the server's stable code.

    status 0: nothing was answered, either because the server could not be reached (NETWORK) or
    because the input was refused before sending (NOT_FINITE: NaN, Infinity, or beyond float32 in
    the binary form; INVALID_INPUT: not a number; DIMENSION_MISMATCH: rows of unequal length).
    A success status whose body is not what the route answers is INVALID_RESPONSE.
    """

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
        return self._json("POST", self._path(vf_id, "predict", version), {"phi": _plain(phi, "predict: phi")})

    def gradient(self, vf_id: str, phi: Union[Vector, Batch], version: Optional[int] = None) -> Dict[str, Any]:
        """Estimates plus "gradients": d(normalised, lower-is-better value)/d(phi), one row per phi."""
        return self._json("POST", self._path(vf_id, "gradient", version), {"phi": _plain(phi, "gradient: phi")})

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
        body: Dict[str, Any] = {
            "phi": _plain(phi, "guide: phi"),
            "lossGradients": [_plain(g, f"guide: lossGradients[{i}]") for i, g in enumerate(loss_gradients)],
        }
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
        n, d = _shape(rows, "gradient_binary")
        data, served = self._binary(self._path(vf_id, "gradient", version), rows)
        if len(data) != n + n * d:
            raise ValueApiError(
                200,
                "DIMENSION_MISMATCH",
                f"gradient_binary: the answer has {len(data)} values, not n + n x d = {n + n * d}",
            )
        gradients = [data[n + r * d : n + (r + 1) * d] for r in range(n)]
        return data[:n], gradients, served

    # -- fit jobs (bring your own model) --------------------------------------------------------

    def create_fit_job(
        self,
        job_id: str,
        value_function_id: str,
        direction: str,
        metric_name: str = "metric",
        recipe: Optional[str] = None,
        seed: Optional[int] = None,
        overrides: Optional[Dict[str, Any]] = None,
    ) -> Dict[str, Any]:
        """Creates a fit job (the same spec again is fine); answers its summary."""
        body: Dict[str, Any] = {
            "id": job_id,
            "metric": {"name": metric_name, "direction": direction},
            "output": {"valueFunctionId": value_function_id},
        }
        if recipe is not None:
            body["recipe"] = recipe
        if seed is not None:
            body["seed"] = seed
        if overrides is not None:
            body["overrides"] = overrides
        return self._json("POST", "/v1/fit-jobs", body)

    def upload_observations(
        self, job_id: str, lines: Sequence[Dict[str, Any]], max_batch_bytes: int = 4 * 1024 * 1024
    ) -> Dict[str, Any]:
        """Uploads observation lines ({trajectory, step, phi, metric?}) in batches under
        max_batch_bytes (the server's body limit is 6 MiB by default). Uploads are idempotent per
        (trajectory, step), so a retried batch is never counted twice. Answers the last batch's
        counts with "accepted" and "duplicates" summed over all batches."""
        path = f"/v1/fit-jobs/{urllib.parse.quote(job_id, safe='')}/observations"
        totals = {"accepted": 0, "duplicates": 0}
        last: Dict[str, Any] = {}
        batch: List[bytes] = []
        size = 0

        def flush() -> None:
            nonlocal batch, size, last
            if not batch:
                return
            status, _, data = self._send("POST", path, b"".join(batch), "application/x-ndjson")
            last = json.loads(data)
            totals["accepted"] += last["accepted"]
            totals["duplicates"] += last["duplicates"]
            batch, size = [], 0

        for i, line in enumerate(lines):
            obj: Dict[str, Any] = {
                "trajectory": str(line["trajectory"]),
                "step": int(line["step"]),
                "phi": _plain(line["phi"], f"upload_observations: lines[{i}].phi"),
            }
            if line.get("metric") is not None:
                obj["metric"] = _plain(line["metric"], f"upload_observations: lines[{i}].metric")
            if line.get("predictions") is not None:
                obj["predictions"] = {"evaluator": str(line["predictions"]["evaluator"]), "key": str(line["predictions"]["key"])}
            raw = (json.dumps(obj, allow_nan=False) + "\n").encode("utf-8")
            if size + len(raw) > max_batch_bytes:
                flush()
            batch.append(raw)
            size += len(raw)
        flush()
        return {**last, **totals}

    def upload_labels(
        self,
        job_id: str,
        labels: Sequence[int],
        classes: int,
        rows: Optional[Sequence[int]] = None,
        context: Optional[Dict[str, Vector]] = None,
    ) -> Dict[str, Any]:
        """Uploads the labels that prediction lines are scored on (once per job; the same labels
        again are fine), optionally with the examples' `rows` (their 0-based indices in your data
        set, each once) and per-row `context` columns ({name: one finite number per label}): the
        evaluator gets them as EvaluationInput.rows / .context. A context value that is not a
        finite number raises NOT_FINITE / INVALID_INPUT before anything is sent; a wrong length
        or a repeated row is the server's 400 PREDICTIONS_INVALID, and nothing is stored."""
        body = _labels_body(labels, classes, rows, context)
        return self._json("POST", f"/v1/fit-jobs/{urllib.parse.quote(job_id, safe='')}/labels", body)

    def upload_predictions(self, job_id: str, key: str, predictions: Any) -> Dict[str, Any]:
        """Uploads one set of predictions (n scores for two classes, n x classes otherwise,
        sent as little-endian float32) under `key`, for lines that carry
        {"predictions": {"evaluator": NAME, "key": key}}; a registered evaluator scores them
        when the fit runs."""
        flat = _plain(predictions, f"upload_predictions: {key}")
        flat = [x for row in flat for x in row] if flat and isinstance(flat[0], list) else flat
        try:
            payload = struct.pack(f"<{len(flat)}f", *flat)
        except OverflowError:
            raise ValueApiError(0, "NOT_FINITE", f"upload_predictions: {key}: a value is beyond the float32 range") from None
        path = f"/v1/fit-jobs/{urllib.parse.quote(job_id, safe='')}/predictions/{urllib.parse.quote(key, safe='')}"
        _, _, data = self._send("POST", path, payload, "application/octet-stream")
        return json.loads(data)

    def start_fit_job(self, job_id: str) -> Dict[str, Any]:
        return self._json("POST", f"/v1/fit-jobs/{urllib.parse.quote(job_id, safe='')}/start", {})

    def cancel_fit_job(self, job_id: str) -> Dict[str, Any]:
        """Cancels the job: it stops, or never runs (a done job stays done)."""
        return self._json("POST", f"/v1/fit-jobs/{urllib.parse.quote(job_id, safe='')}/cancel", {})

    def fit_job(self, job_id: str) -> Dict[str, Any]:
        return self._json("GET", f"/v1/fit-jobs/{urllib.parse.quote(job_id, safe='')}")

    def wait_fit_job(
        self,
        job_id: str,
        poll: float = 1.0,
        timeout: Optional[float] = 3600.0,
        progress: Optional[Any] = None,
    ) -> Dict[str, Any]:
        """Polls the job until it is done (answers its summary), or raises ValueApiError:
        FIT_JOB_FAILED (failed or interrupted), FIT_JOB_STALLED (its runner stopped renewing its
        lease; start_fit_job re-queues it), FIT_JOB_CANCELLED, or TIMEOUT after `timeout`
        seconds (default one hour; None waits forever). `progress(summary)` is called on every
        change of state or stage; by default one line per change goes to stderr."""
        import sys

        start = time.monotonic()
        seen = None
        while True:
            summary = self.fit_job(job_id)
            status = summary.get("status") or {}
            key = (summary["state"], status.get("stage"))
            if key != seen:
                seen = key
                if progress is not None:
                    progress(summary)
                else:
                    held = status.get("heldOut") or {}
                    extra = f", held-out Spearman {held['spearman']:.3f}" if held.get("spearman") is not None else ""
                    print(f"fit job {job_id}: {key[0]} (stage {key[1] or '-'}){extra}", file=sys.stderr)
            if summary["state"] == "done":
                return summary
            if summary["state"] in ("failed", "interrupted"):
                last = status.get("lastError") or {}
                raise ValueApiError(
                    200,
                    "FIT_JOB_FAILED",
                    f"fit job {job_id} {summary['state']}: [{last.get('code')}] {last.get('message')}",
                    summary,
                )
            if summary["state"] == "stalled":
                raise ValueApiError(
                    200,
                    "FIT_JOB_STALLED",
                    f"fit job {job_id} stalled: its runner stopped (a server restart?); start_fit_job re-queues it",
                    summary,
                )
            if summary["state"] == "cancelled":
                raise ValueApiError(200, "FIT_JOB_CANCELLED", f"fit job {job_id} was cancelled", summary)
            if timeout is not None and time.monotonic() - start > timeout:
                raise ValueApiError(0, "TIMEOUT", f"fit job {job_id} still {summary['state']} after {timeout} s")
            time.sleep(poll)

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
        try:
            return json.loads(data)
        except ValueError:
            text = data[:80].decode("utf-8", "replace")
            raise ValueApiError(
                status, "INVALID_RESPONSE", f"{method} {path}: HTTP {status} with a body that is not JSON: {text!r}"
            ) from None

    def _binary(self, path: str, rows: Batch) -> Tuple[List[float], int]:
        _shape(rows, "binary")
        flat = [x for row in _plain(rows, "binary: rows") for x in row]
        try:
            payload = struct.pack(f"<{len(flat)}f", *flat)
        except OverflowError:
            at = next(i for i, x in enumerate(flat) if abs(x) > FLOAT32_MAX)
            raise ValueApiError(0, "NOT_FINITE", f"binary: value {flat[at]!r} is beyond the float32 range") from None
        status, headers, data = self._send("POST", path, payload, "application/octet-stream")
        if not headers.get("content-type", "").lower().startswith("application/octet-stream") or len(data) % 4:
            raise ValueApiError(
                status,
                "INVALID_RESPONSE",
                f"POST {path}: HTTP {status} with {len(data)} bytes of {headers.get('content-type')!r}, not float32 values",
            )
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


FLOAT32_MAX = 3.4028234663852886e38


def _plain(x: Any, where: str) -> Any:
    """Lists of finite floats from lists, tuples, or anything with .tolist() (numpy arrays, torch
    tensors); a NaN, an infinity or a non-number raises ValueApiError (status 0) naming the entry."""
    if hasattr(x, "tolist"):
        x = x.tolist()
    if isinstance(x, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(x)]
    try:
        f = float(x)
    except (TypeError, ValueError):
        raise ValueApiError(0, "INVALID_INPUT", f"{where} is {x!r}, not a number") from None
    if not math.isfinite(f):
        raise ValueApiError(0, "NOT_FINITE", f"{where} is {f!r}; JSON cannot carry it")
    return f


def _index(x: Any, where: str) -> int:
    """An integer given as an int or a whole float (never truncated); else INVALID_INPUT."""
    try:
        f = float(x)
    except (TypeError, ValueError):
        raise ValueApiError(0, "INVALID_INPUT", f"{where} is {x!r}, not a row index") from None
    if not f.is_integer():
        raise ValueApiError(0, "INVALID_INPUT", f"{where} is {x!r}, not a row index")
    return int(x) if isinstance(x, int) else int(f)


def _labels_body(labels: Any, classes: int, rows: Any, context: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """The labels upload's JSON body (numpy arrays welcome); context values checked finite."""
    if hasattr(labels, "tolist"):
        labels = labels.tolist()
    body: Dict[str, Any] = {"classes": int(classes), "labels": [int(v) for v in labels]}
    if rows is not None:
        if hasattr(rows, "tolist"):
            rows = rows.tolist()
        body["rows"] = [_index(v, f"upload_labels: rows[{i}]") for i, v in enumerate(rows)]
    if context is not None:
        body["context"] = {str(name): _plain(values, f"upload_labels: context.{name}") for name, values in context.items()}
    return body


def _shape(rows: Any, op: str) -> Tuple[int, int]:
    """(n, d) of n x d rows, all of one length d >= 1 (else DIMENSION_MISMATCH, status 0)."""
    if hasattr(rows, "tolist"):
        rows = rows.tolist()
    try:
        lengths = {len(r) for r in rows} if len(rows) else {0}
    except TypeError:
        raise ValueApiError(0, "INVALID_INPUT", f"{op}: rows must be a sequence of n rows of d numbers") from None
    if len(lengths) != 1 or 0 in lengths:
        raise ValueApiError(0, "DIMENSION_MISMATCH", f"{op}: rows must all have the same length >= 1, got {sorted(lengths)}")
    return len(rows), lengths.pop()


class Recorder:
    """Records a training loop's adapter vectors and metric observations for a fit job.

        rec = Recorder()
        rec.log("run-3", step, phi)          # every step (or every few)
        rec.observe("run-3", step, value)    # at the few steps where the metric was measured
        vf = rec.fit(client, "my-job", "my-model-f1", direction="maximize")

    Or let a registered evaluator (your proprietary scorer, behind the evaluation queue) score
    predictions instead of observing the value in the loop:

        rec.labels(y_val, classes=2)                             # once (rows=, context= if
                                                                 # the metric needs them)
        rec.observe_predictions("run-3", step, scores, "my-f1")  # instead of observe()

    A value observed at a step must have its phi logged at that step too (any order).
    """

    def __init__(self) -> None:
        self._phi: Dict[Tuple[str, int], List[float]] = {}
        self._metric: Dict[Tuple[str, int], float] = {}
        self._predictions: Dict[Tuple[str, int], Tuple[str, List[float]]] = {}
        self._labels: Optional[Dict[str, Any]] = None

    def labels(
        self,
        labels: Sequence[int],
        classes: int,
        rows: Optional[Sequence[int]] = None,
        context: Optional[Dict[str, Vector]] = None,
    ) -> None:
        """The labels that observe_predictions' scores are on (the validation split), with the
        examples' rows and context columns if the metric needs them (see upload_labels)."""
        self._labels = _labels_body(labels, classes, rows, context)

    def observe_predictions(self, trajectory: str, step: int, predictions: Any, evaluator: str) -> None:
        """Predictions at this step, to be scored by the registered evaluator `evaluator`."""
        where = f"observe_predictions: predictions of {trajectory!r} step {step}"
        flat = _plain(predictions, where)
        flat = [x for row in flat for x in row] if flat and isinstance(flat[0], list) else flat
        self._predictions[(str(trajectory), int(step))] = (str(evaluator), flat)

    @staticmethod
    def _key(trajectory: str, step: int) -> str:
        # Stable per (trajectory, step), so a retried upload names the same predictions.
        name = json.dumps([trajectory, step], separators=(",", ":"), ensure_ascii=False)
        return "p-" + hashlib.sha256(name.encode("utf-8")).hexdigest()[:24] + ".f32"

    def log(self, trajectory: str, step: int, phi: Any) -> None:
        self._phi[(str(trajectory), int(step))] = _plain(phi, f"log: phi of {trajectory!r} step {step}")

    def observe(self, trajectory: str, step: int, value: float) -> None:
        self._metric[(str(trajectory), int(step))] = _plain(value, f"observe: value of {trajectory!r} step {step}")

    def lines(self) -> List[Dict[str, Any]]:
        missing = [k for k in [*self._metric, *self._predictions] if k not in self._phi]
        if missing:
            t, s = missing[0]
            raise ValueApiError(0, "INVALID_INPUT", f"observe: {t!r} step {s} has a metric value but no logged phi")
        out = []
        for (t, s), phi in sorted(self._phi.items()):
            line: Dict[str, Any] = {"trajectory": t, "step": s, "phi": phi}
            if (t, s) in self._metric:
                line["metric"] = self._metric[(t, s)]
            elif (t, s) in self._predictions:
                line["predictions"] = {"evaluator": self._predictions[(t, s)][0], "key": self._key(t, s)}
            out.append(line)
        return out

    def upload(self, client: ValueApiClient, job_id: str) -> Dict[str, Any]:
        """Uploads the labels and predictions (if any), then the observation lines."""
        lines = self.lines()
        if self._predictions:
            if self._labels is None:
                raise ValueApiError(0, "INVALID_INPUT", "observe_predictions: call labels(y, classes) first")
            body = self._labels
            client.upload_labels(job_id, body["labels"], body["classes"], body.get("rows"), body.get("context"))
            for (t, s), (_, values) in sorted(self._predictions.items()):
                client.upload_predictions(job_id, self._key(t, s), values)
        return client.upload_observations(job_id, lines)

    def fit(
        self,
        client: ValueApiClient,
        job_id: str,
        value_function_id: str,
        direction: str,
        metric_name: str = "metric",
        poll: float = 1.0,
        timeout: Optional[float] = 3600.0,
        **job: Any,
    ) -> Dict[str, Any]:
        """Creates the job, uploads, starts it and waits; answers the job summary (its
        status.valueFunction names the version to guide with)."""
        client.create_fit_job(job_id, value_function_id, direction, metric_name, **job)
        self.upload(client, job_id)
        client.start_fit_job(job_id)
        return client.wait_fit_job(job_id, poll=poll, timeout=timeout)

"""Checks the Recorder's scoring by a registered evaluator against a running server (used by
test/byom/clients.e2e.test.ts): labels once, predictions instead of metric values at the observed
steps, fit through the service, then the job summary.

    python3 check_fit_predictions.py URL API_KEY CASE.json JOB_ID VF_ID

CASE.json: {"classes", "labels", "rows"?, "context"?, "evaluator", "lines": [{"trajectory", "step",
"phi", "scores"?}]}. With "context", first the refusals: labels whose first context column is one
value short (400 PREDICTIONS_INVALID) and with a NaN in it (NOT_FINITE, nothing sent), and the
job's labels after them (null: nothing stored).
"""

import json
import sys

from metricopt_client import Recorder, ValueApiClient, ValueApiError


def refused(call) -> dict:
    try:
        call()
    except ValueApiError as e:
        return {"status": e.status, "code": e.code, "message": e.message, "details": e.details}
    return {"status": None}


def main() -> None:
    url, key, path, job_id, vf_id = sys.argv[1:6]
    with open(path) as f:
        case = json.load(f)
    rec = Recorder()
    rec.labels(case["labels"], classes=case["classes"], rows=case.get("rows"), context=case.get("context"))
    for line in case["lines"]:
        rec.log(line["trajectory"], line["step"], line["phi"])
        if "scores" in line:
            rec.observe_predictions(line["trajectory"], line["step"], line["scores"], case["evaluator"])
    client = ValueApiClient(url, api_key=key, timeout=60)
    client.create_fit_job(job_id, vf_id, "minimize", metric_name=case["evaluator"], overrides={"metaTrain": {"ensemble": 1}})
    refusals = []
    if case.get("context"):
        name, values = next(iter(case["context"].items()))
        for bad in (values[:-1], [float("nan"), *values[1:]]):
            refusals.append(
                refused(lambda: client.upload_labels(job_id, case["labels"], case["classes"], case.get("rows"), {name: bad}))
            )
        refusals.append({"labelsAfter": client.fit_job(job_id)["uploads"]["labels"]})
    first = rec.upload(client, job_id)
    # Retried: the labels, every prediction set and every line are stored once.
    again = rec.upload(client, job_id)
    client.start_fit_job(job_id)
    summary = client.wait_fit_job(job_id, poll=0.1, timeout=120)
    print(json.dumps({"first": first, "again": again, "summary": summary, "refused": refusals}))


if __name__ == "__main__":
    main()

"""Checks the Recorder's scoring by a registered evaluator against a running server (used by
test/byom/clients.e2e.test.ts): labels once, predictions instead of metric values at the observed
steps, fit through the service, then the job summary.

    python3 check_fit_predictions.py URL API_KEY CASE.json JOB_ID VF_ID

CASE.json: {"classes", "labels", "evaluator", "lines": [{"trajectory", "step", "phi", "scores"?}]}
"""

import json
import sys

from metricopt_client import Recorder, ValueApiClient


def main() -> None:
    url, key, path, job_id, vf_id = sys.argv[1:6]
    with open(path) as f:
        case = json.load(f)
    rec = Recorder()
    rec.labels(case["labels"], classes=case["classes"])
    for line in case["lines"]:
        rec.log(line["trajectory"], line["step"], line["phi"])
        if "scores" in line:
            rec.observe_predictions(line["trajectory"], line["step"], line["scores"], case["evaluator"])
    client = ValueApiClient(url, api_key=key, timeout=60)
    client.create_fit_job(job_id, vf_id, "minimize", metric_name=case["evaluator"], overrides={"metaTrain": {"ensemble": 1}})
    first = rec.upload(client, job_id)
    # Retried: the labels, every prediction set and every line are stored once.
    again = rec.upload(client, job_id)
    client.start_fit_job(job_id)
    summary = client.wait_fit_job(job_id, poll=0.1, timeout=120)
    print(json.dumps({"first": first, "again": again, "summary": summary}))


if __name__ == "__main__":
    main()

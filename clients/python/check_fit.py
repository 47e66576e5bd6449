"""Checks the fit-job half of the Python client against a running server (used by
test/byom/clients.e2e.test.ts): records the observations of a JSON-lines file with a Recorder as a
training loop would, fits through the service with progress, then asks for gradients.

    python3 check_fit.py URL API_KEY OBSERVATIONS.jsonl JOB_ID VF_ID
"""

import json
import sys

from metricopt_client import Recorder, ValueApiClient, ValueApiError


def main() -> None:
    url, key, path, job_id, vf_id = sys.argv[1:6]
    rec = Recorder()
    with open(path) as f:
        for raw in f:
            line = json.loads(raw)
            rec.log(line["trajectory"], line["step"], line["phi"])
            if "metric" in line:
                rec.observe(line["trajectory"], line["step"], line["metric"])
    client = ValueApiClient(url, api_key=key, timeout=60)
    seen = []
    client.create_fit_job(job_id, vf_id, "minimize", metric_name="bowl", overrides={"metaTrain": {"ensemble": 1}})
    # A small batch size forces several batches; uploading twice counts nothing twice.
    first = client.upload_observations(job_id, rec.lines(), max_batch_bytes=4096)
    again = client.upload_observations(job_id, rec.lines(), max_batch_bytes=4096)
    client.start_fit_job(job_id)
    summary = client.wait_fit_job(job_id, poll=0.1, timeout=120, progress=lambda s: seen.append(s["state"]))
    phi = rec.lines()[0]["phi"]
    gradient = client.gradient(vf_id, [phi])
    missing = Recorder()
    missing.observe("t", 3, 0.5)
    try:
        missing.lines()
        missing_error = None
    except ValueApiError as e:
        missing_error = [e.code, e.message]
    print(
        json.dumps(
            {
                "first": first,
                "again": again,
                "states": seen,
                "summary": summary,
                "phi": phi,
                "gradient": gradient,
                "missingPhi": missing_error,
            }
        )
    )


if __name__ == "__main__":
    main()

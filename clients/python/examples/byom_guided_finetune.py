"""Bring your own model: fit a value function to YOUR model's phi through the service, then
fine-tune with its guidance (MetricOpt, docs/bring-your-own-model.md).

What happens, per seed:
  1. A PyTorch MLP (123 -> 64 -> 32 -> 1, LeakyReLU) is pre-trained on A9A with class-balanced
     cross-entropy, then frozen. Its adapter phi (d = 9) is 8 dynamic input biases (concatenated
     to the input) and 1 bias on the output logit; phi = 0 is the pre-trained model.
  2. Loss-only fine-tuning runs of phi from random phi_0 ~ N(0, 1) (Adam, T steps) are recorded
     with the Recorder: phi at every step, the metric (MCR, misclassification rate) measured on
     validation half A at K steps only (t = 0, t = T and K - 2 random ones).
  3. The service fits a value function to them (POST /v1/fit-jobs ..., wait with progress).
  4. From the pre-trained point phi = 0, two fine-tunings of the same model, T steps each:
       guided:    Adam on  grad f(phi) (from the service) + loss_weight * grad loss(phi)
       loss-only: Adam on  grad loss(phi)   (the balanced loss the model was trained with)
       loss-only, natural: Adam on the unweighted loss (a stronger baseline: it shifts the prior)
     both inside a trust region of radius 2, and each picks its endpoint among 5 points of its
     path by the real metric on validation half B (5 real queries each).
  5. The endpoints (and phi = 0) are scored once on the A9A TEST file, which nothing above read.

    scripts/setup-torch.sh
    npx metricopt serve --store ./byom-store &
    .venv/bin/python clients/python/examples/byom_guided_finetune.py --url http://127.0.0.1:8787 --seeds 1,2,3,4,5

The last stdout line is JSON: per seed the test MCR of each method and the value function's
held-out Spearman, and over the seeds the mean paired differences guided - loss-only (both
baselines) with a 95% t interval and a verdict (better / tie / worse).
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

try:
    import torch
    from torch import nn
except ImportError:  # pragma: no cover - the message is the point
    print("this example needs PyTorch: run scripts/setup-torch.sh (pip install torch==2.13.0)", file=sys.stderr)
    sys.exit(3)

from metricopt_client import Recorder, ValueApiClient  # noqa: E402

FEATURES = 123
D_IN = 8
D = D_IN + 1
HERE = os.path.dirname(os.path.abspath(__file__))
# ../shared/data beside the repository (the benchmark data sets, README.md there).
DATA = os.path.normpath(os.path.join(HERE, "..", "..", "..", "..", "shared", "data"))


def load_libsvm(path: str, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense features (n x 123) and labels in {0, 1} from a gzip LIBSVM file."""
    rows, labels = [], []
    with gzip.open(path, "rt") as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            labels.append(1.0 if float(parts[0]) > 0 else 0.0)
            row = [0.0] * FEATURES
            for item in parts[1:]:
                index, value = item.split(":")
                if int(index) <= FEATURES:
                    row[int(index) - 1] = float(value)
            rows.append(row)
            if limit is not None and len(rows) >= limit:
                break
    return torch.tensor(rows), torch.tensor(labels)


class AdaptedMlp(nn.Module):
    """The backbone; phi[:8] is concatenated to the input, phi[8] is added to the output logit."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(FEATURES + D_IN, 64), nn.LeakyReLU(0.1), nn.Linear(64, 32), nn.LeakyReLU(0.1), nn.Linear(32, 1)
        )

    def forward(self, x: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
        z = self.net(torch.cat([x, phi[:D_IN].expand(x.shape[0], -1)], dim=1)).squeeze(1)
        return z + phi[D_IN]


def mcr(model: AdaptedMlp, x: torch.Tensor, y: torch.Tensor, phi: torch.Tensor) -> float:
    with torch.no_grad():
        return float(((model(x, phi) > 0).float() != y).float().mean())


def fine_tune(model, loss_of, phi0, steps, lr, direction_extra=None, radius=None):
    """Adam on phi for `steps` steps; returns the path phi_0..phi_T (detached)."""
    phi = phi0.clone().requires_grad_(True)
    opt = torch.optim.Adam([phi], lr=lr)
    path = [phi.detach().clone()]
    for t in range(steps):
        loss = loss_of(phi, t)
        (grad,) = torch.autograd.grad(loss, phi)
        if direction_extra is not None:
            grad = grad + direction_extra(phi.detach(), t)
        opt.zero_grad()
        phi.grad = grad
        opt.step()
        if radius is not None:
            with torch.no_grad():
                norm = float((phi - phi0).norm())
                if norm > radius:
                    phi.copy_(phi0 + (phi - phi0) * (radius / norm))
        path.append(phi.detach().clone())
    return path


def pick_endpoint(model, path, x, y, k=5):
    """The best of k evenly spaced path points (including the last) by the real metric on (x, y)."""
    idx = sorted({round(i * (len(path) - 1) / (k - 1)) for i in range(k)})
    scored = [(mcr(model, x, y, path[i]), i) for i in idx]
    best = min(scored)
    return path[best[1]], best[1]


def t975(df: int) -> float:
    table = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}
    return table.get(df, 1.96 if df > 30 else 2.1)


def mean_ci(xs):
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return m, None
    s = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))
    h = t975(len(xs) - 1) * s / math.sqrt(len(xs))
    return m, [m - h, m + h]


def progress(seed, message):
    """One progress line on stderr (stdout carries only the final JSON)."""
    print(f"seed {seed}: {message}", file=sys.stderr, flush=True)


def run_seed(args, client, seed, data):
    x_all, y_all, x_test, y_test = data
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(y_all), generator=g)
    n_train = int(0.7 * len(order))
    n_val = (len(order) - n_train) // 2
    tr, va, vb = order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :]
    x_tr, y_tr = x_all[tr], y_all[tr]
    x_va, y_va = x_all[va], y_all[va]
    x_vb, y_vb = x_all[vb], y_all[vb]
    torch.manual_seed(seed)
    rnd = random.Random(seed)

    # 1. Pre-train with class-balanced cross-entropy at phi = 0, then freeze.
    model = AdaptedMlp()
    pos = float(y_tr.mean())
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor((1 - pos) / pos))
    zero = torch.zeros(D)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    started = time.monotonic()
    every = max(1, args.pretrain_steps // 5)
    for step in range(1, args.pretrain_steps + 1):
        idx = torch.randint(0, len(y_tr), (256,))
        opt.zero_grad()
        loss_fn(model(x_tr[idx], zero), y_tr[idx]).backward()
        opt.step()
        if step % every == 0 or step == args.pretrain_steps:
            progress(seed, f"pre-training {step}/{args.pretrain_steps} steps ({time.monotonic() - started:.1f} s)")
    for p in model.parameters():
        p.requires_grad_(False)

    def batch_loss(phi, _t):
        idx = torch.randint(0, len(y_tr), (args.batch,))
        return loss_fn(model(x_tr[idx], phi), y_tr[idx])

    # 2. Loss-only runs from random phi_0, recorded; the metric on validation half A at K steps.
    rec = Recorder()
    started = time.monotonic()
    every = max(1, args.trajectories // 10)
    for i in range(args.trajectories):
        name = f"run-{i}"
        path = fine_tune(model, batch_loss, torch.randn(D), args.steps, args.lr)
        observed = {0, args.steps, *rnd.sample(range(1, args.steps), args.queries - 2)}
        for t, phi in enumerate(path):
            rec.log(name, t, phi)
            if t in observed:
                rec.observe(name, t, mcr(model, x_va, y_va, phi))
        if (i + 1) % every == 0 and i + 1 < args.trajectories:
            progress(seed, f"recorded {i + 1}/{args.trajectories} trajectories ({time.monotonic() - started:.1f} s)")
    print(
        f"seed {seed}: {args.trajectories} trajectories recorded ({args.trajectories * args.queries} metric queries) "
        f"in {time.monotonic() - started:.1f} s",
        file=sys.stderr,
    )

    # 3. Fit through the service.
    job_id = f"byom-example-s{seed}-{int(time.time() * 1000) % 10**10}"
    progress(seed, f"fitting the value function through the service (fit job {job_id}; the client prints each stage)")
    overrides = {"metaTrain": {"ensemble": args.ensemble}} if args.ensemble else None
    summary = rec.fit(client, job_id, args.id_prefix + f"-s{seed}", "minimize", metric_name="mcr", overrides=overrides)
    vf = summary["status"]["valueFunction"]
    spearman = (summary["status"].get("heldOut") or {}).get("spearman")

    def vf_gradient(phi, _t):
        answer = client.gradient(vf["id"], [phi.tolist()], version=vf["version"])
        return torch.tensor(answer["gradients"][0])

    # 4. From phi = 0: guided vs loss-only, same model, same steps, same endpoint rule.
    def guided_loss(phi, t):
        return batch_loss(phi, t) * args.loss_weight

    progress(seed, f"fine-tuning from phi = 0 ({args.steps} steps each): guided by the value function, then loss-only")
    torch.manual_seed(seed + 500)
    guided_path = fine_tune(model, guided_loss, zero, args.steps, args.lr, direction_extra=vf_gradient, radius=2.0)
    torch.manual_seed(seed + 500)
    loss_path = fine_tune(model, batch_loss, zero, args.steps, args.lr, radius=2.0)
    # A stronger loss-only baseline: the unweighted (natural-frequency) loss, which also shifts the prior.
    natural_fn = nn.BCEWithLogitsLoss()

    def natural_loss(phi, _t):
        idx = torch.randint(0, len(y_tr), (args.batch,))
        return natural_fn(model(x_tr[idx], phi), y_tr[idx])

    torch.manual_seed(seed + 500)
    natural_path = fine_tune(model, natural_loss, zero, args.steps, args.lr, radius=2.0)
    guided_end, guided_at = pick_endpoint(model, guided_path, x_vb, y_vb)
    loss_end, loss_at = pick_endpoint(model, loss_path, x_vb, y_vb)
    natural_end, _ = pick_endpoint(model, natural_path, x_vb, y_vb)

    # 5. The test file, read once per endpoint.
    result = {
        "seed": seed,
        "valueFunction": {**vf, "heldOutSpearman": spearman},
        "testMcr": {
            "pretrained": mcr(model, x_test, y_test, zero),
            "guided": mcr(model, x_test, y_test, guided_end),
            "lossOnly": mcr(model, x_test, y_test, loss_end),
            "lossOnlyNatural": mcr(model, x_test, y_test, natural_end),
        },
        "endpointStep": {"guided": guided_at, "lossOnly": loss_at},
        "guidedPhiNorm": float(guided_end.norm()),
    }
    print(f"seed {seed}: {json.dumps(result['testMcr'])}, value function Spearman {spearman}", file=sys.stderr)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:8787")
    ap.add_argument("--api-key", default=os.environ.get("METRICOPT_API_KEY"))
    ap.add_argument("--id-prefix", default="byom-a9a-mcr", help="value functions are <prefix>-s<seed>")
    ap.add_argument("--train", default=os.path.join(DATA, "a9a.train.libsvm.gz"))
    ap.add_argument("--test", default=os.path.join(DATA, "a9a.test.libsvm.gz"))
    ap.add_argument("--rows", type=int, default=None, help="rows of the training file to use (default all)")
    ap.add_argument("--test-rows", type=int, default=None)
    ap.add_argument("--seeds", default="1", help="comma-separated seeds; each is a whole replicate")
    ap.add_argument("--pretrain-steps", type=int, default=600)
    ap.add_argument("--trajectories", type=int, default=100)
    ap.add_argument("--steps", type=int, default=50, help="T: fine-tuning steps per run")
    ap.add_argument("--queries", type=int, default=5, help="K: metric observations per recorded run")
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--loss-weight", type=float, default=1.0, help="weight of the loss gradient next to grad f")
    ap.add_argument("--ensemble", type=int, default=0, help="value-function ensemble (0: the recipe's)")
    args = ap.parse_args()

    client = ValueApiClient(args.url, api_key=args.api_key, timeout=60)
    x_all, y_all = load_libsvm(args.train, args.rows)
    x_test, y_test = load_libsvm(args.test, args.test_rows)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    runs = [run_seed(args, client, s, (x_all, y_all, x_test, y_test)) for s in seeds]

    def paired(baseline):
        m, ci = mean_ci([r["testMcr"]["guided"] - r["testMcr"][baseline] for r in runs])
        verdict = "no-interval" if ci is None else "better" if ci[1] < 0 else "worse" if ci[0] > 0 else "tie"
        return {"mean": m, "ci95": ci, "verdict": verdict}

    summary = {
        method: dict(zip(("mean", "ci95"), mean_ci([r["testMcr"][method] for r in runs])))
        for method in ("pretrained", "guided", "lossOnly", "lossOnlyNatural")
    }
    print(
        json.dumps(
            {
                "seeds": seeds,
                "runs": runs,
                "testMcr": summary,
                "guidedMinusLossOnly": paired("lossOnly"),
                "guidedMinusLossOnlyNatural": paired("lossOnlyNatural"),
            }
        )
    )


if __name__ == "__main__":
    main()

"""Worked example: fine-tune adapter parameters on A9A with metric guidance from the value API.

A frozen MLP (123 features + d adapter inputs -> 100 -> 30 -> 10 -> 1, LeakyReLU) is trained
with cross-entropy; then only the adapter vector phi ("dynamic input biases", MetricOpt §3) is
tuned. Each step computes the loss gradient with respect to phi, keeps the last k = 3, and
asks the server's /guide route for the Guided-ES direction (Eq. 3-4), in one round trip:

    python3 clients/python/examples/a9a_guided_finetune.py --url http://127.0.0.1:8787 \
        --api-key "$KEY" --id a9a-mcr --steps 50

Needs PyTorch (scripts/setup-torch.sh installs it into .venv); the client itself needs only
the standard library. With a value function trained by `metricopt train` on this adapter the
steps move phi toward a lower metric; with any other checkpoint of the same d the loop still
runs (that is what the tests do).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
from collections import deque

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

try:
    import torch
    from torch import nn
except ImportError:  # pragma: no cover - the message is the point
    print("this example needs PyTorch: run scripts/setup-torch.sh (pip install torch==2.13.0)", file=sys.stderr)
    sys.exit(3)

from metricopt_client import ValueApiClient  # noqa: E402

FEATURES = 123
DEFAULT_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "data", "a9a.train.libsvm.gz")


def load_libsvm(path: str, limit: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense features (n x 123, binary) and labels in {0, 1} from a gzip LIBSVM file."""
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
                row[int(index) - 1] = float(value)
            rows.append(row)
            if len(rows) >= limit:
                break
    return torch.tensor(rows), torch.tensor(labels)


class AdaptedMlp(nn.Module):
    """The backbone with phi concatenated to its input (equivalently an extra first-layer bias A phi)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(FEATURES + d, 100), nn.LeakyReLU(), nn.Linear(100, 30), nn.LeakyReLU(),
            nn.Linear(30, 10), nn.LeakyReLU(), nn.Linear(10, 1),
        )

    def forward(self, x: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, phi.expand(x.shape[0], -1)], dim=1)).squeeze(1)


def mcr(model: AdaptedMlp, x: torch.Tensor, y: torch.Tensor, phi: torch.Tensor) -> float:
    with torch.no_grad():
        return float(((model(x, phi) > 0).float() != y).float().mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:8787")
    ap.add_argument("--api-key", default=os.environ.get("METRICOPT_API_KEY"))
    ap.add_argument("--id", required=True, help="value-function id (its d must be the adapter size)")
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--rows", type=int, default=8000, help="rows of A9A to load")
    ap.add_argument("--pretrain-steps", type=int, default=300)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--alpha", type=float, default=0.5, help="step size on the Guided-ES direction")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    client = ValueApiClient(args.url, api_key=args.api_key)
    d = client.get_value_function(args.id)["d"]

    x, y = load_libsvm(args.data, args.rows)
    split = int(0.8 * len(y))
    x_train, y_train, x_val, y_val = x[:split], y[:split], x[split:], y[split:]

    # Pre-train the backbone with cross-entropy at phi = 0, then freeze it.
    model = AdaptedMlp(d)
    zero = torch.zeros(d)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.BCEWithLogitsLoss()
    for _ in range(args.pretrain_steps):
        idx = torch.randint(0, split, (args.batch,))
        opt.zero_grad()
        loss_fn(model(x_train[idx], zero), y_train[idx]).backward()
        opt.step()
    for p in model.parameters():
        p.requires_grad_(False)

    # MetricOpt meta-test: tune phi only, guided by the value function.
    phi = torch.zeros(d, requires_grad=True)
    recent: deque[list[float]] = deque(maxlen=3)
    history = []
    start_mcr = mcr(model, x_val, y_val, phi.detach())
    for step in range(args.steps):
        idx = torch.randint(0, split, (args.batch,))
        loss = loss_fn(model(x_train[idx], phi), y_train[idx])
        (grad,) = torch.autograd.grad(loss, phi)
        recent.append(grad.tolist())
        guided = client.guide(args.id, phi.detach().tolist(), list(recent), seed=args.seed * 100_003 + step)
        with torch.no_grad():
            phi -= args.alpha * torch.tensor(guided["direction"])
        history.append({"step": step, "loss": float(loss), "value": guided["value"]})
        if step % 10 == 0 or step == args.steps - 1:
            print(f"step {step:3d}  loss {float(loss):.4f}  value-function estimate {guided['value']:.4f}", file=sys.stderr)
    end_mcr = mcr(model, x_val, y_val, phi.detach())
    print(json.dumps({
        "steps": args.steps,
        "d": d,
        "version": guided["version"] if args.steps else None,
        "valMcrStart": start_mcr,
        "valMcrEnd": end_mcr,
        "phiNorm": float(phi.detach().norm()),
        "history": history,
    }))


if __name__ == "__main__":
    main()

"""Reference runs of Python `cmaes` (pinned in scripts/python-tools.txt) for the CMA-ES cross-check.

Reads one JSON object on stdin:
  {"cases": [{"f": "sphere" | "ellipsoid" | "rosenbrock", "d": 4, "budget": 600, "target": 1e-8}, ...],
   "seeds": [0, 1, ...], "x0": 3.0, "sigma0": 2.0, "params_dims": [2, 5, 16]}
and optionally "tells": [{"x0": [...], "sigma0": 2.0, "generations": [[[x, value], ...], ...]}],
and prints {"cases": [{..., "best": [one value per seed], "hits": [evaluations to reach the
target (optional), or null]}], "params": [{"d": ..., ...}],
"tells": [[{"mean", "sigma", "C", "pSigma", "pc"} after each generation]]}.
Budget semantics match shared/method/cma-es.ts `minimize`: ask/evaluate one at a time; a last,
partial generation is evaluated but not told; the best value seen is reported.
"""

import json
import sys

import numpy as np
from cmaes import CMA


def sphere(x):
    return float(np.sum(x * x))


def ellipsoid(x):
    d = len(x)
    return float(sum(10 ** (6 * i / (d - 1)) * x[i] ** 2 for i in range(d)))


def rosenbrock(x):
    return float(np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))


FUNCTIONS = {"sphere": sphere, "ellipsoid": ellipsoid, "rosenbrock": rosenbrock}


def run(f, d, budget, seed, x0, sigma0, target):
    """(best value seen, evaluations until the first value <= target or None)."""
    es = CMA(mean=np.full(d, x0, dtype=float), sigma=sigma0, seed=seed)
    best = float("inf")
    hit = None
    spent = 0
    while spent < budget:
        generation = []
        for _ in range(min(es.population_size, budget - spent)):
            x = es.ask()
            value = f(x)
            spent += 1
            best = min(best, value)
            if hit is None and value <= target:
                hit = spent
            generation.append((x, value))
        if len(generation) == es.population_size:
            es.tell(generation)
    return best, hit


def params(d):
    es = CMA(mean=np.zeros(d), sigma=1.0)
    return {
        "d": d,
        "lambda": es.population_size,
        "mu": es._mu,
        "weights": [float(w) for w in es._weights],
        "muEff": float(es._mu_eff),
        "cSigma": float(es._c_sigma),
        "dSigma": float(es._d_sigma),
        "cc": float(es._cc),
        "c1": float(es._c1),
        "cMu": float(es._cmu),
        "chiN": float(es._chi_n),
    }


def replay(tell):
    """State after each tell of given generations (the strategy's exact arithmetic, no sampling)."""
    es = CMA(mean=np.array(tell["x0"], dtype=float), sigma=tell["sigma0"], seed=0)
    states = []
    for generation in tell["generations"]:
        es.tell([(np.array(x, dtype=float), v) for x, v in generation])
        states.append({
            "mean": es._mean.tolist(),
            "sigma": float(es._sigma),
            "C": es._C.flatten().tolist(),
            "pSigma": es._p_sigma.tolist(),
            "pc": es._pc.tolist(),
        })
    return states


def main():
    spec = json.load(sys.stdin)
    cases = []
    for case in spec.get("cases", []):
        f = FUNCTIONS[case["f"]]
        target = case.get("target", -float("inf"))
        runs = [run(f, case["d"], case["budget"], s, spec["x0"], spec["sigma0"], target) for s in spec["seeds"]]
        cases.append({**case, "best": [r[0] for r in runs], "hits": [r[1] for r in runs]})
    json.dump(
        {
            "cases": cases,
            "params": [params(d) for d in spec.get("params_dims", [])],
            "tells": [replay(t) for t in spec.get("tells", [])],
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()

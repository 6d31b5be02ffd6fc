# The tpe and cmaes proposers' sampler, asked once per proposal. It keeps nothing between calls: every
# trial told so far comes in on stdin, so after any restart the same input asks the same question.
# TPE (Optuna's) is told the trials at once. CMA-ES is rebuilt with the `cmaes` library (Optuna's own
# backend) by telling it the trials in order, a generation at a time: Optuna's CmaEsSampler learns
# nothing from enqueued trials (they are never relatively sampled), so replaying through it restarted
# CMA-ES from its first generation on every call.
# stdin:  {"sampler": "tpe"|"cmaes", "seed": int, "space": {NAME: {"low", "high", "log", "int"}},
#          "trials": [{"params": {NAME: number}, "value": number|null}]}   (null: the training crashed)
# stdout: {NAME: number}
import json
import math
import sys

import cmaes
import numpy as np
import optuna

optuna.logging.set_verbosity(optuna.logging.WARNING)
STARTUP_TRIALS = 5  # random trials before the model takes over, as Optuna's own default for TPE is 10

request = json.load(sys.stdin)
space = {
    name: optuna.distributions.IntDistribution(int(r["low"]), int(r["high"]), log=r["log"])
    if r["int"]
    else optuna.distributions.FloatDistribution(r["low"], r["high"], log=r["log"])
    for name, r in request["space"].items()
}


def inside(params):
    return all(name in params and space[name]._contains(space[name].to_internal_repr(params[name])) for name in space)


def unit(name, value):
    """A knob's value on [0, 1], log-scaled where its range is."""
    r = request["space"][name]
    f = math.log if r["log"] else float
    return (f(value) - f(r["low"])) / (f(r["high"]) - f(r["low"]))


def from_unit(name, u):
    r = request["space"][name]
    u = min(max(float(u), 0.0), 1.0)
    value = math.exp(math.log(r["low"]) + u * (math.log(r["high"]) - math.log(r["low"]))) if r["log"] else r["low"] + u * (r["high"] - r["low"])
    return min(max(int(round(value)), int(r["low"])), int(r["high"])) if r["int"] else value


def ask_cmaes(trials):
    names = list(space)
    values = [t["value"] for t in trials if t["value"] is not None]
    worst = max(values) if values else 0.0  # a crash scores as the worst trial seen: CMA-ES moves away from it
    if len(trials) < STARTUP_TRIALS:
        rng = np.random.default_rng(request["seed"])
        return {name: from_unit(name, rng.uniform()) for name in names}
    optimizer = cmaes.CMA(mean=np.full(len(names), 0.5), sigma=1 / 6, bounds=np.array([[0.0, 1.0]] * len(names)), seed=request["seed"] % 2**31)
    size = optimizer.population_size
    for start in range(0, len(trials) - size + 1, size):
        generation = trials[start : start + size]
        optimizer.tell([(np.array([unit(n, t["params"][n]) for n in names]), worst if t["value"] is None else t["value"]) for t in generation])
    return {name: from_unit(name, u) for name, u in zip(names, optimizer.ask())}


trials = [t for t in request["trials"] if inside(t["params"])]  # a trial outside the space teaches it nothing
if request["sampler"] == "cmaes":
    print(json.dumps(ask_cmaes(trials)))
    sys.exit(0)
sampler = optuna.samplers.TPESampler(seed=request["seed"], n_startup_trials=STARTUP_TRIALS, multivariate=True)
study = optuna.create_study(direction="minimize", sampler=sampler)
for t in trials:
    state = optuna.trial.TrialState.COMPLETE if t["value"] is not None else optuna.trial.TrialState.FAIL
    study.add_trial(optuna.trial.create_trial(params={k: t["params"][k] for k in space}, distributions=space, value=t["value"], state=state))
print(json.dumps(study.ask(space).params))

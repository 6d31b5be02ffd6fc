# The tpe and cmaes proposers' sampler: Optuna's, asked once per proposal. It keeps nothing between calls:
# every trial told so far comes in on stdin, so after any restart the same input asks the same question.
# TPE is told the trials at once; CMA-ES is replayed ask by ask, so its generations are rebuilt too.
# stdin:  {"sampler": "tpe"|"cmaes", "seed": int, "space": {NAME: {"low", "high", "log", "int"}},
#          "trials": [{"params": {NAME: number}, "value": number|null}]}   (null: the training crashed)
# stdout: {NAME: number}
import json
import sys

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


trials = [t for t in request["trials"] if inside(t["params"])]  # a trial outside the space teaches it nothing
if request["sampler"] == "tpe":
    sampler = optuna.samplers.TPESampler(seed=request["seed"], n_startup_trials=STARTUP_TRIALS, multivariate=True)
else:
    sampler = optuna.samplers.CmaEsSampler(seed=request["seed"], n_startup_trials=STARTUP_TRIALS, warn_independent_sampling=False)
study = optuna.create_study(direction="minimize", sampler=sampler)
if request["sampler"] == "tpe":
    for t in trials:
        state = optuna.trial.TrialState.COMPLETE if t["value"] is not None else optuna.trial.TrialState.FAIL
        study.add_trial(optuna.trial.create_trial(params={k: t["params"][k] for k in space}, distributions=space, value=t["value"], state=state))
else:
    for t in trials:
        study.enqueue_trial({k: t["params"][k] for k in space})
        trial = study.ask(space)
        if t["value"] is None:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, t["value"])
print(json.dumps(study.ask(space).params))

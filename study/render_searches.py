"""The report's section on the searches: their progress and cost, and per search its trials and what it learned."""
from __future__ import annotations

import pandas as pd

from study import insights, plots, results
from study.formats import count, duration_text, epochs_text, pct
from study.records import Search


def searches_section(searches: list[Search], directory: str, out) -> str:
    """`out`: the report's `render.Writer`, which saves each figure and table and returns its Markdown."""
    md = ["## Searches"]
    if not searches:
        md.append(f"No search was found in `{directory}`: run `python -m study.search` first, then rerun the "
                  "report (the retrainings above are saved and not repeated).")
        return "\n\n".join(md)
    progress = {s.name: results.best_so_far(s.trials) for s in searches if len(s.trials)}
    if progress:
        md.append(out.figure(plots.best_so_far(progress), "search_progress", "best validation accuracy so far"))
    md.append(cost_text(searches, out))
    md += [search_section(s, out) for s in searches]
    return "\n\n".join(md)


def cost_text(searches: list[Search], out) -> str:
    """What each search spent: epochs trained against the budget of training every configuration fully."""
    rows = [{"search": s.name, "tuner": s.config.tuner, **s.cost()} for s in searches]
    keys = ["search", "tuner", "trials", "configurations", "epochs_trained", "epochs_budget", "saved",
            "best_val_accuracy", "best_after_trials", "best_after_epochs", "seconds"]
    frame = pd.DataFrame([{k: r[k] for k in keys} for r in rows])
    shown = pd.DataFrame([{
        "search": r["search"], "trials": r["trials"], "configurations": r["configurations"],
        "epochs trained / budget": f"{r['epochs_trained']} / {r['epochs_budget']}", "saved": pct(r["saved"]),
        "best val accuracy": pct(r["best_val_accuracy"]),
        "reached after": f"{count(r['best_after_trials'], 'trial')}, {count(r['best_after_epochs'], 'epoch')}"
        if r["best_after_trials"] else "", "compute": duration_text(r["seconds"]),
    } for r in rows])
    return ("Budget: every configuration a search tried, trained for its full epochs; early stopping and "
            "Hyperband's short rounds train less.\n\n" + out.table(frame, "search_cost", shown))


def search_section(s: Search, out) -> str:
    slug = "".join(c if c.isalnum() or c in "-_" else "_" for c in s.name)
    c = s.config
    trials = s.trials.drop(columns="error") if (s.trials["error"].fillna("") == "").all() else s.trials
    if "worker" in trials and trials["worker"].nunique(dropna=False) <= 1:  # one process ran every trial
        trials = trials.drop(columns="worker")
    md = [
        f"### {s.name}",
        f"{c.tuner} search, {count(len(s.trials), 'trial')} of up to {epochs_text(c.epochs)} "
        f"(early stopping {c.early_stopping or 'off'}), seed {c.seed}.",
        out.table(trials, f"trials_{slug}"),
    ]
    if s.best is None:
        md.append("No trial completed: nothing to retrain.")
        return "\n\n".join(md)
    best = str(s.best["trial_id"])
    curves = plots.learning_curves(insights.learning_curves(s.folder, s.trials), best_trial_id=best,
                                   title=f"{s.name}: validation accuracy of every trial")
    parallel = plots.parallel_coordinates(insights.parallel_coordinates(s.trials), title=f"{s.name}: every trial")
    lr = plots.accuracy_vs_learning_rate(s.trials, title=f"{s.name}: validation accuracy against learning rate")
    md += [
        f"Best by validation accuracy: trial {best} ({pct(s.best['val_accuracy'])}).",
        out.figure(curves, f"learning_curves_{slug}", f"{s.name} learning curves"),
        importance_text(s, slug, out),
        out.figure(parallel, f"parallel_{slug}", f"{s.name} parallel coordinates"),
        out.figure(lr, f"lr_{slug}", f"{s.name} learning rates"),
    ]
    if {"dropout_1", "dropout_2", "dropout_3"} <= set(s.trials.columns):  # the notebook CNN's
        dropout = plots.dropout_effect(s.trials, title=f"{s.name}: effect of each dropout rate")
        md.append(out.figure(dropout, f"dropout_{slug}", f"{s.name} dropouts"))
    return "\n\n".join(md)


def importance_text(s: Search, slug: str, out) -> str:
    """Which hyperparameters mattered, when the search has enough completed trials and its forest explains some
    of their scores (out-of-bag R² above 0: otherwise its ranking is noise, and only that is said)."""
    result = insights.hyperparameter_importance(s.trials)
    if result.importances.empty:
        return (f"Hyperparameter importance needs at least {result.needed} completed trials with more than one "
                f"value of a hyperparameter; this search has {result.n_trials}: not computed.")
    if not result.oob_r2 > 0:
        return (f"Hyperparameter importance: a random forest fitted to the {result.n_trials} completed trials explains "
                f"none of their validation accuracy (out-of-bag R² {result.oob_r2:.2f}), so it ranks nothing; not "
                "shown.")
    shown_result = result._replace(importances=result.importances.drop(index=results.BUDGET, errors="ignore"))
    table = shown_result.importances.reset_index()
    shown = table.assign(mean=table["mean"].map("{:.3f}".format), std=table["std"].map("{:.3f}".format))
    budget = (" The forest also took each trial's epochs (Hyperband's rounds), which explain part of its score and "
              "are no hyperparameter: left out of the ranking." if results.BUDGET in result.importances.index else "")
    return "\n\n".join([
        f"Hyperparameter importance from {result.n_trials} completed trials (permutation importance of a random "
        f"forest fitted to them, out-of-bag R² {result.oob_r2:.2f}): a hint, not a measurement; with a handful "
        f"of trials it ranks noise as readily as effects.{budget}",
        out.figure(plots.importance(shown_result, title=f"{s.name}: hyperparameter importance"), f"importance_{slug}",
                   f"{s.name} hyperparameter importance"),
        out.table(table, f"importance_{slug}", shown),
    ])

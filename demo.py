"""`make demo`: materialise what is missing or stale in the toy pipeline, then say where it is.

Runs in-process against $DAGSTER_HOME, so every materialisation (metadata, data versions, checks) shows
up in the UI afterwards (`make ui`). Like the UI's "Materialize unsynced", it asks Dagster which assets and
partitions are missing, or stale by their code and data versions, and materialises only those:
unpartitioned assets first in one run, then the partitioned ones, one run per partition (a language, or a
chunk of a language), as a backfill would; a target downstream of another partitioning waits for it.
An upstream re-run that changes its data version makes its downstream stale only once it has run, so the
demo asks again until nothing is left; a second `make demo` on unchanged input materialises nothing.
An edited profile makes the assets that read the edited section stale (their code versions carry a hash
of it); changed input files outside the lake are not seen (they change no version Dagster knows of):
`python demo.py --all` materialises everything.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import NamedTuple

import dagster as dg
# Internal Dagster (no public API or CLI does "materialise only what is stale" without the daemon): the
# resolver behind the UI's "Materialize unsynced". dagster is pinned to 1.13.* in pyproject.toml and
# tests/test_demo.py covers this use; check it when upgrading Dagster.
from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.definitions.temporal_context import TemporalContext
from dagster._time import get_current_datetime

from assets.translation import partition_of

QUIET = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


class Target(NamedTuple):
    """One asset, or one partition of a partitioned asset, with its status and (when stale) why."""
    key: dg.AssetKey
    partition: str | None
    status: StaleStatus
    why: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.key.to_user_string() + (f"[{self.partition}]" if self.partition is not None else "")


def asset_statuses(defs: dg.Definitions, instance: dg.DagsterInstance) -> list[Target]:
    """Every materialisable asset and partition in topological order, with Dagster's stale status."""
    graph = defs.resolve_asset_graph()
    view = AssetGraphView(temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
                          instance=instance, asset_graph=graph)
    # a fresh resolver each time: it caches what it has read
    resolver = CachingStaleStatusResolver(instance, graph, view)
    out = []
    for key in graph.toposorted_asset_keys:
        node = graph.get(key)
        if not node.is_materializable:
            continue
        # a partitioned asset asked without a partition key always reports FRESH: ask each partition
        parts = (node.partitions_def.get_partition_keys(dynamic_partitions_store=instance)
                 if node.is_partitioned else [None])
        for part in parts:
            status = resolver.get_status(key, part)
            why = (tuple(_cause(c) for c in resolver.get_stale_root_causes(key, part))
                   if status == StaleStatus.STALE else ())
            out.append(Target(key, part, status, why))
    return out


def stale_targets(defs: dg.Definitions, instance: dg.DagsterInstance) -> list[Target]:
    """The assets and partitions that are MISSING or STALE, in topological order."""
    return [t for t in asset_statuses(defs, instance) if t.status != StaleStatus.FRESH]


def _cause(cause) -> str:
    part = f"[{cause.partition_key}]" if cause.partition_key is not None else ""
    return f"{cause.asset_key.to_user_string()}{part} {cause.reason}"


def plan_runs(defs: dg.Definitions, targets: Sequence[Target], languages: Sequence[str] = ()
              ) -> list[tuple[list[dg.AssetKey], str | None]]:
    """(asset selection, partition key) per run, upstream runs first: the unpartitioned targets in one run,
    then one run per partition key, language by language; assets that share a partitioning (languages, or
    chunks x languages) run together. A target downstream of a target of another partitioning (say, an
    unpartitioned training stage reading per-language shards) runs in a later phase, after all of it."""
    graph = defs.resolve_asset_graph()
    # the run group of each target asset: None (unpartitioned) or its partition keys
    group = {t.key: tuple(graph.get(t.key).partitions_def.get_partition_keys()) if t.partition is not None else None
             for t in targets}
    phase: dict[dg.AssetKey, int] = {}
    for key in graph.toposorted_asset_keys:
        if key in group:
            phase[key] = max((phase[p] + (group[p] != group[key]) for p in graph.get(key).parent_keys if p in group),
                             default=0)
    wanted = {(t.key, t.partition) for t in targets}
    order = {lang: i for i, lang in enumerate(languages)}
    runs = []
    for n in sorted(set(phase.values())):
        plain = [k for k in phase if phase[k] == n and group[k] is None]
        if plain:
            runs.append((plain, None))
        groups: dict[tuple[str, ...], list[dg.AssetKey]] = {}
        for key in sorted(k for k in phase if phase[k] == n and group[k] is not None):
            groups.setdefault(group[key], []).append(key)
        todo = []
        for g, (part_keys, assets) in enumerate(groups.items()):
            for i, part in enumerate(part_keys):
                selection = [a for a in assets if (a, part) in wanted]
                if selection:
                    todo.append(((order.get(partition_of(part).lang, len(order)), g, i), selection, part))
        runs += [(selection, part) for _, selection, part in sorted(todo, key=lambda x: x[0])]
    return runs


class Outcome(NamedTuple):
    runs: list            # ExecuteInProcessResult of every run, in order
    done: set             # (asset key, partition key) materialised by this call
    statuses: list        # the statuses found before anything ran
    ok: bool


def materialise_stale(defs: dg.Definitions, instance: dg.DagsterInstance, languages: Sequence[str] = (),
                      run_config: dict | None = None, say: Callable[[str], None] = print,
                      everything: bool = False) -> Outcome:
    """Materialise what is missing or stale, and ask again until nothing is: an upstream whose data
    version changed makes its downstream stale only after it has run. `everything`: start with all of it."""
    job = defs.resolve_implicit_global_asset_job_def()
    statuses = first = asset_statuses(defs, instance)
    runs, done = [], set()
    max_rounds = len(defs.resolve_asset_graph().toposorted_asset_keys) + 1  # one level per round at worst
    for round_no in range(1, max_rounds + 2):
        todo = [t for t in statuses if everything and round_no == 1 or t.status != StaleStatus.FRESH]
        if not todo:
            if round_no == 1:
                say(f"nothing is missing or stale: all {len(statuses)} assets and partitions are fresh "
                    "(changed input files outside the lake are not seen: `python demo.py --all`)")
            return Outcome(runs, done, first, True)
        if round_no > max_rounds:
            say(f"still stale after {max_rounds} rounds: {', '.join(map(str, todo[:10]))}; stopping")
            return Outcome(runs, done, first, False)
        todo, waiting = ready_now(defs, todo)
        _explain(round_no, statuses, todo, say, len(waiting))
        if waiting:
            say(f"  waiting for their upstream first: {_counted(waiting)}")
        for selection, part in plan_runs(defs, todo, languages):
            if part is not None:
                say(f"--- partition {part} of {', '.join(a.to_user_string() for a in selection)}")
            result = job.execute_in_process(run_config=run_config, instance=instance, asset_selection=selection,
                                            partition_key=part, raise_on_error=False)
            runs.append(result)
            if not result.success:
                return Outcome(runs, done, first, False)
            done |= {(a, part) for a in selection}
        statuses = asset_statuses(defs, instance)
    raise AssertionError("unreachable")


def ready_now(defs: dg.Definitions, todo: Sequence[Target]) -> tuple[list[Target], list[Target]]:
    """(targets to run this round, targets that wait): a target waits while something upstream of it is to
    run and a path from there to it crosses an asset that is fresh now. That asset turns stale only once its
    upstream has run, so running the target now would redo it next round (a changed toy world and a changed
    stage-2 setting would train stage 2 three times). Asset-level: one stale partition holds the asset back."""
    graph = defs.resolve_asset_graph()
    pending = {t.key for t in todo}
    tainted: set[dg.AssetKey] = set()  # pending, or downstream of something pending
    blocked: set[dg.AssetKey] = set()
    for key in graph.toposorted_asset_keys:
        parents = graph.get(key).parent_keys
        if any(p not in pending and p in tainted or p in blocked for p in parents):
            blocked.add(key)
        if key in pending or any(p in tainted for p in parents):
            tainted.add(key)
    return [t for t in todo if t.key not in blocked], [t for t in todo if t.key in blocked]


def _counted(targets: Sequence[Target]) -> str:
    count = Counter(t.key.to_user_string() for t in targets)
    return ", ".join(f"{k} ({n} partitions)" if n > 1 else k for k, n in count.items())


def _explain(round_no: int, statuses: list[Target], todo: list[Target], say, waiting: int = 0) -> None:
    count = {s: sum(t.status == s for t in todo) for s in StaleStatus}
    parts = sum(t.partition is not None for t in todo)
    forced = f", {count[StaleStatus.FRESH]} fresh (--all)" if count[StaleStatus.FRESH] else ""
    say(f"round {round_no}: {count[StaleStatus.MISSING]} missing, {count[StaleStatus.STALE]} stale{forced} "
        f"({len(todo) - parts} assets, {parts} partitions); {len(statuses) - len(todo) - waiting} fresh, skipped")
    # why, briefly: one line per reason, naming the assets (and how many of their partitions) it makes stale
    reasons: dict[tuple[str, ...], dict[str, int]] = {}
    for t in todo:
        if t.status == StaleStatus.STALE:
            # a partition stale because of the same partition upstream: one reason for all partitions
            why = tuple(w.replace(f"[{t.partition}]", "") for w in t.why) if t.partition is not None else t.why
            names = reasons.setdefault(why, {})
            names[t.key.to_user_string()] = names.get(t.key.to_user_string(), 0) + (t.partition is not None)
    for i, (why, names) in enumerate(reasons.items()):
        if i == 8:
            say(f"  ... and {len(reasons) - 8} more reasons")
            break
        because = "; ".join(why[:3]) + (f" (and {len(why) - 3} more)" if len(why) > 3 else "")
        say(f"  stale because {because or 'of an unknown cause'}: "
            + ", ".join(f"{n} ({k} partitions)" if k else n for n, k in names.items()))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--all", action="store_true",
                        help="materialise everything, fresh or not (after changing input files outside the lake, "
                             "which change no code or data version Dagster knows of)")
    args = parser.parse_args(argv)

    from definitions import defs
    from pipeline.config import load_profile

    profile = load_profile()
    instance = dg.DagsterInstance.get()
    started = time.perf_counter()
    doing = "materialising everything" if args.all else "asking Dagster what is missing or stale"
    print(f"profile {profile.name}: {doing}", flush=True)
    outcome = materialise_stale(defs, instance, profile.languages, QUIET, say=lambda s: print(s, flush=True),
                                everything=args.all)
    if not outcome.ok:
        print("the demo failed; see the errors above, or open the run in the UI with `make ui`", file=sys.stderr)
        return 1
    _summary(defs, instance, outcome, time.perf_counter() - started)
    return 0


def _value(md, key):
    return md[key].value if key in md else None


def _line(md) -> str:
    if "chrf_min_eng_to_x" in md:
        return f"held-out chrF (eng->X) min {md['chrf_min_eng_to_x'].value:.1f}"
    if "auc" in md:  # the NLLB-CLIP scorer
        return f"held-out AUC min {min(md['auc'].value.values()):.3f}"
    multi = sorted(k for k in md if k.endswith("_mmmu_multi"))
    if multi:  # the report: MMMU and MMMU Multi of each stage, in %
        return "; ".join(f"{k[:-11]} MMMU {100 * md[k[:-6]].value:.1f} / Multi {100 * md[k].value:.1f}"
                         for k in multi if k[:-6] in md)
    if "loss_first" in md:  # a training stage
        how = "trained nothing (weights for these inputs exist)" if _value(md, "cached") else \
            f"{_value(md, 'steps')} steps, {_value(md, 'tokens_per_s'):.0f} tokens/s"
        return f"loss {md['loss_first'].value:.2f} -> {md['loss_last'].value:.2f}, {how}"
    if "heldout_perplexity" in md:  # the toy Llama
        ppl = md["heldout_perplexity"].value
        return f"held-out perplexity {min(ppl.values()):.1f}-{max(ppl.values()):.1f} over {len(ppl)} languages"
    if "heldout_retrieval_acc" in md:  # the toy EVA
        return f"held-out retrieval accuracy {md['heldout_retrieval_acc'].value:.2f} (chance {md['chance'].value:.2f})"
    if _value(md, "rows_in"):
        return f"{_value(md, 'rows_kept')} rows kept, {_value(md, 'rows_quarantined')} quarantined"
    if "files" in md and "rows" in md:  # the toy world
        return f"{md['files'].value} files, {sum(md['rows'].value.values())} rows"
    return ""


def _summary(defs, instance, outcome: Outcome, seconds: float) -> None:
    lake = defs.resources["lake"].get()
    print(f"\ndone in {seconds:.0f}s. Results are under {lake.root}:")
    mats = [e.materialization for r in outcome.runs for e in r.get_asset_materialization_events()]
    latest = {m.asset_key: m.metadata for m in mats if m.partition is None}
    totals: dict[dg.AssetKey, list] = {}
    for m in mats:
        if m.partition is not None:
            t = totals.setdefault(m.asset_key, [0, 0, 0, [], 0, []])
            t[0] += 1
            t[1] += _value(m.metadata, "model_calls") or 0
            t[2] += _value(m.metadata, "cache_hits") or 0
            t[4] += _value(m.metadata, "rows_kept") or 0
            if "chrf_vs_original" in m.metadata:
                t[3].append(m.metadata["chrf_vs_original"].value)
            if "accuracy" in m.metadata:  # an evaluation partition
                t[5].append(m.metadata["accuracy"].value)
    parts_of = {}
    for t in outcome.statuses:
        parts_of.setdefault(t.key, []).append(t.partition)
    for key, parts in parts_of.items():
        name = key.to_user_string()
        if parts == [None]:
            if key in latest:
                print(f"  {name:<28} {_line(latest[key])}".rstrip())
            else:  # fresh: what its latest materialisation said
                event = instance.get_latest_materialization_event(key)
                md = event.asset_materialization.metadata if event and event.asset_materialization else {}
                print(f"  {name:<28} " + "; ".join(filter(None, [_line(md), "fresh, skipped"])))
            continue
        ran, calls, hits, chrf, kept, acc = totals.get(key, [0, 0, 0, [], 0, []])
        skipped = f"{len(parts) - ran} fresh, skipped" if ran < len(parts) else ""
        if ran:
            extra = (f", back-translation chrF {sum(chrf) / len(chrf):.1f}" if chrf
                     else f", {calls} questions answered, {hits} reused, mean accuracy {100 * sum(acc) / len(acc):.1f}%"
                     if acc
                     else f", {calls} model calls, {hits} cache hits" if calls or hits
                     else f", {kept} rows kept")
            print(f"  {name:<28} {ran} partitions{extra}" + (f"; {skipped}" if skipped else ""))
        else:
            print(f"  {name:<28} {len(parts)} partitions fresh, skipped")
    plain = [t for t in outcome.statuses if t.partition is None]
    parted = [t for t in outcome.statuses if t.partition is not None]
    fresh_assets = sum((t.key, None) not in outcome.done for t in plain)
    fresh_parts = sum((t.key, t.partition) not in outcome.done for t in parted)
    print(f"  fresh, skipped: {fresh_assets} of {len(plain)} assets, {fresh_parts} of {len(parted)} partitions"
          + (" (they keep their earlier materialisations and check results)" if fresh_assets + fresh_parts else ""))
    evaluations = [c for r in outcome.runs for c in r.get_asset_check_evaluations()]
    failed = [c for c in evaluations if not c.passed]
    print(f"  asset checks (this run): {len(evaluations)} run, {len(failed)} failed"
          + "".join(f"\n    - {c.asset_key.to_user_string()}/{c.check_name}" for c in failed[:10]))
    print("\nOpen the Dagster UI with `make ui` (http://127.0.0.1:3000) to browse assets, metadata and checks.")


if __name__ == "__main__":
    sys.exit(main())

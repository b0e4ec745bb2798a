"""`make demo` materialises only what is missing or stale: demo.stale_targets and demo.materialise_stale on a
tiny hand-written graph (Dagster's internal CachingStaleStatusResolver; this guards its use across upgrades)."""
# no `from __future__ import annotations`: Dagster checks the assets' context annotation at runtime
import hashlib

import dagster as dg
import pytest
from dagster._core.definitions.data_version import StaleStatus

from demo import materialise_stale, plan_runs, stale_targets

LANGS = dg.StaticPartitionsDefinition(["fra", "spa"])


def _version(*parts: str) -> dg.DataVersion:
    return dg.DataVersion(hashlib.sha256("|".join(parts).encode()).hexdigest()[:16])


def _defs(content: dict[str, str], per_lang_code: str = "1", report_code: str = "1",
          back_follows_raw: bool = False) -> dg.Definitions:
    """raw -> clean; raw -> per_lang[fra|spa] -> back[fra|spa] -> report (all of back). Each reports a data
    version of its content, as the pipeline's assets do; `content` (mutable) lets a test change what it writes."""

    @dg.asset(code_version="1")
    def raw() -> dg.MaterializeResult:
        return dg.MaterializeResult(data_version=_version(content["raw"]))

    @dg.asset(code_version="1", deps=[raw])
    def clean() -> dg.MaterializeResult:
        return dg.MaterializeResult(data_version=_version("clean", content["raw"]))

    @dg.asset(code_version=per_lang_code, deps=[raw], partitions_def=LANGS)
    def per_lang(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        return dg.MaterializeResult(
            data_version=_version(content["raw"], content.get(context.partition_key, ""), context.partition_key))

    @dg.asset(code_version="1", deps=[per_lang], partitions_def=LANGS,
              check_specs=[dg.AssetCheckSpec("ok", asset="back")])
    def back(context: dg.AssetExecutionContext):
        follows = content["raw"] if back_follows_raw else ""
        yield dg.MaterializeResult(data_version=_version("back", context.partition_key, follows))
        yield dg.AssetCheckResult(check_name="ok", passed=True)

    @dg.asset(code_version=report_code, deps=[back])
    def report() -> dg.MaterializeResult:
        return dg.MaterializeResult(data_version=_version("report"))

    return dg.Definitions(assets=[raw, clean, per_lang, back, report])


def _names(targets) -> set[str]:
    return {str(t) for t in targets}


def _rematerialise(defs, instance, name, partition=None):
    job = defs.resolve_implicit_global_asset_job_def()
    assert job.execute_in_process(instance=instance, asset_selection=[dg.AssetKey(name)],
                                  partition_key=partition).success


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def test_empty_instance_everything_missing_then_nothing_stale(instance):
    content = {"raw": "a"}
    defs = _defs(content)
    todo = stale_targets(defs, instance)
    assert [str(t) for t in todo] == ["raw", "clean", "per_lang[fra]", "per_lang[spa]", "back[fra]", "back[spa]",
                                      "report"]
    assert {t.status for t in todo} == {StaleStatus.MISSING}
    # one run for the unpartitioned ones, then one per partition key with every asset of that partitioning,
    # then what reads all those partitions
    assert [([a.to_user_string() for a in sel], part) for sel, part in plan_runs(defs, todo)] == [
        (["raw", "clean"], None), (["back", "per_lang"], "fra"), (["back", "per_lang"], "spa"), (["report"], None)]

    first = materialise_stale(defs, instance, say=lambda _: None)
    assert first.ok and len(first.runs) == 4
    assert len(first.done) == 7
    assert sum(len(r.get_asset_check_evaluations()) for r in first.runs) == 2
    assert stale_targets(defs, instance) == []

    second = materialise_stale(defs, instance, say=lambda _: None)
    assert second.ok and second.runs == [] and second.done == set()
    assert {t.status for t in second.statuses} == {StaleStatus.FRESH}

    forced = materialise_stale(defs, instance, say=lambda _: None, everything=True)
    assert forced.ok and len(forced.done) == 7 and len(forced.runs) == 4
    assert stale_targets(defs, instance) == []


def test_new_upstream_data_makes_exactly_its_downstream_stale(instance):
    content = {"raw": "a"}
    defs = _defs(content)
    assert materialise_stale(defs, instance, say=lambda _: None).ok

    # same content again: same data version, downstream stays fresh
    _rematerialise(defs, instance, "raw")
    assert stale_targets(defs, instance) == []

    content["raw"] = "b"
    _rematerialise(defs, instance, "raw")
    todo = stale_targets(defs, instance)
    # back depends on per_lang, which has not re-run yet: not stale until it has
    assert _names(todo) == {"clean", "per_lang[fra]", "per_lang[spa]"}
    assert {t.status for t in todo} == {StaleStatus.STALE}
    assert all(any(w.startswith("raw ") for w in t.why) for t in todo), [t.why for t in todo]

    said = []
    outcome = materialise_stale(defs, instance, say=said.append)
    assert outcome.ok
    # round 1: clean and per_lang; per_lang's new data version makes back stale for round 2; back's data
    # version does not change, so report stays fresh
    assert {f"{k.to_user_string()}[{p}]" if p else k.to_user_string() for k, p in outcome.done} == {
        "clean", "per_lang[fra]", "per_lang[spa]", "back[fra]", "back[spa]"}
    assert [s.split(":")[0] for s in said if s.startswith("round")] == ["round 1", "round 2"]
    assert "  stale because raw has a new data version: clean, per_lang (2 partitions)" in said
    assert "  stale because per_lang has a new data version: back (2 partitions)" in said
    assert stale_targets(defs, instance) == []

    # one partition's new content makes only that partition's downstream stale
    content["fra"] = "x"
    _rematerialise(defs, instance, "per_lang", "fra")
    assert _names(stale_targets(defs, instance)) == {"back[fra]"}


def test_new_code_version_makes_exactly_that_asset_stale(instance):
    content = {"raw": "a"}
    assert materialise_stale(_defs(content), instance, say=lambda _: None).ok
    changed = _defs(content, per_lang_code="2")
    todo = stale_targets(changed, instance)
    assert _names(todo) == {"per_lang[fra]", "per_lang[spa]"}
    assert all(t.why == (f"{t} has a new code version",) for t in todo), [t.why for t in todo]
    # the code changed but the data did not: per_lang re-runs with the same data version, back stays fresh
    outcome = materialise_stale(changed, instance, say=lambda _: None)
    assert outcome.ok and {p for _, p in outcome.done} == {"fra", "spa"} and len(outcome.done) == 2
    assert stale_targets(changed, instance) == []


def test_a_stale_asset_waits_for_a_stale_upstream_instead_of_running_twice(instance):
    content = {"raw": "a"}
    assert materialise_stale(_defs(content, back_follows_raw=True), instance, say=lambda _: None).ok
    # new raw data and a new report code version at once: report is stale now, and will be again once
    # per_lang and back have re-run on the new raw, so it must wait for them rather than run now and again
    content["raw"] = "b"
    _rematerialise(_defs(content, back_follows_raw=True), instance, "raw")
    changed = _defs(content, report_code="2", back_follows_raw=True)
    assert _names(stale_targets(changed, instance)) == {"clean", "per_lang[fra]", "per_lang[spa]", "report"}
    said = []
    outcome = materialise_stale(changed, instance, say=said.append)
    assert outcome.ok and stale_targets(changed, instance) == []
    report_runs = [r for r in outcome.runs if any(m.asset_key == dg.AssetKey("report")
                                                  for m in r.get_asset_materialization_events()
                                                  for m in [m.event_specific_data.materialization])]
    assert len(report_runs) == 1
    assert "  waiting for their upstream first: report" in said
    # round 1: clean, per_lang; round 2: back, then report (which waited in round 1)
    assert [s.split(":")[0] for s in said if s.startswith("round")] == ["round 1", "round 2"]

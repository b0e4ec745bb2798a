"""The raw asset group, materialised in-process with Dagster on a small toy profile."""
from __future__ import annotations

import dagster as dg
import pytest

from definitions import make_definitions
from pipeline.raw.sources import ALL_SOURCES
from tests.conftest import small_profile


def test_definitions_load_for_both_profiles():
    from pipeline.config import load_profile

    for name in ("configs/toy.yaml", "configs/paper.yaml"):
        defs = make_definitions(load_profile(name))
        dg.Definitions.validate_loadable(defs)
        keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
        assert set(ALL_SOURCES) <= keys
        assert ("toy_world" in keys) == name.endswith("toy.yaml")


@pytest.fixture(scope="module")
def materialised(tmp_path_factory):
    root = tmp_path_factory.mktemp("lake")
    defs = make_definitions(small_profile(str(root)), lake_root=str(root))
    instance = dg.DagsterInstance.ephemeral()
    job = defs.resolve_implicit_global_asset_job_def()
    raw = [dg.AssetKey(k) for k in ("toy_world", *ALL_SOURCES)]
    first = job.execute_in_process(instance=instance, asset_selection=raw)
    second = job.execute_in_process(instance=instance, asset_selection=raw)
    return first, second, instance


def _versions(result) -> dict[str, str]:
    out = {}
    for event in result.get_asset_materialization_events():
        m = event.materialization
        out[m.asset_key.to_user_string()] = m.tags["dagster/data_version"]
    return out


def test_every_raw_asset_materialises_with_accounting_metadata(materialised):
    first, _, _ = materialised
    assert first.success
    mats = {e.materialization.asset_key.to_user_string(): e.materialization.metadata
            for e in first.get_asset_materialization_events()}
    assert set(mats) == {"toy_world", *ALL_SOURCES}
    for name in ALL_SOURCES:
        md = mats[name]
        assert md["rows_in"].value == md["rows_kept"].value + md["rows_quarantined"].value
        assert md["rows_quarantined"].value >= 1, f"{name}: the planted bad rows must be quarantined"
        assert md["rows_kept"].value > 0 and "sample" in md
    checks = first.get_asset_check_evaluations()
    assert len(checks) == len(ALL_SOURCES) and all(c.passed for c in checks)


def test_unchanged_rematerialisation_keeps_data_versions(materialised):
    first, second, _ = materialised
    assert second.success
    assert _versions(first) == _versions(second)


def test_editing_a_profile_section_changes_the_code_version_of_the_assets_that_read_it():
    """So `make demo` (which runs only what is stale) picks up a profile edit, and only where it matters."""
    from pipeline.config import load_profile

    base = load_profile("configs/toy.yaml")
    edited = base.model_copy(update={
        "toy_world": base.toy_world.model_copy(update={"mmmu_questions": 61}),
        "sources": base.sources.model_copy(update={"wit": base.sources.wit.model_copy(update={"path": "x/*.tsv"})}),
    })

    def versions(profile):
        graph = make_definitions(profile).resolve_asset_graph()
        return {k.to_user_string(): graph.get(k).code_version for k in graph.get_all_asset_keys()}

    before, after = versions(base), versions(edited)
    assert {k for k in before if before[k] != after[k]} == {"toy_world", "wit"}

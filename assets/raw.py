"""Group `raw`: one asset per source corpus (and, in the toy profile, the toy world they come from).

Each asset validates its source into `raw/<name>/` and reports rows read / kept / quarantined, a
sample and a content-derived data version: re-materialising an unchanged source leaves every
downstream asset fresh.
"""

from contextlib import nullcontext
from pathlib import Path

import dagster as dg

from assets.metadata import accounting_check, code_version, materialize_result
from assets.mirror import url_mirror
from pipeline.config import Profile
from pipeline.lake import build_manifest
from pipeline.raw.ingest import ingest_source
from pipeline.raw.sources import ALL_SOURCES, source
from pipeline.toy.world import build_world
from resources import LakeResource

GROUP = "raw"


def toy_world_asset(profile: Profile) -> dg.AssetsDefinition:
    @dg.asset(name="toy_world", group_name=GROUP, code_version=code_version("5", profile.toy_world, profile.languages), kinds={"python"},
              description="The toy profile's offline replica of every corpus, in the real formats.")
    def toy_world(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        folder = lake.get().toy_world()
        counts = build_world(folder.path, profile.toy_world, profile.languages)
        files = sorted(str(p.relative_to(folder.path)) for p in Path(folder.path).rglob("*")
                       if p.is_file() and p.name != "manifest.json")
        manifest = build_manifest(folder, {f: None for f in files}, extra={"rows": counts})
        context.log.info(f"toy world written to {folder}: {counts}")
        return dg.MaterializeResult(
            metadata={"path": str(folder), "files": len(files), "rows": dg.MetadataValue.json(counts)},
            data_version=dg.DataVersion(manifest.digest()),
        )

    return toy_world


def raw_source_asset(name: str, profile: Profile) -> dg.AssetsDefinition:
    spec = source(name)

    @dg.asset(
        name=name,
        group_name=GROUP,
        description=spec.description,
        code_version=code_version("3", getattr(profile.sources, name), profile.languages, profile.raw_limits,
                                  profile.download if spec.layout == "captions" else None),
        deps=["toy_world"] if profile.is_toy else [],
        check_specs=[dg.AssetCheckSpec("rows_accounted", asset=name, blocking=True,
                                       description="kept + quarantined = read, and files match the manifest")],
    )
    def _raw(context: dg.AssetExecutionContext, lake: LakeResource):
        store = lake.get()
        with url_mirror(profile, store, context.log.info) if spec.layout == "captions" else nullcontext() as mirror:
            result = ingest_source(name, profile, store, mirror, log=context.log.info)
        yield materialize_result(result)
        yield accounting_check(name, store.raw(name))

    return _raw


def raw_assets(profile: Profile) -> list[dg.AssetsDefinition]:
    assets = [raw_source_asset(name, profile) for name in ALL_SOURCES]
    return ([toy_world_asset(profile)] + assets) if profile.is_toy else assets

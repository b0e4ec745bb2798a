"""Group `evaluation`: MMMU and MMMU Multi answered by each stage's model, and the report.

`mmmu_eval_stageN` is partitioned by question set: `eng_Latn` (MMMU), each target language (MMMU Multi) and
`back_<lang>` (MMMU Multi translated back into English, the paper's Table 1 check). Predictions are stored
per sample as they come (`pipeline.evaluate.run`), so a killed partition resumes and an unchanged checkpoint
with unchanged questions generates nothing. `mmmu_report` renders the paper's tables with our numbers.
"""
import base64
from pathlib import Path

import dagster as dg

from assets.metadata import code_version, materialize_result
from assets.training import stage_key
from pipeline.config import Profile
from pipeline.evaluate.report import build_report
from pipeline.evaluate.run import BACK, SOURCE_LANG, eval_partitions, evaluate_partition
from resources import LakeResource
from resources.evaluator import EvaluatorResource

GROUP = "evaluation"
REPORT = "mmmu_report"


def eval_key(stage_no: int) -> str:
    return f"mmmu_eval_stage{stage_no}"


def eval_asset(profile: Profile, stage_no: int) -> dg.AssetsDefinition:
    partitions = dg.StaticPartitionsDefinition(eval_partitions(profile))

    @dg.asset(name=eval_key(stage_no), group_name=GROUP, partitions_def=partitions, pool="gpu",
              deps=[stage_key(stage_no), "mmmu", "translated_mmmu", "mmmu_backtranslated"],
              code_version=code_version("1", profile.evaluation), kinds={"pytorch"},
              description=f"Stage {stage_no}'s model on MMMU (eng_Latn), MMMU Multi (each language) and MMMU "
                          f"back-translated (back_<lang>): per-sample predictions and official scores")
    def _eval(context: dg.AssetExecutionContext, lake: LakeResource, evaluator: dg.ResourceParam[EvaluatorResource]):
        store = lake.get()
        part = context.partition_key
        result = evaluate_partition(profile, store, stage_no, part, generator=lambda: evaluator.generator(store, stage_no),
                                    log=context.log.info)
        # accuracy overall, per subject and per discipline come with the step's stats
        question_set = ("MMMU" if part == SOURCE_LANG else
                        "MMMU back-translated" if part.startswith(BACK) else "MMMU Multi")
        return materialize_result(result, question_set=question_set)

    return _eval


def report_asset(profile: Profile, stages: list[int]) -> dg.AssetsDefinition:
    @dg.asset(name=REPORT, group_name=GROUP, deps=[eval_key(n) for n in stages], code_version="1", kinds={"markdown"},
              description="The paper's Tables 1-3 with this run's numbers beside the paper's, and accuracy per "
                          "language per stage (evaluation/report/report.md and accuracy.png)")
    def mmmu_report(context: dg.AssetExecutionContext, lake: LakeResource):
        store = lake.get()
        result = build_report(store, stages, list(profile.languages), profile.name)
        text = (Path(result.path) / "report.md").read_text()
        png = base64.b64encode((Path(result.path) / "accuracy.png").read_bytes()).decode()
        text = text.replace("![accuracy per language per stage](accuracy.png)",
                            f"![accuracy per language per stage](data:image/png;base64,{png})")
        return materialize_result(result, report=dg.MetadataValue.md(text),
                                  report_path=dg.MetadataValue.path(str(Path(result.path) / "report.md")))

    return mmmu_report


def evaluation_assets(profile: Profile) -> list[dg.AssetsDefinition]:
    stages = sorted(n for n in profile.model.stages if f"stage{n}" in profile.stages)
    return [*(eval_asset(profile, n) for n in stages), report_asset(profile, stages)]

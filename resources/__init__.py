from resources.clip import ClipScorerResource
from resources.lake import LakeResource
from resources.training import TrainingLauncher
from resources.translator import TranslatorResource

__all__ = ["ClipScorerResource", "LakeResource", "TrainingLauncher", "TranslatorResource"]

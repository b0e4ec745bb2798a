from resources.clip import ClipScorerResource
from resources.lake import LakeResource
from resources.translator import TranslatorResource

__all__ = ["ClipScorerResource", "LakeResource", "TranslatorResource"]

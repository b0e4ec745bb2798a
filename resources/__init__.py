from resources.lake import LakeResource
from resources.translator import TranslatorResource

__all__ = ["LakeResource", "TranslatorResource"]

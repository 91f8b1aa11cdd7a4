"""Neural-network building blocks. No knowledge of coding."""

from tngvideo.nn.gdn import GDN
from tngvideo.nn.layers import AnalysisStage, SynthesisStage, conv, deconv

__all__ = ["GDN", "AnalysisStage", "SynthesisStage", "conv", "deconv"]

"""Neural-network building blocks. No knowledge of coding."""

from tngvideo.nn.gdn import GDN
from tngvideo.nn.layers import AnalysisStage, SynthesisStage, conv, deconv, haar_forward, haar_inverse

__all__ = ["GDN", "AnalysisStage", "SynthesisStage", "conv", "deconv", "haar_forward", "haar_inverse"]

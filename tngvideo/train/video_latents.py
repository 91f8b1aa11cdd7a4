"""The latents the P-frame coders really code, captured in closed loop for the entropy fit.

Each clip is coded with the shipped coders as the encoder codes it (an I-frame every `gop`
frames, P-frames predicted from the decoded previous frame with motion estimated on the source's
previous frame, and the encoder's motion/no-motion decision), at each of the given qualities. For every P-frame the residual coder's latent
g_a(frame - prediction + 0.5) is kept, and the motion coder's g_a(flow) where motion was coded,
each with the quality it was coded at (`tngvideo.train.entropy_fit` trains on it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from tngvideo.image.codec import ImageCodec
from tngvideo.video import EncoderOptions
from tngvideo.video.codec import PFrameCoder, VideoEncoder, frame_tensor, is_coded
from tngvideo.video.model import RESIDUAL_OFFSET


@dataclass
class CodedLatents:
    """g_a outputs (M, h, w) of one coder and the quality each was coded at."""

    latents: list[torch.Tensor] = field(default_factory=list)
    qualities: list[float] = field(default_factory=list)

    def add(self, y: torch.Tensor, quality: float) -> None:
        self.latents.append(y[0].float().cpu())
        self.qualities.append(float(quality))

    def by_quality(self) -> dict[float, list[torch.Tensor]]:
        out: dict[float, list[torch.Tensor]] = {}
        for t, q in zip(self.latents, self.qualities):
            out.setdefault(q, []).append(t)
        return out


@torch.no_grad()
def pframe_latents(image: ImageCodec, pframes: PFrameCoder, clips: list[list[np.ndarray]],
                   qualities: list[float], *, gop: int = 16, progress: bool = True,
                   should_stop=lambda: False) -> dict[str, CodedLatents]:
    """{"motion": ..., "residual": ...}: the coded latents of every clip at every quality (of
    the clips coded so far when `should_stop()` turns true). The clips are coded by the
    sequence encoder (`VideoEncoder`, I-frames every `gop` frames only, every P-frame mode tried)."""
    if pframes.motion is None:
        raise ValueError("a P-frame coder without a motion model has no coders of its own to fit")
    out = {"motion": CodedLatents(), "residual": CodedLatents()}
    residual, motion = pframes.residual.coder, pframes.motion.coder
    total = sum(len(c) for c in clips) * len(qualities)
    bar = tqdm(total=total, desc="capture latents", unit="frame", disable=not progress, mininterval=5)
    options = EncoderOptions(preset="slow", adaptive_intra=False)
    for frames in clips:
        h, w = frames[0].shape[:2]
        for q in qualities:
            enc = VideoEncoder(image, pframes, width=w, height=h, quality=q, gop=gop, options=options)
            source = None
            for i, rgb in enumerate(frames):
                if should_stop():
                    bar.close()
                    return out
                x = frame_tensor(rgb, image.device)
                if i % gop and (pframes.condition_net is not None or pframes.motion_condition_net is not None):
                    raise ValueError("the entropy models of a conditional P-frame model are fitted by "
                                     "training it (tools/train_video.py), not by capturing latents")
                c = enc.encode(rgb).picture
                if not c.intra:
                    out["residual"].add(residual.g_a(x - c.prediction + RESIDUAL_OFFSET), q)
                    if is_coded(c.motion):
                        out["motion"].add(motion.g_a(pframes.coded_flow_input(x, source)), c.motion_quality)
                source = x
                bar.update(1)
    bar.close()
    return out

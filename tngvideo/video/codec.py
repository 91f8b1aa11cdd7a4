"""Frame-by-frame coding: `VideoEncoder` / `VideoDecoder` own the group of pictures and the
reference buffer, and keep the loop closed (the encoder predicts from its own decoded frame,
so the decoder's output equals the encoder's reconstruction). Whole sequences, with their
header, model checks, seeking and concealment: `tngvideo.video.sequence`.

A frame passes through three forms: the `CodedPicture` the encoder chose (streams by unit,
reconstruction, P-frame prediction and motion), its `FramePacket` (bytes at the bitstream
boundary) and the packet's `FrameRecord` (what encoder and decoder both report per frame).

Frame i is intra when i % gop == 0, and any other frame is intra where coding it intra costs less
in rate-distortion terms than coding it as a P-frame (adaptive intra). A P-frame is coded as

    prediction = MotionCompensation(reference, decoded flow)   (reference itself without motion)
    residual   = residual coder(frame - prediction + 0.5)
    frame_hat  = prediction + decoded residual - 0.5        (then the model's loop filter, if any)

and every reconstruction is rounded to the 8-bit grid before it becomes the next reference.
Frames are reconstructed in fixed point (`tngvideo.video.exact`, packet version 4): decoder and
encoder keep the same reference on any machine; older packets are reconstructed in float.
The motion unit may be coded at another quality than the residual (the packet says which): the
encoder tries the frame's quality plus each of `motion_offsets` and keeps the cheapest in
rate-distortion terms. On the dev clips a finer flow (+2) pays at low rates: with tng-video-6 on
gymbasketball the sequence's RD cost fell 10% at quality 1-1.5 and 4% at 2.5.

How hard the encoder searches is its `Preset`: the motion qualities it tries and how often. A P-frame
mode (a motion quality, or no motion) that wins usually goes on winning for the next frames, so
between probes (every `probe_period`-th P-frame after an I-frame, which tries every mode) only the
last winner is coded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from tngvideo.bitstream import BitstreamError
from tngvideo.bitstream.packet import (EXACT_FROM, CodedUnit, FramePacket, FrameRecord, FrameType, frame_record, pack_packet,
                                      unpack_packet)
from tngvideo.image.codec import ImageCodec, check_quality
from tngvideo.errors import DecodeError
from tngvideo.latent.codec import LatentCodec, LatentStreams
from tngvideo.latent.model import HyperpriorAutoencoder, LatentCondition
from tngvideo.latent.search import encode_latents
from tngvideo.latent.weights import EntropyTables
from tngvideo.video import PRESET_NAMES, EncoderOptions
from tngvideo.video.flow_dis import dis_flow
from tngvideo.video.exact import ExactContext, ExactMotionCompensation, ExactReconstruction
from tngvideo.video.model import (RESIDUAL_OFFSET, LatentContext, LoopFilter, MotionCompensation, PFrameModel,
                                  codable_flow, previous_flow, reconstruct)
from tngvideo.video.motion_search import search_motion

PAD = HyperpriorAutoencoder.PAD_MULTIPLE
EMPTY = LatentStreams(b"", b"", 0, 0.0)
DEFAULT_MOTION_OFFSETS = (0.0, 2.0)  # motion qualities the encoder tries, relative to the frame's


@dataclass(frozen=True)
class Preset:
    """How hard the encoder searches each P-frame's mode: speed against bytes."""
    motion_offsets: tuple[float, ...] = DEFAULT_MOTION_OFFSETS  # motion qualities tried, relative to the frame's
    probe_period: int = 1  # every Nth P-frame after an I-frame tries every mode; the others only the last winner

    def __post_init__(self):
        if not self.motion_offsets:
            raise ValueError("at least one motion quality offset is needed")
        if self.probe_period < 1:
            raise ValueError(f"probe period must be >= 1, not {self.probe_period}")


PRESETS = {
    "fast": Preset(motion_offsets=(0.0,), probe_period=8),
    "medium": Preset(motion_offsets=DEFAULT_MOTION_OFFSETS, probe_period=4),
    "slow": Preset(motion_offsets=DEFAULT_MOTION_OFFSETS, probe_period=1),
}
assert tuple(PRESETS) == PRESET_NAMES


def preset_named(preset: "str | Preset") -> Preset:
    if isinstance(preset, Preset):
        return preset
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r} (choose from {', '.join(PRESETS)})")
    return PRESETS[preset]


@dataclass(frozen=True)
class CodedPicture:
    """One frame coded one way, intra or predicted: its streams by unit ("intra", or "motion" and
    "residual", the packet's order), the reconstruction and the frame's quality; a P-frame also
    the quality its motion is coded at (its own when it has no motion), the prediction the
    residual was coded against, the flow estimator and the decoded flow (None: no motion)."""
    streams: dict[str, LatentStreams]
    x_hat: torch.Tensor
    quality: float
    motion_quality: float | None = None  # P-frames
    prediction: torch.Tensor | None = None  # P-frames: what the decoder predicts from the reference and the motion
    estimator: str | None = None
    flow_hat: torch.Tensor | None = None

    @property
    def intra(self) -> bool:
        return "intra" in self.streams

    @property
    def motion(self) -> LatentStreams:
        return self.streams["motion"]

    @property
    def residual(self) -> LatentStreams:
        return self.streams["residual"]


def _predicted(motion: LatentStreams, residual: LatentStreams, x_hat: torch.Tensor, quality: float,
               motion_quality: float, prediction: torch.Tensor, estimator: str | None = None,
               flow_hat: torch.Tensor | None = None) -> CodedPicture:
    return CodedPicture({"motion": motion, "residual": residual}, x_hat, quality, motion_quality, prediction,
                        estimator, flow_hat)


@dataclass(frozen=True)
class EncodedFrame:
    """What the encoder made of a frame: its packet, the reconstruction (exactly what the decoder
    will output), the packet's record and the coded picture behind it."""
    packet: bytes
    reconstruction: np.ndarray  # (H, W, 3) uint8
    stats: FrameRecord
    picture: CodedPicture


def is_coded(streams: LatentStreams) -> bool:
    return bool(streams.hyper or streams.latent or streams.symbols_crc)


def sendable_motion(streams: LatentStreams, flow_hat: torch.Tensor, x: torch.Tensor) -> bool:
    """Whether coded motion may be sent: an all-empty unit would read as "no motion", and a decoded
    flow far outside the frame means the motion coder diverged."""
    return is_coded(streams) and not bool(flow_hat.abs().max() > max(x.shape[-2:]))


@dataclass(frozen=True)
class _Parts:
    """The decoder-side networks of a P-frame coder, in float or in fixed point."""
    mc: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None
    reconstruct: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    condition: Callable[[torch.Tensor], LatentCondition | None]
    motion_condition: Callable[[torch.Tensor | None, torch.Tensor], LatentCondition | None]


class _FloatReconstruction:
    """`reconstruct`, then the loop filter (if any), in float."""

    def __init__(self, loop_filter: LoopFilter | None):
        self.filter = loop_filter

    def __call__(self, pred: torch.Tensor, res_hat: torch.Tensor) -> torch.Tensor:
        x_hat = reconstruct(pred, res_hat)
        return x_hat if self.filter is None else self.filter(x_hat, pred)


class PFrameCoder:
    """Codes a frame given the previous decoded frame. Motion is optional: a coder without a
    motion model predicts from the reference as it is (zero motion)."""

    def __init__(self, residual: LatentCodec, *, motion: LatentCodec | None = None,
                 flow_net: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                 mc: MotionCompensation | None = None, loop_filter: LoopFilter | None = None,
                 mode_decision: bool = True,
                 extra_estimators: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] | None = None,
                 condition: LatentContext | None = None, motion_condition: LatentContext | None = None,
                 exact: bool = True):
        """`flow_net(x, ref)` is the encoder's flow estimator (the model's FlowNet, or DIS), named
        "net"; `extra_estimators` more that `encode` may try by name (default: "dis", OpenCV DIS);
        `loop_filter` the model's loop filter, applied to prediction + decoded residual;
        `mode_decision=False` always codes motion when there is a motion model; `condition` the
        residual coder's context from the prediction (a conditional model's), `motion_condition`
        the motion coder's from the previous P-frame's decoded flow (zero after an I-frame or a
        frame without motion). `exact`: `encode` reconstructs in fixed point, as decoders of its
        packets (version 4) do; False only to reproduce the float reconstruction of older packets."""
        if (motion is None) != (flow_net is None) or (motion is None) != (mc is None):
            raise ValueError("motion coding needs a motion coder, a flow network and motion compensation")
        self.residual = residual
        self.motion = motion
        self.flow_net = flow_net
        self.mc = mc
        self.loop_filter = loop_filter
        self.mode_decision = mode_decision
        self.extra_estimators = {"dis": dis_flow} if extra_estimators is None else dict(extra_estimators)
        self.condition_net, self.motion_condition_net = condition, motion_condition
        self.exact = exact
        self._built: dict[bool, _Parts] = {}

    @classmethod
    def for_model(cls, model: PFrameModel, tables: dict[str, EntropyTables]) -> "PFrameCoder":
        """The coder of a trained P-frame model, with the entropy tables of its two coders."""
        cfg = model.config
        return cls(residual=LatentCodec(model.residual, tables["residual"]),
                   motion=LatentCodec(model.motion, tables["motion"]),
                   flow_net=model.estimate_flow, mc=model.mc, loop_filter=model.filter if cfg.loop_filter else None,
                   condition=model.condition if cfg.conditional else None,
                   motion_condition=model.motion_condition if cfg.motion_context else None)

    def parts(self, exact: bool) -> _Parts:
        """Motion compensation, reconstruction and conditions, in fixed point with `exact` (built once)."""
        if exact not in self._built:
            cond, mcond = self.condition_net, self.motion_condition_net
            if exact:
                mc = ExactMotionCompensation(self.mc) if self.mc is not None else None
                rec = ExactReconstruction(self.loop_filter, RESIDUAL_OFFSET)
                cond = ExactContext(cond) if cond is not None else None
                mcond = ExactContext(mcond) if mcond is not None else None
            else:
                mc = self.mc
                rec = _FloatReconstruction(self.loop_filter)
            self._built[exact] = _Parts(
                mc=mc, reconstruct=rec,
                condition=(lambda pred: None) if cond is None else cond,
                motion_condition=(lambda prev, like: None) if mcond is None else (
                    lambda prev, like, c=mcond: c(previous_flow(prev, like))))
        return self._built[exact]

    @staticmethod
    def _transform(codec: LatentCodec) -> HyperpriorAutoencoder:
        return codec.coder  # type: ignore[return-value]

    def _code(self, codec: LatentCodec, x: torch.Tensor, quality: float,
              condition: LatentCondition | None = None, *, exact: bool = True) -> tuple[LatentStreams, torch.Tensor]:
        streams, y_hat = encode_latents(codec, self._transform(codec), x, quality, condition=condition, exact=exact)
        return streams, codec.synthesize(y_hat, quality, condition, exact=exact)

    def _decode(self, codec: LatentCodec, streams: LatentStreams, hw: tuple[int, int], quality: float,
                device: torch.device, condition: LatentCondition | None = None, *, exact: bool = True) -> torch.Tensor:
        shape = (1, self._transform(codec).config.latent_channels, hw[0] // 16, hw[1] // 16)
        y_hat = codec.decode(streams, shape, device, mean_offset=codec.mean_offset(condition, quality, exact=exact),
                             exact=exact)
        return codec.synthesize(y_hat, quality, condition, exact=exact)

    def _code_prediction(self, x: torch.Tensor, pred: torch.Tensor, quality: float, exact: bool
                         ) -> tuple[LatentStreams, torch.Tensor]:
        parts = self.parts(exact)
        res_streams, res_hat = self._code(self.residual, x - pred + RESIDUAL_OFFSET, quality,
                                          condition=parts.condition(pred), exact=exact)
        return res_streams, parts.reconstruct(pred, res_hat)

    @property
    def quality_range(self) -> tuple[float, float]:
        cfg = self._transform(self.residual).config
        return cfg.min_quality, cfg.max_quality

    def check_quality(self, quality: float) -> float:
        return check_quality(quality, self.quality_range)

    def intra_quality(self, image: ImageCodec, quality: float) -> float:
        """The image codec's quality with this coder's lambda at `quality`: I- and P-frames of a
        sequence are coded at one rate-distortion trade-off even when the two models' quality
        scales differ."""
        return image.model.quality_for_lambda(self._transform(self.residual).lambda_at(quality))

    def rd_cost(self, x: torch.Tensor, x_hat: torch.Tensor, bits: int, quality: float,
                hw: tuple[int, int] | None = None) -> float:
        """The training objective on real bytes: lambda(q) * 255^2 * MSE * pixels + bits, the
        distortion over the visible picture (the top-left `hw`; default all of x), not the padding."""
        if hw is not None:
            x, x_hat = x[..., : hw[0], : hw[1]], x_hat[..., : hw[0], : hw[1]]
        lmbda = self._transform(self.residual).lambda_at(quality)
        mse = float(((x_hat.clamp(0, 1) - x) ** 2).mean())
        return lmbda * 255.0**2 * mse * x.shape[-1] * x.shape[-2] + bits

    @property
    def estimators(self) -> tuple[str, ...]:
        """The names of the flow estimators `encode` can try ("net" first)."""
        return ("net", *self.extra_estimators) if self.flow_net is not None else ()

    @torch.no_grad()
    def coded_flow_input(self, x: torch.Tensor, ref: torch.Tensor, estimator: str = "net") -> torch.Tensor:
        """What the motion coder codes: the flow by `estimator`, made codable (`codable_flow`)."""
        if estimator not in self.estimators:
            raise ValueError(f"unknown flow estimator {estimator!r} (this coder has {', '.join(self.estimators)})")
        net = self.flow_net if estimator == "net" else self.extra_estimators[estimator]
        return codable_flow(net(x, ref))

    def held_quality(self, quality: float) -> float:
        """`quality` held to the coder's range and to what a packet carries (0.01 steps)."""
        lo, hi = self.quality_range
        return round(min(hi, max(lo, quality)) * 100) / 100

    def motion_qualities(self, quality: float, offsets: tuple[float, ...]) -> list[float]:
        """The motion qualities tried for a frame at `quality`: quality + each offset, held
        (`held_quality`), without repeats."""
        out: list[float] = []
        for d in offsets:
            q = self.held_quality(quality + d)
            if q not in out:
                out.append(q)
        return out

    @torch.no_grad()
    def encode(self, x: torch.Tensor, ref: torch.Tensor, quality: float, *, search_steps: int = 0,
               hw: tuple[int, int] | None = None, flow_ref: torch.Tensor | None = None,
               motion_offsets: tuple[float, ...] = DEFAULT_MOTION_OFFSETS,
               zero_motion: bool | None = None, estimators: tuple[str, ...] = ("net",),
               prev_flow: torch.Tensor | None = None) -> CodedPicture:
        """Mode decision: with a motion model, code the frame with the motion of each of
        `estimators` at each of `motion_qualities(quality, motion_offsets)` and (with `zero_motion`, default the coder's
        `mode_decision`) with the plain reference as prediction (no motion bits), and keep
        whichever costs least in rate-distortion terms (no motion offsets: no motion). The decoder
        follows the choice from the stream (empty motion = no motion; the packet carries the
        motion quality) and never sees the estimator. Distortion is measured over `hw`.

        search_steps > 0: the chosen mode's motion (if any) is coded again after a motion search
        (`tngvideo.video.motion_search`) over the region hw (the real frame size), and the residual
        against the new prediction. The residual itself is not searched: a latent search at the
        frame's lambda trades the frame's quality for its rate, and the frames that predict from it
        pay (on gymbasketball, 8 frames, 20 steps: searching I-frames and residuals cost +2.2% BD-rate).

        `flow_ref`: the frame motion is estimated against (the source's previous frame: its flow is
        cleaner and cheaper to code than the flow to the decoded reference); default the reference.
        `prev_flow`: the previous P-frame's decoded flow, the motion coder's temporal context (a
        coder with such a context skips the motion search, which does not model it)."""
        exact = self.exact
        parts = self.parts(exact)
        if self.motion is None:
            res_streams, x_hat = self._code_prediction(x, ref, quality, exact)
            return _predicted(EMPTY, res_streams, x_hat, quality, quality, ref)
        best: CodedPicture | None = None
        best_cost = math.inf
        flows = {}
        motion_condition = parts.motion_condition(prev_flow, x)
        for name in dict.fromkeys(estimators) if motion_offsets else ():
            flows[name] = flow = self.coded_flow_input(x, ref if flow_ref is None else flow_ref, name)
            for mq in self.motion_qualities(quality, motion_offsets):
                motion_streams, flow_hat = self._code(self.motion, flow, mq, condition=motion_condition, exact=exact)
                if not sendable_motion(motion_streams, flow_hat, x):
                    continue
                pred = parts.mc(ref, flow_hat)
                res_streams, x_hat = self._code_prediction(x, pred, quality, exact)
                cost = self.rd_cost(x, x_hat, motion_streams.payload_bits + res_streams.payload_bits, quality, hw)
                if cost < best_cost:
                    best, best_cost = _predicted(motion_streams, res_streams, x_hat, quality, mq, pred, name, flow_hat), cost
        if best is None or (self.mode_decision if zero_motion is None else zero_motion):
            res_streams, x_hat = self._code_prediction(x, ref, quality, exact)
            if best is None or self.rd_cost(x, x_hat, res_streams.payload_bits, quality, hw) <= best_cost:
                best = _predicted(EMPTY, res_streams, x_hat, quality, quality, ref)
        if search_steps > 0 and is_coded(best.motion) and motion_condition is None:
            best = self._search_motion(x, ref, flows[best.estimator], best, quality, search_steps, hw)
        return best

    def _search_motion(self, x: torch.Tensor, ref: torch.Tensor, flow: torch.Tensor, best: CodedPicture,
                       quality: float, steps: int, hw: tuple[int, int] | None) -> CodedPicture:
        """`best` with its motion recoded after a motion search (`tngvideo.video.motion_search`),
        where the search finds a cheaper frame under the model."""
        assert self.motion is not None and self.mc is not None
        t = self._transform(self.motion)
        found = search_motion(t, self._transform(self.residual), self.mc, x, ref, flow, best.motion_quality, quality,
                              steps=steps, hw=hw)
        if found.cost >= found.start_cost:
            return best
        streams, y_hat = self.motion.encode(found.y, found.z, exact=self.exact)
        flow_hat = self.motion.synthesize(y_hat, best.motion_quality, exact=self.exact)
        if not sendable_motion(streams, flow_hat, x):
            return best
        pred = self.parts(self.exact).mc(ref, flow_hat)
        res_streams, x_hat = self._code_prediction(x, pred, quality, self.exact)
        return _predicted(streams, res_streams, x_hat, quality, best.motion_quality, pred, best.estimator, flow_hat)

    @torch.no_grad()
    def decoded_flow(self, motion: LatentStreams, ref: torch.Tensor, quality: float,
                     prev_flow: torch.Tensor | None = None, *, exact: bool = True) -> torch.Tensor:
        """The flow a decoder reconstructs from coded motion streams (in the temporal context of
        `prev_flow`, the previous P-frame's decoded flow, where the model has one)."""
        if self.motion is None:
            raise DecodeError("stream has coded motion but this decoder has no motion model")
        return self._decode(self.motion, motion, ref.shape[-2:], quality, ref.device,
                            self.parts(exact).motion_condition(prev_flow, ref), exact=exact)

    @torch.no_grad()
    def prediction(self, motion: LatentStreams, ref: torch.Tensor, quality: float,
                   prev_flow: torch.Tensor | None = None, *, exact: bool = True) -> torch.Tensor:
        """The prediction a decoder forms from the motion streams (the reference itself when
        no motion is coded)."""
        return self._predict(motion, ref, quality, prev_flow, exact)[0]

    def _predict(self, motion: LatentStreams, ref: torch.Tensor, quality: float,
                 prev_flow: torch.Tensor | None, exact: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not is_coded(motion):
            return ref, None
        flow_hat = self.decoded_flow(motion, ref, quality, prev_flow, exact=exact)
        return self.parts(exact).mc(ref, flow_hat), flow_hat

    @torch.no_grad()
    def decode(self, motion: LatentStreams, residual: LatentStreams, ref: torch.Tensor, quality: float,
               motion_quality: float | None = None, *, prev_flow: torch.Tensor | None = None,
               exact: bool = True) -> torch.Tensor:
        """The frame from its streams; the motion decoded at `motion_quality` (default `quality`);
        in fixed point with `exact` (packets of version 4 on)."""
        return self.decode_with_flow(motion, residual, ref, quality, motion_quality, prev_flow=prev_flow,
                                     exact=exact)[0]

    @torch.no_grad()
    def decode_with_flow(self, motion: LatentStreams, residual: LatentStreams, ref: torch.Tensor, quality: float,
                         motion_quality: float | None = None, *, prev_flow: torch.Tensor | None = None,
                         exact: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`decode`, and the decoded flow (None: no motion): the next P-frame's temporal context."""
        pred, flow_hat = self._predict(motion, ref, quality if motion_quality is None else motion_quality, prev_flow,
                                       exact)
        parts = self.parts(exact)
        res_hat = self._decode(self.residual, residual, ref.shape[-2:], quality, ref.device, parts.condition(pred),
                               exact=exact)
        return parts.reconstruct(pred, res_hat), flow_hat


def frame_tensor(rgb: np.ndarray, device: torch.device) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float().div(255.0).to(device)
    h, w = x.shape[-2:]
    ph, pw = -(-h // PAD) * PAD - h, -(-w // PAD) * PAD - w
    return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x


def on_grid(x: torch.Tensor) -> torch.Tensor:
    """The 8-bit reconstruction as a float tensor: what both sides keep as the reference."""
    return x.clamp(0, 1).mul(255).round().div(255)


def _to_rgb(x: torch.Tensor, h: int, w: int) -> np.ndarray:
    return x[0, :, :h, :w].mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


@dataclass(frozen=True)
class Mode:
    """A P-frame mode with motion: the flow estimator and the motion quality relative to the frame's."""
    estimator: str
    offset: float


class VideoEncoder:
    def __init__(self, image: ImageCodec, pframes: PFrameCoder, *, width: int, height: int, quality: float, gop: int,
                 first_index: int = 0, options: EncoderOptions = EncoderOptions()):
        """`first_index` > 0 continues a sequence at a GOP boundary (an independently coded chunk).
        `options`: how hard the encoder works (`EncoderOptions`: the preset of each P-frame's mode
        search, an encoder-side search of every I-frame's latents and every P-frame's motion, and
        adaptive intra, where the decoder follows the frame type); the decoder is the same for all."""
        if gop < 1:
            raise ValueError("GOP must be at least 1")
        if first_index % gop:
            raise ValueError("a chunk must start at a GOP boundary")
        self.options = options
        self.preset = preset_named(options.preset)
        self.image, self.pframes = image, pframes
        self.width, self.height = width, height
        self.quality = pframes.check_quality(quality)
        self.gop = gop
        self.index = first_index
        self._ref: torch.Tensor | None = None  # the decoded previous frame (what the decoder has)
        self._source: torch.Tensor | None = None  # the previous source frame (motion is estimated on it)
        self._since_intra = 0  # P-frames since the last I-frame
        self._winner: Mode | None = None  # the last probed P-frame mode that won, None = no motion
        self._flow: torch.Tensor | None = None  # the previous P-frame's decoded flow (the motion context)

    def frame_quality(self, intra: bool) -> float:
        """The quality of the next frame, coded intra or not: the sequence's quality plus its
        place in the cascade (`EncoderOptions.intra_offset`, `p_offsets`), held to the model's range
        and to what a packet carries (0.01 steps)."""
        o = self.options
        d = o.intra_offset if intra else o.p_offsets[self._since_intra % len(o.p_offsets)]
        return self.pframes.held_quality(self.quality + d)

    def _intra(self, x: torch.Tensor, search_steps: int) -> CodedPicture:
        q = self.frame_quality(intra=True)
        streams, x_hat = self.image.encode_tensor(x, self.pframes.intra_quality(self.image, q),
                                                  search_steps=search_steps, hw=(self.height, self.width),
                                                  exact=self.pframes.exact)
        return CodedPicture({"intra": streams}, x_hat, q)

    @property
    def _probe(self) -> bool:
        """Whether the next P-frame tries every mode of the preset."""
        return self._since_intra % self.preset.probe_period == 0

    def _modes(self) -> dict:
        """The P-frame modes this frame tries: all of the preset's on a probe, else the last winner."""
        if self._probe:
            return {"motion_offsets": self.preset.motion_offsets, "estimators": self.options.motion_estimators}
        if self._winner is None:
            return {"motion_offsets": ()}
        return {"motion_offsets": (self._winner.offset,), "zero_motion": False,
                "estimators": (self._winner.estimator,)}

    def _inter(self, x: torch.Tensor, search_steps: int) -> CodedPicture:
        return self.pframes.encode(x, self._ref, self.frame_quality(intra=False), search_steps=search_steps,
                                   hw=(self.height, self.width), flow_ref=self._source, prev_flow=self._flow,
                                   **self._modes())

    def _cost(self, x: torch.Tensor, c: CodedPicture) -> float:
        # one lambda for both candidates (the P-frame's), so that the choice is between rates and distortions
        return self.pframes.rd_cost(x, c.x_hat, sum(s.payload_bits for s in c.streams.values()),
                                    self.frame_quality(intra=False), (self.height, self.width))

    def encode(self, rgb: np.ndarray) -> EncodedFrame:
        if rgb.shape != (self.height, self.width, 3) or rgb.dtype != np.uint8:
            raise ValueError(f"frame {self.index}: expected {self.width}x{self.height} RGB8, got {rgb.shape} {rgb.dtype}")
        x = frame_tensor(rgb, self.image.device)
        intra_due = self.index % self.gop == 0 or self._ref is None
        steps = self.options.search_steps
        if intra_due or not self.options.adaptive_intra:
            c = (self._intra if intra_due else self._inter)(x, steps)
        else:  # decide on plain codes; the search (if any) refines only the mode kept
            inter, intra = self._inter(x, 0), self._intra(x, 0)
            mode, plain = (self._intra, intra) if self._cost(x, intra) < self._cost(x, inter) else (self._inter, inter)
            c = mode(x, steps) if steps else plain
        ftype = FrameType.I if c.intra else FrameType.P
        units = tuple(CodedUnit(s.hyper, s.latent, s.symbols_crc) for s in c.streams.values())
        motion_quality = c.motion_quality if c.motion_quality != c.quality else None  # None: the frame's own (or no motion)
        packet = FramePacket(ftype, c.quality, self.index, units, motion_quality,
                             version=EXACT_FROM if self.pframes.exact else EXACT_FROM - 1)
        est = sum(s.estimated_bits for s in c.streams.values())
        if ftype == FrameType.I:
            self._since_intra = 0
        else:
            if self._probe:
                self._winner = Mode(c.estimator or "net", c.motion_quality - c.quality) if is_coded(c.motion) else None
            self._since_intra += 1
        self._ref = on_grid(c.x_hat)
        self._source = x
        self._flow = c.flow_hat
        data = pack_packet(packet)
        self.index += 1
        return EncodedFrame(data, _to_rgb(self._ref, self.height, self.width), frame_record(packet, len(data), est), c)


class VideoDecoder:
    def __init__(self, image: ImageCodec, pframes: PFrameCoder, *, width: int, height: int):
        self.image, self.pframes = image, pframes
        self.width, self.height = width, height
        self._ph, self._pw = -(-height // PAD) * PAD, -(-width // PAD) * PAD
        self._ref: torch.Tensor | None = None
        self._flow: torch.Tensor | None = None  # the previous P-frame's decoded flow (the motion context)

    def reset(self) -> None:
        """Forget the reference (after a seek: decoding must restart at an I-frame)."""
        self._ref = None
        self._flow = None

    def decode(self, data: bytes) -> tuple[FramePacket, np.ndarray]:
        """One packet -> (its header, the decoded RGB8 frame). Errors raise `DecodeError`."""
        try:
            p = unpack_packet(data)
        except BitstreamError as exc:
            raise DecodeError(str(exc)) from None
        lo, hi = self.pframes.quality_range
        if not lo <= p.quality <= hi:
            raise DecodeError(f"quality {p.quality} out of range")
        units = [LatentStreams(u.hyper, u.latent, u.symbols_crc, float("nan")) for u in p.units]
        if p.frame_type == FrameType.I:
            x_hat = self.image.decode_tensor(units[0], (self._ph, self._pw), self.pframes.intra_quality(self.image, p.quality),
                                             exact=p.exact)
            self._flow = None
        else:
            if self._ref is None:
                raise DecodeError("P-frame without a reference (decoding must start at an I-frame)")
            if not lo <= p.motion_q <= hi:
                raise DecodeError(f"motion quality {p.motion_q} out of range")
            x_hat, self._flow = self.pframes.decode_with_flow(units[0], units[1], self._ref, p.quality, p.motion_q,
                                                              prev_flow=self._flow, exact=p.exact)
        self._ref = on_grid(x_hat)
        return p, _to_rgb(self._ref, self.height, self.width)

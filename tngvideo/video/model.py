"""The P-frame model: flow estimation, motion coding, motion compensation, residual coding.

    flow = FlowNet(x, ref)                                  (encoder side only)
    flow_hat = motion coder(flow)                           (hyperprior autoencoder, 2 channels)
    pred = MotionCompensation(ref, flow_hat)                (backward warp + refinement CNN)
    res_hat = residual coder(x - pred + 0.5) - 0.5          (hyperprior autoencoder, 3 channels)
    x_hat = pred + res_hat                                  (then LoopFilter(x_hat, pred), if the model has one)

A conditional model (`with_conditional`) also feeds features of the prediction to the residual
coder: `prediction_context(pred)` adds terms to its analysis output, its entropy model's means
and its synthesis input (never to its scales, which stay exact); the terms start at zero. A model
with temporal motion context (`with_motion_context`) does the same for the motion coder from the
previous P-frame's decoded flow (zero flow after an I-frame or a frame coded without motion).

Both coders carry their own gain vectors over the same quality levels as the image codec, so
one quality value steers every component. The residual coder has the image codec's shape and
starts from its weights (the +0.5 offset makes a residual look like a grey picture); the last
layer of the compensation network starts at zero, so an untrained refinement passes the warped
reference through.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace

import torch
from torch import nn
import torch.nn.functional as F

from tngvideo.latent.model import (
    HyperpriorAutoencoder, LatentCondition, ModelConfig, with_channel_context, with_context,
)
from tngvideo.video.flow_dis import dis_flow
from tngvideo.video.warp import backward_warp

RESIDUAL_OFFSET = 0.5
# Flow is coded up to this many pixels per frame (larger estimates are clipped, in training and
# in the encoder): the motion coders were trained on motion up to about 30 pixels and diverge
# beyond it (tng-video-5 turns a uniform 64-pixel flow into 1,600). Faster motion is coded
# without motion, or intra.
MAX_CODED_FLOW = 32.0

# Initial log-gain offset of the motion coder: an untrained motion coder quantizes flow (pixels)
# with a step about 7x coarser than an image coder quantizes intensities. Starting at the image
# coder's gains, motion took 0.5 bpp (11 kB for a 640x272 frame) after 658 joint steps.
MOTION_GAIN_OFFSET = 2.0


def codable_flow(flow: torch.Tensor) -> torch.Tensor:
    """What the motion coder codes of an estimated flow: NaNs zeroed, clipped to MAX_CODED_FLOW."""
    return torch.nan_to_num(flow, nan=0.0).clamp(-MAX_CODED_FLOW, MAX_CODED_FLOW)


def reconstruct(pred: torch.Tensor, res_hat: torch.Tensor) -> torch.Tensor:
    """A P-frame's reconstruction from its prediction and the residual coder's output."""
    return pred + res_hat - RESIDUAL_OFFSET


def previous_flow(prev_flow: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """The motion context's input: the previous P-frame's decoded flow, or zero flow shaped like `like`."""
    return like.new_zeros((like.shape[0], 2, *like.shape[-2:])) if prev_flow is None else prev_flow


def _zero_last(net: nn.Sequential) -> nn.Sequential:
    last = [m for m in net if isinstance(m, nn.Conv2d)][-1]
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return net


def local_correlation(a: torch.Tensor, b: torch.Tensor, radius: int) -> torch.Tensor:
    """Cost volume: channel-mean of a(p) * b(p + d) for every displacement d in [-r, r]^2.

    (B, C, H, W) x 2 -> (B, (2r+1)^2, H, W); channel k = (dy + r) * (2r+1) + (dx + r).
    """
    h, w = a.shape[-2:]
    bp = F.pad(b, (radius, radius, radius, radius))
    n = 2 * radius + 1
    return torch.cat([(a * bp[:, :, dy : dy + h, dx : dx + w]).mean(1, keepdim=True)
                      for dy in range(n) for dx in range(n)], dim=1)


class FlowNet(nn.Module):
    """A small PWC-style pyramid: shared features, and at each scale (coarse to fine) a local
    cost volume between the current features and the reference features warped by the flow so
    far, from which a CNN estimates a flow update.

    Estimates the flow that maps the current frame onto the reference (backward warping),
    finishing at half resolution and upsampling. Matching through a cost volume is what makes
    it learn in a few thousand steps; a plain CNN regressing flow from stacked frames does not.
    """

    def __init__(self, *, levels: int = 4, width: int = 32, radius: int = 3):
        super().__init__()
        self.levels, self.radius = levels, radius
        chans = [max(4, width * (i + 1) // 2) for i in range(levels)]
        self.features = nn.ModuleList()
        prev = 3
        for c in chans:
            self.features.append(nn.Sequential(
                nn.Conv2d(prev, c, 3, stride=2, padding=1), nn.LeakyReLU(0.1, inplace=True),
                nn.Conv2d(c, c, 3, padding=1), nn.LeakyReLU(0.1, inplace=True),
            ))
            prev = c
        corr = (2 * radius + 1) ** 2
        d = torch.arange(-radius, radius + 1, dtype=torch.float32)
        dy, dx = torch.meshgrid(d, d, indexing="ij")
        self.register_buffer("offsets", torch.stack([dx.flatten(), dy.flatten()]).view(1, 2, corr, 1, 1), persistent=False)
        self.log_temperature = nn.Parameter(torch.full((levels,), 2.3))
        self.nets = nn.ModuleList(
            _zero_last(nn.Sequential(
                nn.Conv2d(corr + c + 2, 2 * width, 3, padding=1), nn.LeakyReLU(0.1, inplace=True),
                nn.Conv2d(2 * width, 3 * width // 2, 3, padding=1), nn.LeakyReLU(0.1, inplace=True),
                nn.Conv2d(3 * width // 2, width, 3, padding=1), nn.LeakyReLU(0.1, inplace=True),
                nn.Conv2d(width, 2, 3, padding=1),
            ))
            for c in chans
        )

    def _pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for f in self.features:
            x = f(x)
            out.append(x)
        return out

    def forward(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        fx, fr = self._pyramid(x), self._pyramid(ref)
        flow = torch.zeros_like(fx[-1][:, :2])
        for level in reversed(range(self.levels)):
            if flow.shape[-2:] != fx[level].shape[-2:]:
                flow = 2.0 * F.interpolate(flow, size=fx[level].shape[-2:], mode="bilinear", align_corners=False)
            a = F.normalize(fx[level], dim=1)
            corr = local_correlation(a, F.normalize(backward_warp(fr[level], flow), dim=1), self.radius) * a.shape[1]
            # soft-argmax over the cost volume: an explicit match the CNN then corrects
            p = torch.softmax(corr * self.log_temperature[level].exp(), dim=1)
            match = (p.unsqueeze(1) * self.offsets).sum(2)
            flow = flow + match + self.nets[level](torch.cat([corr, fx[level], flow], dim=1))
        return 2.0 * F.interpolate(flow, size=x.shape[-2:], mode="bilinear", align_corners=False)


class HalfResRefiner(nn.Module):
    """A correction CNN that works at half resolution: a full-resolution head, a strided
    convolution, a residual body and a transposed convolution back. The last layer starts at
    zero, so an untrained refiner corrects nothing."""

    def __init__(self, in_channels: int, *, width: int = 48):
        super().__init__()
        self.head = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.LeakyReLU(inplace=True),
                                  nn.Conv2d(width, width, 3, stride=2, padding=1), nn.LeakyReLU(inplace=True))
        self.body = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.LeakyReLU(inplace=True),
                                  nn.Conv2d(width, width, 3, padding=1), nn.LeakyReLU(inplace=True))
        self.tail = _zero_last(nn.Sequential(
            nn.ConvTranspose2d(width, width, 4, stride=2, padding=1), nn.LeakyReLU(inplace=True),
            nn.Conv2d(width, 3, 3, padding=1),
        ))

    def correction(self, inputs: torch.Tensor) -> torch.Tensor:
        h = self.head(inputs)
        return self.tail(h + self.body(h))


class MotionCompensation(HalfResRefiner):
    """Warp the reference with the decoded flow, then refine from the warped and the plain
    reference and the flow."""

    def __init__(self, *, width: int = 48):
        super().__init__(8, width=width)

    def forward(self, ref: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        warped = backward_warp(ref, flow)
        return warped + self.correction(torch.cat([warped, ref, flow], dim=1))


class LoopFilter(HalfResRefiner):
    """In-loop filter of a P-frame: corrects the reconstruction (prediction + decoded residual)
    from the reconstruction and the prediction it was coded against, before it becomes the next
    reference. Starts as the identity."""

    def __init__(self, *, width: int = 48):
        super().__init__(6, width=width)

    def forward(self, x_hat: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        return x_hat + self.correction(torch.cat([x_hat, pred], dim=1))


class LatentContext(nn.Module):
    """Features of what both sides already have (a P-frame's prediction, or the previous
    P-frame's decoded flow) at a coded latent's resolution (four stride-2 stages), turned into the
    terms of a `LatentCondition`: to that coder's analysis output, its means and its synthesis
    input. The input enters as (input + shift) * scale. The three heads start at zero, so a new
    context changes nothing until it is trained."""

    def __init__(self, in_channels: int, latent_channels: int, *, shift: float = 0.0, scale: float = 1.0,
                 width: int = 64):
        super().__init__()
        self.shift, self.scale = shift, scale
        layers: list[nn.Module] = []
        cin = in_channels
        for _ in range(4):
            layers += [nn.Conv2d(cin, width, 5, stride=2, padding=2), nn.LeakyReLU(inplace=True)]
            cin = width
        self.features = nn.Sequential(*layers)
        self.heads = nn.ModuleDict({k: nn.Conv2d(width, latent_channels, 3, padding=1)
                                    for k in ("analysis", "mean", "synthesis")})
        for head in self.heads.values():
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def forward(self, inputs: torch.Tensor) -> LatentCondition:
        f = self.features((inputs + self.shift) * self.scale)
        return LatentCondition(**{k: head(f) for k, head in self.heads.items()})


def prediction_context(config: "VideoModelConfig") -> LatentContext:
    """The residual coder's context: the prediction, centred as the residual is."""
    return LatentContext(3, config.residual.latent_channels, shift=-RESIDUAL_OFFSET)


def motion_context(config: "VideoModelConfig") -> LatentContext:
    """The motion coder's temporal context: the previous P-frame's decoded flow (pixels, scaled
    to about unit size)."""
    return LatentContext(2, config.motion.latent_channels, scale=1 / 8)


FLOW_ESTIMATORS = ("net", "dis")


@dataclass(frozen=True)
class VideoModelConfig:
    motion: ModelConfig = ModelConfig(channels=64, latent_channels=96)
    residual: ModelConfig = ModelConfig()
    # the encoder's flow estimator: "net" = the learned FlowNet, "dis" = OpenCV's DIS
    flow_estimator: str = "net"
    loop_filter: bool = False  # a LoopFilter after each P-frame's reconstruction
    conditional: bool = False  # the residual coder is conditioned on the prediction (prediction_context)
    motion_context: bool = False  # the motion coder is conditioned on the previous decoded flow (motion_context)

    def __post_init__(self):
        if self.flow_estimator not in FLOW_ESTIMATORS:
            raise ValueError(f"flow estimator must be one of {FLOW_ESTIMATORS}, not {self.flow_estimator!r}")


@dataclass
class PFrameResult:
    x_hat: torch.Tensor
    prediction: torch.Tensor
    flow_hat: torch.Tensor  # the decoded flow (the next P-frame's temporal context)
    bits_motion: torch.Tensor  # (B,)
    bits_residual: torch.Tensor  # (B,)
    lmbda: torch.Tensor  # (B,)


class PFrameModel(nn.Module):
    def __init__(self, config: VideoModelConfig = VideoModelConfig()):
        super().__init__()
        self.config = config
        self.flow = FlowNet()
        self.motion = HyperpriorAutoencoder(config.motion, in_channels=2, out_channels=2)
        with torch.no_grad():  # flow is in pixels, not in [0, 1]: start with a coarser quantizer
            self.motion.log_gain.sub_(MOTION_GAIN_OFFSET)
            self.motion.log_inv_gain.add_(MOTION_GAIN_OFFSET)
        self.mc = MotionCompensation()
        self.residual = HyperpriorAutoencoder(config.residual, in_channels=3, out_channels=3)
        if config.loop_filter:
            self.filter = LoopFilter()
        if config.conditional:
            self.condition = prediction_context(config)
        if config.motion_context:
            self.motion_condition = motion_context(config)

    def residual_condition(self, pred: torch.Tensor) -> LatentCondition | None:
        """The residual coder's condition from the prediction (None: an unconditional model)."""
        return self.condition(pred) if self.config.conditional else None

    def flow_condition(self, prev_flow: torch.Tensor | None, like: torch.Tensor) -> LatentCondition | None:
        """The motion coder's condition from the previous P-frame's decoded flow (zero flow after an
        I-frame or a frame without motion; None: a model without temporal motion context)."""
        if not self.config.motion_context:
            return None
        return self.motion_condition(previous_flow(prev_flow, like))

    def reconstruct(self, pred: torch.Tensor, res_hat: torch.Tensor) -> torch.Tensor:
        """`reconstruct`, then the loop filter where the model has one."""
        x_hat = reconstruct(pred, res_hat)
        return self.filter(x_hat, pred) if self.config.loop_filter else x_hat

    def estimate_flow(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """The encoder's flow from x to ref (backward warping), by the configured estimator."""
        return dis_flow(x, ref) if self.config.flow_estimator == "dis" else self.flow(x, ref)

    def forward(self, x: torch.Tensor, ref: torch.Tensor, quality: torch.Tensor, *, amp: bool = False,
                flow_ref: torch.Tensor | None = None, prev_flow: torch.Tensor | None = None) -> PFrameResult:
        """Training pass for one P-frame predicted from `ref` (the previous decoded frame), with
        motion estimated against `flow_ref` (the previous source frame, as the encoder does;
        default `ref`) and coded in the temporal context of `prev_flow` (the previous P-frame's
        decoded flow; None after an I-frame)."""
        flow = codable_flow(self.estimate_flow(x, ref if flow_ref is None else flow_ref))
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
            motion_condition = self.flow_condition(prev_flow, x)
        flow_hat, my, mz = self.motion.code(flow, quality, amp=amp, condition=motion_condition)
        pred = self.mc(ref, flow_hat)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
            condition = self.residual_condition(pred)
        res_hat, ry, rz = self.residual.code(x - pred + RESIDUAL_OFFSET, quality, amp=amp, condition=condition)
        x_hat = self.reconstruct(pred, res_hat)
        return PFrameResult(x_hat=x_hat, prediction=pred, flow_hat=flow_hat, bits_motion=my + mz, bits_residual=ry + rz,
                            lmbda=self.residual.lmbda(quality))


CODER_ROLES = ("motion", "residual")


def with_video_context(model: PFrameModel, roles: tuple[str, ...] = CODER_ROLES, *, channel_slices: int = 0
                       ) -> PFrameModel:
    """A copy of `model` whose coders in `roles` gain a (zero-initialised) checkerboard context
    model, and with `channel_slices` > 1 a channel-wise context over that many latent slices as
    well: they code as before until the new networks are trained."""
    new = copy.deepcopy(model)
    changes = {}
    for role in roles:
        coder = getattr(model, role)
        if not coder.config.context:
            coder = with_context(coder)
        if channel_slices > 1 and coder.config.channel_slices <= 1:
            coder = with_channel_context(coder, channel_slices)
        setattr(new, role, coder)
        changes[role] = coder.config
    new.config = replace(model.config, **changes)
    return new


def _with_part(model: PFrameModel, flag: str, attr: str, make, what: str) -> PFrameModel:
    """A copy of `model` with config `flag` set and a new (zero-initialised) part `make(config)` as
    `attr`, on the model's device."""
    if getattr(model.config, flag):
        raise ValueError(f"the model already has {what}")
    new = copy.deepcopy(model)
    new.config = replace(model.config, **{flag: True})
    setattr(new, attr, make(new.config).to(next(model.parameters()).device))
    return new


def with_loop_filter(model: PFrameModel) -> PFrameModel:
    """A copy of `model` with a (zero-initialised) loop filter: it codes exactly as before until
    the filter is trained."""
    return _with_part(model, "loop_filter", "filter", lambda _: LoopFilter(), "a loop filter")


def with_conditional(model: PFrameModel) -> PFrameModel:
    """A copy of `model` whose residual coder is conditioned on the prediction (`prediction_context`,
    zero-initialised): it codes exactly as before until the context is trained."""
    return _with_part(model, "conditional", "condition", prediction_context, "a prediction context")


def with_motion_context(model: PFrameModel) -> PFrameModel:
    """A copy of `model` whose motion coder is conditioned on the previous P-frame's decoded flow
    (`motion_context`, zero-initialised): it codes exactly as before until the context is trained."""
    return _with_part(model, "motion_context", "motion_condition", motion_context, "a temporal motion context")

"""The hyperprior latent coder that the image, motion and residual coders all use: analysis and
synthesis transforms, a mean-scale hyperprior and gain vectors (the intra model itself is
`tngvideo.image.model.TNGImageModel`).

One set of weights covers the whole rate range. The latent is multiplied by a per-channel gain
vector before quantization and by an inverse gain after it (Cui et al., CVPR 2021); there is one
pair of gain vectors per quality level, and a fractional quality interpolates between the two
neighbouring levels geometrically, so quality is a continuous knob.

The scale branch of the hyper-synthesis (`h_s`, which picks each latent's probability table)
uses only convolutions and ReLUs so that it can be evaluated exactly in integer arithmetic
(`tngvideo.entropy.ExactNet`) when coding. The mean branch (`h_m`) stays in float: the mean
only shifts the reconstruction, it never changes which table is used.

With `context=True` the latent is coded in two passes over a checkerboard (He et al., CVPR
2021): the anchors (even i + j) with the hyperprior's parameters, then the other half with
parameters refined from the decoded anchors around them. The scale refinement (`ctx_s`) sees
only integers (the anchors' symbols) and the hyperprior's fixed-point log-scales, through
convolutions and ReLUs, so it is exact as well; the mean refinement (`ctx_m`) is float.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace

import torch
from torch import nn

from tngvideo.entropy import (
    FactorizedDensity,
    GaussianConditional,
    add_uniform_noise,
    bits_from_likelihood,
    ste_round,
)
from tngvideo.nn import AnalysisStage, SynthesisStage, conv, deconv

# Ten levels, geometric from 0.00025 to 0.18 (a factor of about 2.08 per level): the image model
# spans about 0.1 to 2 bpp on Kodak. The first shipped models used the eight levels 0.0018..0.18,
# still read from their files (the table travels with the weights).
DEFAULT_LAMBDAS = tuple(round(0.00025 * (0.18 / 0.00025) ** (k / 9), 6) for k in range(10))
MAX_LOG_SCALE = math.log(256.0)
# How training relaxes rounding (see HyperpriorCoder.code_latent).
QUANTIZATION_MODES = ("mixed", "noise")


@dataclass(frozen=True)
class ModelConfig:
    channels: int = 128  # N: transform and hyper-latent channels
    latent_channels: int = 192  # M: latent channels
    lambdas: tuple[float, ...] = DEFAULT_LAMBDAS
    shortcuts: bool = True  # Haar-wavelet shortcuts in the analysis and synthesis stages
    context: bool = False  # two-pass checkerboard context model over the latent
    channel_slices: int = 0  # >1: channel-wise context over that many latent slices (needs `context`)

    def __post_init__(self) -> None:
        if self.channel_slices > 1 and not self.context:
            raise ValueError("a channel-wise context needs the checkerboard context (context=True)")
        if self.channel_slices > 1 and self.latent_channels % self.channel_slices:
            raise ValueError(f"{self.latent_channels} latent channels do not split into {self.channel_slices} slices")

    @property
    def levels(self) -> int:
        return len(self.lambdas)

    @property
    def slices(self) -> list[tuple[int, int]]:
        """Channel ranges coded one after another (one range without a channel-wise context)."""
        s = max(1, self.channel_slices)
        c = self.latent_channels // s
        return [(k * c, (k + 1) * c) for k in range(s)]

    @property
    def min_quality(self) -> float:
        return 1.0

    @property
    def max_quality(self) -> float:
        return float(self.levels)


@dataclass
class LatentCondition:
    """What a conditional coder adds from information both sides have (a P-frame's prediction),
    all at the latent's resolution and in the ungained domain: to the analysis output, to the
    entropy model's means, and to the synthesis input. Scales never depend on it: they stay
    exact (integer) so a file decodes on any machine."""

    analysis: torch.Tensor
    mean: torch.Tensor
    synthesis: torch.Tensor


class HyperpriorCoder(nn.Module):
    """The entropy side shared by every coded latent (image, motion, residual).

    A mean-scale hyperprior over an M-channel latent, the gain vectors of the quality knob,
    and the rate terms. Subclasses add the analysis (`g_a`) and synthesis (`g_s`) transforms.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        n, m = config.channels, config.latent_channels
        self.h_a = nn.Sequential(
            conv(m, n, 3, 1), nn.LeakyReLU(inplace=True), conv(n, n), nn.LeakyReLU(inplace=True), conv(n, n)
        )
        self.h_s = nn.Sequential(
            deconv(n, n), nn.ReLU(), deconv(n, n), nn.ReLU(), conv(n, m, 3, 1)
        )
        self.h_m = nn.Sequential(
            deconv(n, n), nn.LeakyReLU(inplace=True), deconv(n, n), nn.LeakyReLU(inplace=True), conv(n, m, 3, 1)
        )
        self.hyper_density = FactorizedDensity(n)
        self.gaussian = GaussianConditional()
        if config.context:
            self._add_context_nets()
        if config.channel_slices > 1:
            self._add_channel_nets()
        lam = torch.tensor(config.lambdas, dtype=torch.float64)
        self.register_buffer("log_lambdas", torch.log(lam).float(), persistent=False)
        # High-rate theory: step size ~ 1/sqrt(lambda). Start the gains there.
        init = 0.5 * (torch.log(lam) - torch.log(lam).mean()).float()
        self.log_gain = nn.Parameter(init.view(-1, 1).repeat(1, m))
        self.log_inv_gain = nn.Parameter(-init.view(-1, 1).repeat(1, m))

    def _add_context_nets(self) -> None:
        """Inputs: [anchor symbols | hyperprior log-scales] and [anchor values | hyperprior means];
        outputs: corrections for the non-anchors, zero at the start (= the plain hyperprior)."""
        m = self.config.latent_channels
        self.ctx_s = nn.Sequential(
            conv(2 * m, m, 5, 1), nn.ReLU(), conv(m, m, 1, 1), nn.ReLU(), conv(m, m, 1, 1)
        )
        self.ctx_m = nn.Sequential(
            conv(2 * m, m, 5, 1), nn.LeakyReLU(inplace=True), conv(m, m, 1, 1), nn.LeakyReLU(inplace=True),
            conv(m, m, 1, 1)
        )
        for net in (self.ctx_s, self.ctx_m):
            nn.init.zeros_(net[-1].weight)
            nn.init.zeros_(net[-1].bias)

    def _add_channel_nets(self) -> None:
        """One pair of nets per later slice and pass (anchors, then the rest): from the slices
        already decoded ([symbols | this slice's log-scales] for the scale, [values | means] for
        the mean) to corrections of this slice's parameters, zero at the start. Net
        `(k - 1) + p * (S - 1)` serves slice k in pass p."""
        slices = self.config.slices
        c = slices[0][1]
        hidden = 2 * c

        def net(k: int, act) -> nn.Sequential:
            return nn.Sequential(conv((k + 1) * c, hidden, 3, 1), act(), conv(hidden, hidden, 1, 1), act(),
                                 conv(hidden, c, 1, 1))

        ks = [k for _ in range(2) for k in range(1, len(slices))]
        self.chan_s = nn.ModuleList(net(k, nn.ReLU) for k in ks)
        self.chan_m = nn.ModuleList(net(k, nn.LeakyReLU) for k in ks)
        for nets in (self.chan_s, self.chan_m):
            for n in nets:
                nn.init.zeros_(n[-1].weight)
                nn.init.zeros_(n[-1].bias)

    def channel_net_index(self, k: int, second_pass: bool) -> int:
        return (k - 1) + int(second_pass) * (len(self.config.slices) - 1)

    # -- quality -------------------------------------------------------------------------
    def _interp(self, table: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
        q = quality.float().clamp(self.config.min_quality, self.config.max_quality) - 1.0
        lo = q.floor().long().clamp(max=table.shape[0] - 2)
        t = (q - lo.float()).unsqueeze(-1) if table.dim() == 2 else q - lo.float()
        return table[lo] * (1 - t) + table[lo + 1] * t

    def gains(self, quality: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-image (B, M, 1, 1) gain and inverse gain for continuous qualities (B,)."""
        g = torch.exp(self._interp(self.log_gain, quality))
        gi = torch.exp(self._interp(self.log_inv_gain, quality))
        return g[:, :, None, None], gi[:, :, None, None]

    def exact_gains(self, quality: float) -> tuple[torch.Tensor, torch.Tensor]:
        """`gains` for one quality in float64, computed on the CPU with Python's `math` (the
        same on every device): what the fixed-point decoder rounds to its grid. (1, M, 1, 1) each."""
        q = min(max(float(quality), self.config.min_quality), self.config.max_quality) - 1.0
        lo = min(int(math.floor(q)), self.config.levels - 2)
        t = q - lo

        def interp(table: torch.Tensor) -> torch.Tensor:
            a, b = table[lo].detach().double().cpu().tolist(), table[lo + 1].detach().double().cpu().tolist()
            return torch.tensor([math.exp(u * (1 - t) + v * t) for u, v in zip(a, b)],
                                dtype=torch.float64).view(1, -1, 1, 1)

        return interp(self.log_gain), interp(self.log_inv_gain)

    def lmbda(self, quality: torch.Tensor) -> torch.Tensor:
        return torch.exp(self._interp(self.log_lambdas, quality))

    def lambda_at(self, quality: float) -> float:
        """lambda(quality) in float64 (the same interpolation as `lmbda`)."""
        q = min(max(float(quality), self.config.min_quality), self.config.max_quality) - 1.0
        lo = min(int(math.floor(q)), self.config.levels - 2)
        t = q - lo
        log_l = [math.log(v) for v in self.config.lambdas]
        return math.exp(log_l[lo] * (1 - t) + log_l[lo + 1] * t)

    def quality_for_lambda(self, lmbda: float) -> float:
        """The quality whose lambda is `lmbda` (clamped to the range), to 4 decimals.

        Computed in float64 from the config, so an encoder and a decoder agree on it."""
        log_l = [math.log(v) for v in self.config.lambdas]
        t = math.log(lmbda)
        if t <= log_l[0]:
            return self.config.min_quality
        for k in range(len(log_l) - 1):
            if t <= log_l[k + 1]:
                return round(1.0 + k + (t - log_l[k]) / (log_l[k + 1] - log_l[k]), 4)
        return self.config.max_quality

    # -- entropy parameters ----------------------------------------------------------------
    def latent_params(self, y: torch.Tensor, z_hat: torch.Tensor, rnd, *, amp: bool = False,
                      mean_offset: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, log-scale) of every element of the gained latent y given the hyper-latent z_hat
        (and, for a conditional coder, `mean_offset` added to the hyperprior's means).

        Without context both come from the hyperprior. With context the non-anchors' come from
        `ctx_s` / `ctx_m` over the anchors as the decoder will have them: `rnd` (rounding, or a
        training relaxation of it) of y minus the hyperprior mean."""
        dev = y.device.type
        with torch.autocast(dev, dtype=torch.bfloat16, enabled=amp):
            log_scale = self.h_s(z_hat)
            mean = self.h_m(z_hat)
        log_scale, mean = log_scale.float(), mean.float()
        if mean_offset is not None:
            mean = mean + mean_offset.float()
        if self.config.context:
            mean, log_scale = self._context_params(y, mean, log_scale, rnd, amp)
        return mean, log_scale.clamp(max=MAX_LOG_SCALE)

    def _context_params(self, y: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor, rnd, amp: bool
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """The parameters the decoder will have, pass by pass and slice by slice (see LatentCodec):
        anchors from the hyperprior (and the slices before), the rest refined from all anchors
        (and the slices before)."""
        dev = y.device.type
        anchor = checkerboard_anchors(y.shape[-2:], y.device)
        keep = 1.0 - anchor
        slices = self.config.slices

        def run(second_pass: bool, means: torch.Tensor, scales: torch.Tensor, mask: torch.Tensor,
                known_sym: torch.Tensor | None, known_val: torch.Tensor | None):
            out_m, out_s, syms, vals = [], [], [], []
            for k, (a, b) in enumerate(slices):
                m_k, s_k = means[:, a:b], scales[:, a:b]
                if k > 0:
                    prev_sym, prev_val = torch.cat(syms, 1), torch.cat(vals, 1)
                    with torch.autocast(dev, dtype=torch.bfloat16, enabled=amp):
                        d_s, d_m = self.channel_deltas(k, second_pass, prev_sym, prev_val, s_k, m_k)
                    s_k = s_k + d_s.float() * mask
                    m_k = m_k + d_m.float() * mask
                sym_k = rnd(y[:, a:b] - m_k) * mask
                if known_sym is not None:  # the second pass sees this slice's anchors, too
                    syms.append(known_sym[:, a:b] + sym_k)
                    vals.append(known_val[:, a:b] + (sym_k + m_k) * mask)
                else:
                    syms.append(sym_k)
                    vals.append((sym_k + m_k) * mask)
                out_m.append(m_k)
                out_s.append(s_k)
            return torch.cat(out_m, 1), torch.cat(out_s, 1), torch.cat(syms, 1), torch.cat(vals, 1)

        a_mean, a_scale, a_sym, a_val = run(False, mean, log_scale, anchor, None, None)
        with torch.autocast(dev, dtype=torch.bfloat16, enabled=amp):
            d_scale = self.ctx_s(torch.cat([a_sym, log_scale], dim=1))  # LatentCodec: the same, exactly
            d_mean = self.ctx_m(torch.cat([a_val, mean], dim=1))
        n_mean, n_scale = mean + d_mean.float() * keep, log_scale + d_scale.float() * keep
        if len(slices) > 1:
            n_mean, n_scale, _, _ = run(True, n_mean, n_scale, keep, a_sym, a_val)
        is_anchor = anchor.bool()
        return torch.where(is_anchor, a_mean, n_mean), torch.where(is_anchor, a_scale, n_scale)

    def channel_deltas(self, k: int, second_pass: bool, prev_sym: torch.Tensor, prev_val: torch.Tensor,
                       log_scale: torch.Tensor, mean: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Float corrections (log-scale, mean) of slice k from the slices before it (training; the
        codec evaluates the scale net exactly)."""
        i = self.channel_net_index(k, second_pass)
        return (self.chan_s[i](torch.cat([prev_sym, log_scale], dim=1)),
                self.chan_m[i](torch.cat([prev_val, mean], dim=1)))

    # -- training ------------------------------------------------------------------------
    def code_latent(self, y: torch.Tensor, *, amp: bool = False, quantization: str = "mixed",
                    mean_offset: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training pass over a gained latent: (y_hat, bits of y, bits of z), per batch item.

        quantization "mixed": noise for the rate terms, straight-through rounding for what the
        synthesis transforms see (what the decoder will see). "noise": uniform noise for both
        (the classic relaxation). In eval mode the rate terms use rounded values, so they
        estimate the coded rate, and synthesis sees rounded values either way.
        """
        if quantization not in QUANTIZATION_MODES:
            raise ValueError(f"quantization must be one of {QUANTIZATION_MODES}, not {quantization!r}")
        noisy = self.training and quantization == "noise"
        perturb = add_uniform_noise if self.training else torch.round
        dev = y.device.type
        with torch.autocast(dev, dtype=torch.bfloat16, enabled=amp):
            z = self.h_a(y)
        z = z.float()
        z_tilde = add_uniform_noise(z) if noisy else None
        z_hat = z_tilde if noisy else ste_round(z)
        mean, log_scale = self.latent_params(y, z_hat, ste_round, amp=amp, mean_offset=mean_offset)
        with torch.autocast(dev, enabled=False):
            bits_z = bits_from_likelihood(self.hyper_density.likelihood(z_tilde if noisy else perturb(z)))
            y_tilde = perturb(y - mean) + mean
            bits_y = bits_from_likelihood(self.gaussian.likelihood(y_tilde, mean, torch.exp(log_scale)))
        return (y_tilde if noisy else ste_round(y - mean) + mean), bits_y, bits_z


def checkerboard_anchors(hw: tuple[int, int], device: torch.device | str = "cpu") -> torch.Tensor:
    """(1, 1, h, w) float mask: 1 at the anchors (i + j even), coded first; 0 at the others."""
    h, w = int(hw[0]), int(hw[1])
    i = torch.arange(h, device=device).view(-1, 1)
    j = torch.arange(w, device=device).view(1, -1)
    return ((i + j) % 2 == 0).float().view(1, 1, h, w)


def _interp_log_table(old_log_l: torch.Tensor, table: torch.Tensor, new_log_l: torch.Tensor) -> torch.Tensor:
    """Rows of `table` (one per old log-lambda) linearly inter/extrapolated to new log-lambdas."""
    rows = []
    for t in new_log_l.tolist():
        k = int(torch.searchsorted(old_log_l, torch.tensor(t)).clamp(1, len(old_log_l) - 1))
        w = (t - float(old_log_l[k - 1])) / float(old_log_l[k] - old_log_l[k - 1])
        rows.append(table[k - 1] * (1 - w) + table[k] * w)
    return torch.stack(rows)


def with_lambdas(model: "HyperpriorCoder", lambdas: tuple[float, ...]) -> "HyperpriorCoder":
    """A copy of `model` over a new lambda table: every weight kept, the gain vectors of each new
    level interpolated (or extrapolated) from the old levels in log-lambda."""
    new = type(model)(replace(model.config, lambdas=tuple(lambdas)))
    state = {k: v for k, v in model.state_dict().items() if k not in ("log_gain", "log_inv_gain")}
    missing = new.load_state_dict(state, strict=False).missing_keys
    if set(missing) != {"log_gain", "log_inv_gain"}:
        raise ValueError(f"unexpected missing weights: {missing}")
    old_l, new_l = torch.log(torch.tensor(model.config.lambdas)), torch.log(torch.tensor(lambdas))
    with torch.no_grad():
        new.log_gain.copy_(_interp_log_table(old_l, model.log_gain.detach().float(), new_l))
        new.log_inv_gain.copy_(_interp_log_table(old_l, model.log_inv_gain.detach().float(), new_l))
    return new


def with_context(model: "HyperpriorCoder") -> "HyperpriorCoder":
    """A copy of `model` with a context model added, zero-initialised: it codes exactly as the
    plain hyperprior until the context networks are trained."""
    if model.config.context:
        raise ValueError("the model already has a context model")
    new = copy.deepcopy(model)
    new.config = replace(model.config, context=True)
    new._add_context_nets()
    return new.to(next(model.parameters()).device)


def with_channel_context(model: "HyperpriorCoder", slices: int) -> "HyperpriorCoder":
    """A copy of `model` (which must have the checkerboard context) with a channel-wise context
    over `slices` latent slices added, zero-initialised: it codes exactly as before until the
    new networks are trained."""
    if model.config.channel_slices > 1:
        raise ValueError("the model already has a channel-wise context")
    new = copy.deepcopy(model)
    new.config = replace(model.config, channel_slices=slices)
    new._add_channel_nets()
    return new.to(next(model.parameters()).device)


class HyperpriorAutoencoder(HyperpriorCoder):
    """Analysis/synthesis transforms (4 stride-2 stages, GDN, Haar shortcuts) over the hyperprior.

    The image codec codes RGB with it; the video codec codes optical flow and residuals.
    """

    PAD_MULTIPLE = 64  # g_a (16) x h_a (4)

    def __init__(self, config: ModelConfig, *, in_channels: int = 3, out_channels: int = 3):
        super().__init__(config)
        n, m = config.channels, config.latent_channels
        sc = config.shortcuts
        self.g_a = nn.Sequential(
            AnalysisStage(in_channels, n, shortcut=sc), AnalysisStage(n, n, shortcut=sc),
            AnalysisStage(n, n, shortcut=sc), AnalysisStage(n, m, gdn=False, shortcut=sc)
        )
        self.g_s = nn.Sequential(
            SynthesisStage(m, n, shortcut=sc), SynthesisStage(n, n, shortcut=sc),
            SynthesisStage(n, n, shortcut=sc), SynthesisStage(n, out_channels, gdn=False, shortcut=sc)
        )

    def code(self, x: torch.Tensor, quality: torch.Tensor, *, amp: bool = False, quantization: str = "mixed",
             condition: LatentCondition | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training pass: (reconstruction, bits of y, bits of z) per batch item; `condition` as
        `LatentCondition` says (the codec applies it the same way: `analysis` / `synthesis_input`)."""
        dev = x.device.type
        gain, inv_gain = self.gains(quality)
        y = self.analysis(x, condition, amp=amp)
        mean_offset = condition.mean.float() * gain if condition is not None else None
        y_hat, bits_y, bits_z = self.code_latent(y * gain, amp=amp, quantization=quantization,
                                                 mean_offset=mean_offset)
        with torch.autocast(dev, dtype=torch.bfloat16, enabled=amp):
            x_hat = self.g_s(self.synthesis_input(y_hat * inv_gain, condition))
        return x_hat.float(), bits_y, bits_z

    def analysis(self, x: torch.Tensor, condition: LatentCondition | None = None, *, amp: bool = False) -> torch.Tensor:
        """The ungained latent of x: g_a(x), plus the condition's analysis term."""
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
            y = self.g_a(x)
        return y.float() + condition.analysis.float() if condition is not None else y.float()

    @staticmethod
    def synthesis_input(latent: torch.Tensor, condition: LatentCondition | None = None) -> torch.Tensor:
        """What g_s decodes: the ungained decoded latent, plus the condition's synthesis term."""
        return latent + condition.synthesis.to(latent.dtype) if condition is not None else latent


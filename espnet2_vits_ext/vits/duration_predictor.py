"""Stochastic duration predictor of VITS.

VITS paper (Kim et al. 2021), Sec. 2.2.2 "Stochastic Duration Predictor" and Appendix B.3
(Figure 5a: training, 5b: inference). A flow-based generative model of the phoneme
durations ``d`` given the text encoding ``c``:

* training (Fig. 5a) maximises a variational lower bound of ``log p(d | c)`` with
  variational dequantisation ``u`` in (0, 1) and variational data augmentation ``nu``
  (paper eq. 8 and the text above it)::

      log p(d | c) >= E_q(u, nu | d, c) [ log p(d - u, nu | c) - log q(u, nu | d, c) ]

  ``q`` is a posterior flow (``post_*`` modules) from Gaussian noise, conditioned on ``c``
  and ``d``; ``p`` is the main flow (``flows``) that takes ``(log(d - u), nu)`` to a standard
  normal, conditioned on ``c``. The predictor returns the negative bound per utterance.
* inference (Fig. 5b) runs the main flow backwards from noise and keeps the first channel,
  the log duration.

The condition ``c`` is the text encoder's hidden output behind a stop-gradient (paper:
the duration loss does not train the text encoder), plus the speaker embedding if any.

Drop-in for ESPnet's ``espnet2/gan_tts/vits/duration_predictor.py``: same constructor,
same ``state_dict``, same ``forward`` interface and, for a given seed, the same noise.
"""

import math
from typing import List, Optional

import torch
import torch.nn.functional as F
from typeguard import typechecked

from espnet2_vits_ext.layers.dilated_depth_separable_conv import DilatedDepthSeparableConv
from espnet2_vits_ext.layers.duration_flows import ConvFlow, ElementwiseAffineFlow, LogFlow
from espnet2_vits_ext.layers.flip_flow import FlipFlow

LOG_2PI = math.log(2 * math.pi)


def _flow_stack(channels: int, kernel_size: int, flows: int, dds_conv_layers: int) -> torch.nn.ModuleList:
    """Elementwise affine layer, then ``flows`` x (spline coupling, flip) on 2 channels."""
    stack = torch.nn.ModuleList([ElementwiseAffineFlow(2)])
    for _ in range(flows):
        stack.append(ConvFlow(2, channels, kernel_size, layers=dds_conv_layers))
        stack.append(FlipFlow())
    return stack


def _gaussian_log_density(z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``log N(z; 0, I)`` summed over the valid frames: (B, C, T) -> (B,)."""
    return torch.sum(-0.5 * (LOG_2PI + z**2) * mask, [1, 2])


class StochasticDurationPredictor(torch.nn.Module):
    """Stochastic duration predictor (VITS Sec. 2.2.2, Figure 5)."""

    @typechecked
    def __init__(
        self,
        channels: int = 192,
        kernel_size: int = 3,
        dropout_rate: float = 0.5,
        flows: int = 4,
        dds_conv_layers: int = 3,
        global_channels: Optional[int] = -1,
    ):
        """Build the condition encoder, the main flow and the posterior flow.

        Args:
            channels (int): Number of channels (the text encoder's hidden size).
            kernel_size (int): Kernel size of the DDSConv blocks.
            dropout_rate (float): Dropout rate of the two conditioning DDSConv blocks.
            flows (int): Number of spline coupling layers in each of the two flows.
            dds_conv_layers (int): Number of layers of every DDSConv block.
            global_channels (Optional[int]): Channels of the global (speaker/language)
                conditioning; -1 (ESPnet's value) or None for none.

        """
        super().__init__()
        # Condition encoder of the text: c in the paper.
        self.pre = torch.nn.Conv1d(channels, channels, 1)
        self.dds = DilatedDepthSeparableConv(channels, kernel_size, layers=dds_conv_layers, dropout_rate=dropout_rate)
        self.proj = torch.nn.Conv1d(channels, channels, 1)

        # Main flow p(d - u, nu | c).
        self.log_flow = LogFlow()
        self.flows = _flow_stack(channels, kernel_size, flows, dds_conv_layers)

        # Posterior q(u, nu | d, c): encoder of the durations, then its own flow.
        self.post_pre = torch.nn.Conv1d(1, channels, 1)
        self.post_dds = DilatedDepthSeparableConv(
            channels, kernel_size, layers=dds_conv_layers, dropout_rate=dropout_rate
        )
        self.post_proj = torch.nn.Conv1d(channels, channels, 1)
        self.post_flows = _flow_stack(channels, kernel_size, flows, dds_conv_layers)

        if global_channels is not None and global_channels > 0:
            self.global_conv = torch.nn.Conv1d(global_channels, channels, 1)

    def forward(
        self,
        x: torch.Tensor,
        x_mask: torch.Tensor,
        w: Optional[torch.Tensor] = None,
        g: Optional[torch.Tensor] = None,
        inverse: bool = False,
        noise_scale: float = 1.0,
        *,
        noise: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Score given durations (training) or sample log-durations (``inverse``).

        Args:
            x (Tensor): Text encoder hidden output (B, channels, T_text); not back-propagated into.
            x_mask (Tensor): 1 on real tokens, 0 on padding (B, 1, T_text).
            w (Optional[Tensor]): Durations in frames (B, 1, T_text); required unless inverse.
            g (Optional[Tensor]): Global conditioning (B, global_channels, 1); not
                back-propagated into.
            inverse (bool): Sample log durations instead of scoring ``w``.
            noise_scale (float): Standard deviation of the inference noise (inverse only).
            noise (Optional[Tensor]): Standard-normal draws (B, 2, T_text) to use. By default
                they are drawn as ESPnet draws them (``torch.randn`` on the global CPU
                generator, then moved to ``x``'s device), so ``torch.manual_seed`` before a
                call gives ESPnet's noise on any device.

        Returns:
            Tensor: If not inverse, the negative variational lower bound of
                ``log p(w | x)`` per utterance (B,), summed over frames.
                If inverse, log durations (B, 1, T_text) (exp gives frames; not yet
                masked, rounded or length-scaled).

        """
        condition = self.proj(self.dds(self._text_features(x, g), x_mask)) * x_mask  # (B, channels, T_text)
        if inverse:
            return self._sample_log_durations(condition, x_mask, noise_scale, noise)
        if w is None:
            raise ValueError("StochasticDurationPredictor: durations w are required unless inverse=True")
        return self._negative_log_likelihood(condition, x_mask, w, noise)

    def _text_features(self, x: torch.Tensor, g: Optional[torch.Tensor]) -> torch.Tensor:
        """Input of the condition encoder, behind a stop-gradient: (B, channels, T_text)."""
        x = self.pre(x.detach())
        if g is not None:
            if not hasattr(self, "global_conv"):
                raise ValueError("StochasticDurationPredictor: g given but built with global_channels <= 0")
            x = x + self.global_conv(g.detach())
        return x

    def _negative_log_likelihood(
        self, condition: torch.Tensor, x_mask: torch.Tensor, w: torch.Tensor, noise: Optional[torch.Tensor]
    ) -> torch.Tensor:
        """``-log p(d - u, nu | c) + log q(u, nu | d, c)`` for one draw of ``(u, nu)``: (B,)."""
        # Posterior sample: noise e_q -> z_q = (z_u, nu) through q's flow, then u = sigmoid(z_u).
        duration_features = self.post_proj(self.post_dds(self.post_pre(w), x_mask)) * x_mask
        e_q = self._standard_normal(condition, noise) * x_mask  # (B, 2, T_text)
        posterior_condition = condition + duration_features
        z_q, logdet_q = e_q, 0.0
        for flow in self.post_flows:
            z_q, logdet = flow(z_q, x_mask, g=posterior_condition)
            logdet_q = logdet_q + logdet
        z_u, nu = z_q.split(1, dim=1)  # (B, 1, T_text) each
        u = torch.sigmoid(z_u) * x_mask
        # log |d sigmoid(z) / dz| = log sigmoid(z) + log sigmoid(-z)
        logdet_q = logdet_q + torch.sum((F.logsigmoid(z_u) + F.logsigmoid(-z_u)) * x_mask, [1, 2])
        log_q = _gaussian_log_density(e_q, x_mask) - logdet_q

        # Prior: (log(d - u), nu) -> z through the main flow; -log p = -log N(z) - logdet.
        z0, logdet_p = self.log_flow((w - u) * x_mask, x_mask)
        z = torch.cat([z0, nu], dim=1)
        for flow in self.flows:
            z, logdet = flow(z, x_mask, g=condition)
            logdet_p = logdet_p + logdet
        return -_gaussian_log_density(z, x_mask) - logdet_p + log_q

    def _sample_log_durations(
        self, condition: torch.Tensor, x_mask: torch.Tensor, noise_scale: float, noise: Optional[torch.Tensor]
    ) -> torch.Tensor:
        """Main flow backwards from scaled noise; the first channel is log(d): (B, 1, T_text)."""
        z = self._standard_normal(condition, noise) * noise_scale
        for flow in self._inverse_flows():
            z, _ = flow(z, x_mask, g=condition, inverse=True)
        return z[:, :1]

    def _inverse_flows(self) -> List[torch.nn.Module]:
        """The main flow's layers in reverse order, less the first coupling layer.

        ``flows[1]`` transforms only channel 1 (nu) given channel 0, and the elementwise
        affine layer after it in reverse keeps channels apart, so it cannot change the log
        duration in channel 0: skipped, as in VITS and ESPnet.
        """
        return [*reversed(self.flows[2:]), self.flows[0]]

    @staticmethod
    def _standard_normal(like: torch.Tensor, noise: Optional[torch.Tensor]) -> torch.Tensor:
        """Noise (B, 2, T_text) on ``like``'s device and dtype (see ``forward``)."""
        if noise is None:
            noise = torch.randn(like.size(0), 2, like.size(2))
            if like.is_cuda:
                # From pinned memory the copy is asynchronous: no stream synchronisation.
                return noise.pin_memory().to(device=like.device, dtype=like.dtype, non_blocking=True)
        return noise.to(device=like.device, dtype=like.dtype)

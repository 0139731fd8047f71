"""KL divergence loss of VITS (Sec. 2.1.3, Eq. 5: ``L_kl``).

``L_kl = log q(z|x_lin) - log p(z|c_text, A)``: the posterior encoder's sample ``z``,
mapped by the flow to ``z_p = f(z)``, scored under the prior the text encoder predicts
(mean ``m_p``, log-scale ``logs_p``, expanded by the alignment ``A``) against the
posterior's own log-scale ``logs_q``. Per element (the posterior's log-density at its
own sample is ``-logs_q - 1/2`` in expectation, hence the ``- 0.5``)::

    kl = logs_p - logs_q - 0.5 + 0.5 * (z_p - m_p)^2 * exp(-2 logs_p)

summed over valid frames and divided by their count (``z_mask`` summed).

Same call signature as ESPnet's ``espnet2.gan_tts.vits.loss.KLDivergenceLoss`` (and
``KLDivergenceLossWithoutFlow``); float32 with autocast off (see :mod:`.fp32`).
"""

import torch

from espnet2_vits_ext.vits.losses.fp32 import autocast_off, fp32


class KLDivergenceLoss(torch.nn.Module):
    """KL divergence between the flowed posterior sample and the text prior."""

    def forward(
        self,
        z_p: torch.Tensor,
        logs_q: torch.Tensor,
        m_p: torch.Tensor,
        logs_p: torch.Tensor,
        z_mask: torch.Tensor,
    ) -> torch.Tensor:
        """``L_kl``: KL of the posterior sample, through the flow, against the text prior.

        Args:
            z_p (Tensor): Flow output of the posterior sample (B, H, T_feats).
            logs_q (Tensor): Posterior log-scale (B, H, T_feats).
            m_p (Tensor): Expanded prior mean (B, H, T_feats).
            logs_p (Tensor): Expanded prior log-scale (B, H, T_feats).
            z_mask (Tensor): Frame mask (B, 1, T_feats).

        Returns:
            Tensor: The mean KL per valid frame and channel (scalar).

        """
        with autocast_off(z_p):
            z_p, logs_q, m_p, logs_p, z_mask = map(fp32, (z_p, logs_q, m_p, logs_p, z_mask))
            kl = logs_p - logs_q - 0.5
            kl = kl + 0.5 * ((z_p - m_p) ** 2) * torch.exp(-2.0 * logs_p)
            return torch.sum(kl * z_mask) / torch.sum(z_mask)


class KLDivergenceLossWithoutFlow(torch.nn.Module):
    """Closed-form KL(N(m_q, e^logs_q) || N(m_p, e^logs_p)), mean over elements."""

    def forward(
        self,
        m_q: torch.Tensor,
        logs_q: torch.Tensor,
        m_p: torch.Tensor,
        logs_p: torch.Tensor,
    ) -> torch.Tensor:
        """KL of two Gaussians frame by frame (the posterior against the prior, no flow between).

        Args:
            m_q (Tensor): Posterior mean (B, H, T_feats).
            logs_q (Tensor): Posterior log-scale (B, H, T_feats).
            m_p (Tensor): Expanded prior mean (B, H, T_feats).
            logs_p (Tensor): Expanded prior log-scale (B, H, T_feats).

        Returns:
            Tensor: The mean KL per valid frame and channel (scalar).

        """
        with autocast_off(m_q):
            m_q, logs_q, m_p, logs_p = map(fp32, (m_q, logs_q, m_p, logs_p))
            posterior = torch.distributions.Normal(m_q, torch.exp(logs_q))
            prior = torch.distributions.Normal(m_p, torch.exp(logs_p))
            return torch.distributions.kl_divergence(posterior, prior).mean()

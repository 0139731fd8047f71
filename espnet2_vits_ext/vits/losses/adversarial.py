"""Adversarial and feature-matching losses of VITS (Sec. 2.3, Eqs. 9-11 of the paper).

The decoder is trained as a HiFi-GAN generator against the "Discriminator" box:

* :class:`GeneratorAdversarialLoss` - ``L_adv(G) = E[(D(G(z)) - 1)^2]`` (least squares;
  or hinge ``-E[D(G(z))]``);
* :class:`DiscriminatorAdversarialLoss` - ``L_adv(D) = E[(D(y) - 1)^2 + D(G(z))^2]``,
  returned as its real and fake halves;
* :class:`FeatureMatchLoss` - ``L_fm(G)``: L1 between the discriminator's hidden layers on
  real and generated audio.

Constructor arguments and call signatures are those of ESPnet's
``espnet2.gan_tts.hifigan.loss`` classes; outputs may be a tensor, a list of tensors (one
per discriminator) or a list of lists (every layer of each discriminator; the last entry
is the score). Everything is computed in float32 with autocast off (see :mod:`.fp32`).
"""

from typing import List, Tuple, Union

import torch
import torch.nn.functional as F

from espnet2_vits_ext.vits.losses.fp32 import autocast_off, fp32

Outputs = Union[List[List[torch.Tensor]], List[torch.Tensor], torch.Tensor]


def _scores(outputs: Outputs) -> List[torch.Tensor]:
    """Each discriminator's score (the last layer's output when layers are given)."""
    if not isinstance(outputs, (tuple, list)):
        return [outputs]
    return [o[-1] if isinstance(o, (tuple, list)) else o for o in outputs]


class _AdversarialLoss(torch.nn.Module):
    """What the generator and discriminator losses share: the switches and the reduction."""

    def __init__(self, average_by_discriminators: bool = True, loss_type: str = "mse"):
        """Choose the loss form.

        Args:
            average_by_discriminators (bool): Average (else sum) over discriminators.
            loss_type (str): "mse" or "hinge".

        """
        super().__init__()
        assert loss_type in ["mse", "hinge"], f"{loss_type} is not supported."
        self.average_by_discriminators = average_by_discriminators
        self.loss_type = loss_type

    def _reduce(self, losses: List[torch.Tensor], outputs: Outputs) -> torch.Tensor:
        """Sum of the per-discriminator losses, averaged if asked and there are several."""
        loss = sum(losses)
        if self.average_by_discriminators and isinstance(outputs, (tuple, list)):
            loss = loss / len(losses)
        return loss


class GeneratorAdversarialLoss(_AdversarialLoss):
    """Generator adversarial loss (least squares or hinge)."""

    def criterion(self, x: torch.Tensor) -> torch.Tensor:
        """Loss of one score tensor."""
        if self.loss_type == "mse":
            return F.mse_loss(x, torch.ones_like(x))
        return -x.mean()

    def forward(self, outputs: Outputs) -> torch.Tensor:
        """How far the generated audio is from being scored as real.

        Args:
            outputs (Union[List[List[Tensor]], List[Tensor], Tensor]): What the
                discriminators gave for generated audio (per discriminator, its layers).

        Returns:
            Tensor: The loss (scalar), averaged over discriminators by default.

        """
        with autocast_off(outputs):
            return self._reduce([self.criterion(fp32(s)) for s in _scores(outputs)], outputs)


class DiscriminatorAdversarialLoss(_AdversarialLoss):
    """Discriminator adversarial loss (least squares or hinge), as (real, fake)."""

    def real_criterion(self, x: torch.Tensor) -> torch.Tensor:
        """Loss of a score on real audio (pushed to 1)."""
        if self.loss_type == "mse":
            return F.mse_loss(x, torch.ones_like(x))
        return -torch.mean(torch.minimum(x - 1, torch.zeros_like(x)))

    def fake_criterion(self, x: torch.Tensor) -> torch.Tensor:
        """Loss of a score on generated audio (pushed to 0, or below -1 for hinge)."""
        if self.loss_type == "mse":
            return F.mse_loss(x, torch.zeros_like(x))
        return -torch.mean(torch.minimum(-x - 1, torch.zeros_like(x)))

    def forward(self, outputs_hat: Outputs, outputs: Outputs) -> Tuple[torch.Tensor, torch.Tensor]:
        """How far the discriminators are from scoring real audio 1 and generated audio 0.

        Args:
            outputs_hat (Union[List[List[Tensor]], List[Tensor], Tensor]): What the
                discriminators gave for generated audio.
            outputs (Union[List[List[Tensor]], List[Tensor], Tensor]): What they gave
                for real audio.

        Returns:
            Tensor: The part on real audio (scalar).
            Tensor: The part on generated audio (scalar).

        """
        with autocast_off(outputs, outputs_hat):
            pairs = list(zip(_scores(outputs_hat), _scores(outputs)))
            real_loss = self._reduce([self.real_criterion(fp32(s)) for _, s in pairs], outputs)
            fake_loss = self._reduce([self.fake_criterion(fp32(s_hat)) for s_hat, _ in pairs], outputs)
        return real_loss, fake_loss


class FeatureMatchLoss(torch.nn.Module):
    """Feature-matching loss: L1 between discriminator layers on real and generated audio."""

    def __init__(
        self,
        average_by_layers: bool = True,
        average_by_discriminators: bool = True,
        include_final_outputs: bool = False,
    ):
        """Choose the loss form.

        Args:
            average_by_layers (bool): Average (else sum) over the layers of each
                discriminator.
            average_by_discriminators (bool): Average (else sum) over discriminators.
            include_final_outputs (bool): Whether the scores count as a layer too.

        """
        super().__init__()
        self.average_by_layers = average_by_layers
        self.average_by_discriminators = average_by_discriminators
        self.include_final_outputs = include_final_outputs

    def forward(
        self,
        feats_hat: Union[List[List[torch.Tensor]], List[torch.Tensor]],
        feats: Union[List[List[torch.Tensor]], List[torch.Tensor]],
    ) -> torch.Tensor:
        """L1 distance between the discriminators' hidden layers on generated and on real audio.

        Args:
            feats_hat (Union[List[List[Tensor]], List[Tensor]]): Discriminator layer
                outputs on generated audio (per discriminator, or one discriminator's).
            feats (Union[List[List[Tensor]], List[Tensor]]): The same on real audio
                (detached here: no gradient reaches the discriminator).

        Returns:
            Tensor: Feature-matching loss value.

        """
        with autocast_off(feats_hat, feats):
            total, n_disc = 0.0, 0
            for layers_hat, layers in zip(feats_hat, feats):
                if not self.include_final_outputs:
                    layers_hat, layers = layers_hat[:-1], layers[:-1]
                pairs = list(zip(layers_hat, layers))
                loss = sum(F.l1_loss(fp32(h), fp32(r.detach())) for h, r in pairs)
                if self.average_by_layers:
                    loss = loss / len(pairs)
                total = total + loss
                n_disc += 1
            if self.average_by_discriminators:
                total = total / n_disc
        return total

"""The synthesis graph of a Piper voice, around our generator's boxes.

Piper's runtime calls one ONNX graph with ``input`` (1, N) phoneme ids, ``input_lengths`` (1,),
``scales`` (3,) = [noise_scale, length_scale, noise_w] and, for several speakers, ``sid`` (1,);
it reads the waveform from ``output`` (1, 1, T_wav). :class:`PiperSynthesisGraph` is that
graph as a ``torch.nn.Module`` to be traced by ``torch.onnx.export``.

Piper's ids are not our token ids: a constant table (Piper id -> our id, or -1) turns them
into the model's tokens inside the graph, and ids mapped to -1 are dropped. For a model
trained on ESPnet's tokens the pads, bos and eos Piper puts around every phoneme map to -1
(the model never saw them in training); for a model that was trained on Piper's framing
(an imported Piper voice) they map to its own pad/bos/eos tokens and are kept.

Inference follows the generator's (Figure 1b of the paper) step for step, with the frame
expansion written with ``cumsum`` and comparisons so that the traced graph keeps the number
of frames dynamic (the generator's own path builder reads lengths back to Python).
"""

from typing import Optional, Sequence

import torch

from espnet2_vits_ext.vits.global_conditioning import global_condition


class PiperSynthesisGraph(torch.nn.Module):
    """Piper ids in, waveform out, for one utterance (batch size 1).

    Args:
        generator: Our ``VITSGenerator`` (weight norm already removed for a plain graph).
        token_table: For each Piper id, our token id, or -1 to drop that id: length
            ``num_symbols``.
    """

    def __init__(self, generator: torch.nn.Module, token_table: Sequence[int]):
        super().__init__()
        self.generator = generator
        self.register_buffer("token_table", torch.tensor(list(token_table), dtype=torch.long))
        self.multi_speaker = generator.spks is not None

    def forward(
        self,
        input: torch.Tensor,
        input_lengths: torch.Tensor,
        scales: torch.Tensor,
        sid: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Synthesise Piper's phoneme ids.

        Args:
            input: Piper phoneme ids (1, N) (int64).
            input_lengths: Valid ids (1,): ids past it are ignored.
            scales: [noise_scale, length_scale, noise_w] (3,) (float32).
            sid: Speaker id (1,), only for a multi-speaker model.

        Returns:
            Tensor: Waveform (1, 1, T_wav).
        """
        text = self._our_tokens(input, input_lengths)  # (1, T_text)
        text_lengths = torch.ones_like(input_lengths) * text.size(1)
        generator = self.generator
        hidden, token_means, token_log_stds, text_mask = generator.text_encoder(text, text_lengths)
        g = global_condition(generator, sid, None, None) if self.multi_speaker else None
        noise_scale, length_scale, noise_w = scales[0], scales[1], scales[2]
        duration_noise = torch.randn_like(token_means[:, :2])  # (1, 2, T_text)
        log_durations = generator.duration_predictor(
            hidden, text_mask, g=g, inverse=True, noise_scale=noise_w, noise=duration_noise
        )
        durations = torch.ceil(torch.exp(log_durations) * text_mask * length_scale)[:, 0]
        prior_means, prior_log_stds = self._expand(durations, token_means, token_log_stds)
        z_p = prior_means + torch.randn_like(prior_means) * torch.exp(prior_log_stds) * noise_scale
        frames_mask = torch.ones_like(z_p[:, :1])  # (1, 1, T_feats)
        z = generator.flow(z_p, frames_mask, g=g, inverse=True)
        return generator.decoder(z, g=g)  # (1, 1, T_wav)

    def _our_tokens(self, input: torch.Tensor, input_lengths: torch.Tensor) -> torch.Tensor:
        """Piper ids (1, N) -> our token ids (1, T_text), dropped ids and padding removed."""
        tokens = self.token_table[input[0]]  # (N,)
        positions = torch.arange(input.size(1), device=input.device)
        keep = (tokens >= 0) & (positions < input_lengths[0])
        return tokens[keep].unsqueeze(0)

    @staticmethod
    def _expand(
        durations: torch.Tensor, token_means: torch.Tensor, token_log_stds: torch.Tensor
    ):
        """Repeat each token's prior over its frames.

        Args:
            durations: Frames per token (1, T_text), whole numbers as floats.
            token_means, token_log_stds: The text prior (1, H, T_text).

        Returns:
            Tuple[Tensor, Tensor]: the prior per frame (1, H, T_feats) each; as in the
                generator, at least one frame (zero where no token covers it).
        """
        ends = torch.cumsum(durations[0], 0)  # (T_text,): the frame after each token
        total = torch.clamp_min(ends[-1], 1).long()
        frames = torch.arange(total, device=durations.device).to(ends.dtype)  # (T_feats,)
        # Frame t belongs to token i when ends[i-1] <= t < ends[i]: i ends lie at or before t.
        token_of_frame = (ends.unsqueeze(0) <= frames.unsqueeze(1)).sum(1)  # (T_feats,)
        covered = (token_of_frame < ends.size(0)).to(token_means.dtype)
        index = torch.clamp_max(token_of_frame, ends.size(0) - 1)
        means = token_means.index_select(2, index) * covered
        log_stds = token_log_stds.index_select(2, index) * covered
        return means, log_stds

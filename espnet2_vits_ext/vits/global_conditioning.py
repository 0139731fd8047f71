"""The global conditioning ``g`` of VITS: speaker and language embeddings, summed.

Every box of the generator but the text encoder takes ``g`` (B, global_channels, 1). It
sums what the generator was built with: a speaker id embedding (``spks`` > 1), a
projection of a given speaker embedding such as an x-vector (``spk_embed_dim`` > 0) and
a language id embedding (``langs`` > 1); the layers (``global_emb``, ``spemb_proj``,
``lang_emb``) belong to the generator, so the ``state_dict`` keys stay ESPnet's.
"""

from typing import Optional

import torch
import torch.nn.functional as F


def add_global_embeddings(
    generator: torch.nn.Module,
    spks: Optional[int],
    spk_embed_dim: Optional[int],
    langs: Optional[int],
    global_channels: int,
) -> None:
    """Record which conditionings ``generator`` uses and give it their layers.

    Args:
        generator: The ``VITSGenerator`` being built; gets ``spks``, ``spk_embed_dim`` and
            ``langs`` (None when unused: ESPnet's Text2Speech reads these three) and the
            layers ``global_emb``, ``spemb_proj``, ``lang_emb`` of those in use.
        spks: Number of speakers (<= 1 or None: no speaker ids).
        spk_embed_dim: Size of given speaker embeddings (<= 0 or None: none).
        langs: Number of languages (<= 1 or None: no language ids).
        global_channels: Width of ``g``; must be > 0 if any conditioning is used.

    Raises:
        ValueError: A conditioning is asked for but ``global_channels`` <= 0.
    """
    generator.spks = spks if spks is not None and spks > 1 else None
    generator.spk_embed_dim = spk_embed_dim if spk_embed_dim is not None and spk_embed_dim > 0 else None
    generator.langs = langs if langs is not None and langs > 1 else None
    for name in ("spks", "spk_embed_dim", "langs"):
        if getattr(generator, name) is not None and global_channels <= 0:
            raise ValueError(
                f"VITSGenerator: {name}={getattr(generator, name)} needs "
                f"global_channels > 0, got global_channels={global_channels}"
            )
    if generator.spks is not None:
        generator.global_emb = torch.nn.Embedding(spks, global_channels)
    if generator.spk_embed_dim is not None:
        generator.spemb_proj = torch.nn.Linear(spk_embed_dim, global_channels)
    if generator.langs is not None:
        generator.lang_emb = torch.nn.Embedding(langs, global_channels)


def global_condition(
    generator: torch.nn.Module,
    sids: Optional[torch.Tensor],
    spembs: Optional[torch.Tensor],
    lids: Optional[torch.Tensor],
) -> Optional[torch.Tensor]:
    """The sum ``g`` of the conditionings ``generator`` was built with.

    Args:
        generator: A ``VITSGenerator`` (see :func:`add_global_embeddings`).
        sids: Speaker ids (B,) or (B, 1), needed when it uses speaker ids.
        spembs: Speaker embeddings (B, spk_embed_dim), needed when it uses them.
        lids: Language ids (B,) or (B, 1), needed when it uses language ids.

    Returns:
        Optional[Tensor]: ``g`` (B, global_channels, 1), or None when none is used.
    """
    parts = []
    if generator.spks is not None:
        if sids is None:
            raise ValueError(f"VITSGenerator: built with spks={generator.spks}, sids required")
        parts.append(generator.global_emb(sids.view(-1)))
    if generator.spk_embed_dim is not None:
        if spembs is None:
            raise ValueError(
                f"VITSGenerator: built with spk_embed_dim={generator.spk_embed_dim}, "
                "spembs required"
            )
        # A given embedding's direction, not its norm, identifies the speaker.
        parts.append(generator.spemb_proj(F.normalize(spembs.view(-1, generator.spk_embed_dim))))
    if generator.langs is not None:
        if lids is None:
            raise ValueError(f"VITSGenerator: built with langs={generator.langs}, lids required")
        parts.append(generator.lang_emb(lids.view(-1)))
    if not parts:
        return None
    g = parts[0]
    for part in parts[1:]:
        g = g + part
    return g.unsqueeze(-1)

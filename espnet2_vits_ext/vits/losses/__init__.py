"""The training losses of VITS (Eq. 8): mel reconstruction, KL, adversarial and feature matching."""

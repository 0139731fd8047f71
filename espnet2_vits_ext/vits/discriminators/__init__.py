"""The discriminators of VITS (Sec. 2.4): HiFi-GAN's multi-period and multi-scale ones."""

"""The one error type of the Piper bridge: its message is the line the CLI prints."""


class PiperVoiceError(ValueError):
    """A Piper voice that cannot be imported; the message names the file and the reason."""

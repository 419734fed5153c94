"""The runtime layer beneath the commands: JPEG coding, errors, devices, checkpoints, atomic writes, inference."""

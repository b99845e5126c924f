"""Local tooling for rekfeedback: the emulator, synthetic data, the local set-up, the demo, the simulated annotator.

Nothing in the provider (`rekfeedback`) imports this package; it is installed only for development and demos.
"""

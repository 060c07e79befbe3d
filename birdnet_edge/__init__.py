"""birdnet-edge: a real-time BirdNET v2.4 bird-sound listener for Raspberry Pi-class computers."""

__version__ = "0.1.0"

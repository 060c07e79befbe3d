"""The audio BirdNET V2.4 takes: 48 kHz mono, in 3 s windows. Everything upstream of the model
converts to this."""

SAMPLE_RATE = 48_000
WINDOW_SECONDS = 3.0
WINDOW_SAMPLES = 144_000

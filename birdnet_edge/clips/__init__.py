"""Evidence for a detection: the audio clip of each event, cut from the ring the model read."""

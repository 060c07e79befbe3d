"""From windows to detection events: the detector, its filters and refinement, the inference
loop, the event tracker and the sinks it hands events to."""

"""Audio in: file decoding, live capture, the ring buffer and 3 s windows."""

"""An exact, faster FP32 BirdNET: the spectrogram front end folded into one convolution per branch.

BirdNET V2.4 turns the 3 s signal into two mel spectrograms (frame lengths 2048 and 1024). Each
branch frames the signal, multiplies by a Hann window, takes an RFFT2D, keeps the real part (the
layer casts the complex STFT to float), applies the mel matrix, squares, raises to a learnt
power and flips the mel axis. Everything up to the squaring is linear in the frame, so framing,
window, real DFT, mel weights and flip fold into one matrix ``K = flip(W_mel · cos(2πkn/N) ·
hann)`` of shape ``[96, N]``. Cut the signal into hop-sized blocks and that matrix becomes a
single CONV_2D (kernel ``[96, 1, ceil(N/hop), hop]``), which XNNPACK runs multi-threaded, where
the two RFFT2D operators run single-threaded in reference kernels.

The rewrite reads the graph with the TFLite flatbuffer schema that ships inside the LiteRT
wheel and writes it back with ``flatbuffers`` (no TensorFlow). Frame length, hop and frame count
are not guessed: they are read from the original model's own intermediate tensors on a probe
signal, and the framing is verified sample for sample. The variant is then accepted only after an
equivalence check against the original on fixed windows (generated signals plus, when given,
real audio, and the edge cases: zero-padded, silent and very quiet windows): max |Δp| ≤ 1e-4 and
identical detections at 0.25 and at the configured threshold.

One class of window is not the variant's: where a long stretch of one value sits next to
other audio (a file's zero-padded end, a moment of digital silence), the original's float32 FFT
leaves rounding noise that exact arithmetic cannot reproduce (|Δp| up to 2e-3). The classifier
scores those with the original (:class:`~birdnet_edge.model.birdnet.Classifier`), and the check
measures the pair as the daemon runs it, with the variant's own figure beside it.
"""

"""What the tests and the benchmarks share: the parity fixture's weights and cases (`parity_fixture`),
the reference pipeline's one-pass arithmetic (`reference_frcrn`), and the whole-signal segment cutter
the streamed ones are checked against (`segments`)."""

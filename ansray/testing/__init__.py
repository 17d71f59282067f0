"""What the tests and the benchmarks share: the parity fixture's weights and cases (`parity_fixture`), and
the reference pipeline's one-pass arithmetic (`reference_frcrn`)."""

"""Independent Python cross-checks of the Tether vector files, written from spec/ alone."""

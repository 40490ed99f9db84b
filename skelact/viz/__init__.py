"""Drawing: skeletons, overlays and training/evaluation plots."""

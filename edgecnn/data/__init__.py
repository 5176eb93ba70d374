"""Tier 0, the data: the one reader of labelled images (numpy and Pillow, never torch). ``builtin`` (MNIST and
Fashion-MNIST: names, class names, normalization, the IDX reader), ``folders`` (a user's image folder: layout,
classes, files, the seeded split, reading a file, the unreadable-file warning) and ``labelled`` (either one split
and read lazily, for export's parity and calibration and ``edgecnn quantize``) and ``check_inputs`` (what
``edgecnn check`` runs on every target, prepared once in the graph's input form). Training wraps the same reading in
tensors and DataLoaders (``edgecnn.training.data``). Nothing is imported here."""

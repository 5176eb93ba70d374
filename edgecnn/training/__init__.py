"""Tier 2, the training side (torch, torchvision): ``architectures`` (the registry), ``data``,
``checkpoint`` (the typed :class:`~edgecnn.training.checkpoint.Checkpoint`), ``loop`` (fit, evaluate,
resume) and ``reports``. Nothing is imported here, so ``import edgecnn.training.x`` pulls only x's needs."""

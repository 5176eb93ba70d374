"""Tier 2, the training side (torch, torchvision), as a run reads: ``architectures`` (the registry), ``init``
(trained weights to start from), ``data`` (datasets as tensors, through edgecnn.data), ``folders`` (an image
folder: the memory budget, statistics, lineage), ``scan`` (every file of a folder decoded once, in workers),
``batches`` (batches from memory or from disk), ``augment``, ``schedule`` (the learning rate), ``syncbn``
(BatchNorm over the global batch), ``distributed`` (torchrun, DDP, restarts), ``state`` (what a run carries
between epochs), ``evaluate``, ``checkpoint`` (the typed :class:`~edgecnn.training.checkpoint.Checkpoint`),
``loop`` (fit, resume) and ``reports`` (metrics.json, plots). Nothing is imported here, so
``import edgecnn.training.x`` pulls only x's needs."""

"""Dataset nodes, both eras (train-nodes.md §8, §9): folders of images and captions in,
lists of IMAGE / STRING / LATENT / CONDITIONING out.

One module per job; each is a node family of its own (listed in nodes/__init__.FAMILIES):
  folders        load image sets / image-text sets from input/ folders (current and legacy)
  transforms     per-item image and text transforms (resize, crop, colour; text edits)
  lists          whole-list nodes (shuffle, deduplicate, grid, merge)
  saving         save image lists (and captions) to output/ folders
  training_data  encode to LATENT / CONDITIONING, bucket, save/load datasets/ shards
  common         helpers the others share (not a family)

The node classes are re-exported here so `from comfyless.nodes import datasets` reaches all.
"""

from __future__ import annotations

from . import folders, lists, saving, training_data, transforms

_FAMILIES = (folders, transforms, lists, saving, training_data)

# Every dataset node class under its class_type, e.g. `datasets.ShuffleDataset`.
globals().update({node.schema.class_type: node for family in _FAMILIES for node in family.NODES})

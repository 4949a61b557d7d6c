"""Runtime helpers of the node modules: code that imports torch, PIL, numpy or safetensors at
the top. Node family modules (nodes/*.py, nodes/datasets/*) import from here only inside
`execute`, so building the registry and `comfyless validate` never load torch.

  image_files    reading images/captions from folders; saving PNGs (prefixes, UI entries)
  image_ops      IMAGE tensor <-> PIL, resize / crop / pad, batch samples
  loss_graph     loss smoothing, the loss-graph PNG, loss CSV
  dataset_files  training-dataset shards (safetensors) on disk
"""

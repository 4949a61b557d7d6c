"""The code of the nodes: free to import torch, PIL, numpy, safetensors, models/ and lora/ at
the top. Node family modules (nodes/*.py, nodes/datasets/*) never import from here; they name
their execute function (`implemented_by("comfyless.nodes.impl.<family>:<function>")`), which is
imported on its first call, so building the registry and `comfyless validate` never load torch.

One module per family module, holding one function per node: primitives, loaders,
conditioning, latent, images, sampling, lora_loaders, train, train_outputs (also
`write_lora`, the one LoRA-file writer), datasets/{folders, transforms, lists, training_data,
saving}. Shared helpers:

  image_files    reading images/captions from folders; saving PNGs (prefixes, UI entries)
  image_ops      IMAGE tensor <-> PIL, resize / crop / pad, batch samples
  loss_graph     loss smoothing, the loss-graph PNG, loss CSV
  dataset_files  training-dataset shards (safetensors) on disk
"""

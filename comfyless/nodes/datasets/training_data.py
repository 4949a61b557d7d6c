"""Training data: images + captions encoded to LATENT / CONDITIONING lists, bucketed by
size, saved to and loaded from datasets/ as safetensors shards."""

from __future__ import annotations

from ...typesys.schema import Input, Node, NodeSchema, Output, implemented_by
from ...typesys.types import CLIP, COMBO, CONDITIONING, IMAGE, INT, LATENT, STRING, VAE


class MakeTrainingDataset(Node):
    """VAE-encode every image and CLIP-encode its caption: parallel LATENT / CONDITIONING lists."""

    schema = NodeSchema(
        "MakeTrainingDataset",
        display_name="Make Training Dataset",
        category="model/training",
        inputs=(
            Input("images", IMAGE, tooltip="one sample per list item (batches are split)"),
            Input("vae", VAE),
            Input("clip", CLIP),
            Input("texts", STRING, optional=True, force_input=True,
                  tooltip="one caption per image, or one for all"),
        ),
        outputs=(Output("latents", LATENT, is_list=True),
                 Output("conditioning", CONDITIONING, is_list=True)),
        is_input_list=True,
        experimental=True,
    )

    execute = implemented_by("comfyless.nodes.impl.datasets.training_data:make_training_dataset")


class ResolutionBucket(Node):
    """Group samples by latent size: one batched LATENT and CONDITIONING list per size."""

    schema = NodeSchema(
        "ResolutionBucket",
        display_name="Resolution Bucket",
        category="model/training",
        inputs=(Input("latents", LATENT), Input("conditioning", CONDITIONING)),
        outputs=(Output("latents", LATENT, is_list=True),
                 Output("conditioning", CONDITIONING, is_list=True)),
        is_input_list=True,
        experimental=True,
    )

    execute = implemented_by("comfyless.nodes.impl.datasets.training_data:resolution_bucket")


class SaveTrainingDataset(Node):
    """Save LATENT / CONDITIONING lists to datasets/<folder_name>/ as safetensors shards."""

    schema = NodeSchema(
        "SaveTrainingDataset",
        display_name="Save Training Dataset",
        category="model/training",
        inputs=(
            Input("latents", LATENT),
            Input("conditioning", CONDITIONING),
            Input("folder_name", STRING, default="training_dataset", save_to="datasets",
                  tooltip="sub-folder of datasets/"),
            Input("shard_size", INT, default=1000, min=1, max=100000),
        ),
        output_node=True,
        is_input_list=True,
        experimental=True,
    )

    execute = implemented_by("comfyless.nodes.impl.datasets.training_data:save_training_dataset")


class LoadTrainingDataset(Node):
    """Load a dataset saved by SaveTrainingDataset (or ComfyUI's .pkl shards, weights only)."""

    schema = NodeSchema(
        "LoadTrainingDataset",
        display_name="Load Training Dataset",
        category="model/training",
        inputs=(Input("folder_name", COMBO, choices_from="datasets", choices_dirs_only=True),),
        outputs=(Output("latents", LATENT, is_list=True),
                 Output("conditioning", CONDITIONING, is_list=True)),
        experimental=True,
    )

    execute = implemented_by("comfyless.nodes.impl.datasets.training_data:load_training_dataset")


NODES = [MakeTrainingDataset, ResolutionBucket, SaveTrainingDataset, LoadTrainingDataset]

"""Type stubs for comfyless.nodes.api: 154 nodes.

Generated from the node registry by `comfyless stubs` (custom nodes included) or, for the copy
in the package (built-in nodes), `python -m comfyless.nodes.stubgen`; do not edit by hand.
"""

import enum as _enum
import inspect as _inspect
import typing as _t

from comfyless.api import Socket as Socket
from comfyless.typesys.schema import NodeRegistry as _NodeRegistry
from comfyless.typesys.schema import NodeSchema as _NodeSchema

__all__ = ["ChoiceEnum", "NodeFunction", "Socket", "choice_enum", "choice_enum_names", "node",
           "use_registry"]

class ChoiceEnum(str, _enum.Enum):  # type: ignore[misc]  # a base: members in subclasses
    def __str__(self) -> str: ...
    def __format__(self, format_spec: str) -> str: ...

def use_registry(registry: _NodeRegistry | None) -> None: ...
def node(class_type: str, /, *args: _t.Any, _id: str | None = None, _title: str | None = None,
         **inputs: _t.Any) -> _t.Any: ...
def member_name(choice: str) -> str: ...
def enum_members(choices: tuple[str, ...]) -> list[tuple[str, str]]: ...
def choice_enum_names(registry: _NodeRegistry) -> dict[tuple[str, str], str]: ...
def choice_enum(name: str, choices: tuple[str, ...]) -> type[ChoiceEnum]: ...
def io_types(registry: _NodeRegistry) -> list[str]: ...
def node_doc(schema: _NodeSchema) -> str: ...
def node_signature(schema: _NodeSchema) -> _inspect.Signature: ...

class NodeFunction:
    class_type: str
    def __init__(self, class_type: str) -> None: ...
    def __call__(self, *args: _t.Any, _id: str | None = None, _title: str | None = None,
                 **inputs: _t.Any) -> _t.Any: ...
    @property
    def schema(self) -> _NodeSchema: ...

# Sockets: one class per IO type (what node functions return)
class AUDIO(Socket):
    """An output of IO type AUDIO."""
_AUDIO: _t.TypeAlias = AUDIO

class BOOLEAN(Socket):
    """An output of IO type BOOLEAN."""
_BOOLEAN: _t.TypeAlias = BOOLEAN

class CLIP(Socket):
    """An output of IO type CLIP."""
_CLIP: _t.TypeAlias = CLIP

class COMBO(Socket):
    """An output of IO type COMBO."""
_COMBO: _t.TypeAlias = COMBO

class CONDITIONING(Socket):
    """An output of IO type CONDITIONING."""
_CONDITIONING: _t.TypeAlias = CONDITIONING

class CONTROL_NET(Socket):
    """An output of IO type CONTROL_NET."""
_CONTROL_NET: _t.TypeAlias = CONTROL_NET

class FLOAT(Socket):
    """An output of IO type FLOAT."""
_FLOAT: _t.TypeAlias = FLOAT

class GUIDER(Socket):
    """An output of IO type GUIDER."""
_GUIDER: _t.TypeAlias = GUIDER

class IMAGE(Socket):
    """An output of IO type IMAGE."""
_IMAGE: _t.TypeAlias = IMAGE

class IMAGECOMPARE(Socket):
    """An output of IO type IMAGECOMPARE."""
_IMAGECOMPARE: _t.TypeAlias = IMAGECOMPARE

class INT(Socket):
    """An output of IO type INT."""
_INT: _t.TypeAlias = INT

class LATENT(Socket):
    """An output of IO type LATENT."""
_LATENT: _t.TypeAlias = LATENT

class LORA_MODEL(Socket):
    """An output of IO type LORA_MODEL."""
_LORA_MODEL: _t.TypeAlias = LORA_MODEL

class LOSS_MAP(Socket):
    """An output of IO type LOSS_MAP."""
_LOSS_MAP: _t.TypeAlias = LOSS_MAP

class MASK(Socket):
    """An output of IO type MASK."""
_MASK: _t.TypeAlias = MASK

class MODEL(Socket):
    """An output of IO type MODEL."""
_MODEL: _t.TypeAlias = MODEL

class NOISE(Socket):
    """An output of IO type NOISE."""
_NOISE: _t.TypeAlias = NOISE

class SAMPLER(Socket):
    """An output of IO type SAMPLER."""
_SAMPLER: _t.TypeAlias = SAMPLER

class SIGMAS(Socket):
    """An output of IO type SIGMAS."""
_SIGMAS: _t.TypeAlias = SIGMAS

class STRING(Socket):
    """An output of IO type STRING."""
_STRING: _t.TypeAlias = STRING

class UPSCALE_MODEL(Socket):
    """An output of IO type UPSCALE_MODEL."""
_UPSCALE_MODEL: _t.TypeAlias = UPSCALE_MODEL

class VAE(Socket):
    """An output of IO type VAE."""
_VAE: _t.TypeAlias = VAE

# Choice enums: str-valued, accepted wherever their string is
class AddNoise(ChoiceEnum):
    """Choices of KSamplerAdvanced.add_noise."""
    enable = 'enable'
    disable = 'disable'

class Algorithm(ChoiceEnum):
    """Choices of TrainLoraNode.algorithm."""
    LoRA = 'LoRA'
    LoHa = 'LoHa'
    LoKr = 'LoKr'
    OFT = 'OFT'

class AspectRatio(ChoiceEnum):
    """Choices of ResolutionSelector.aspect_ratio."""
    _1_1__Square = '1:1 (Square)'
    _2_3__Portrait_Photo = '2:3 (Portrait Photo)'
    _3_2__Photo = '3:2 (Photo)'
    _3_4__Portrait_Standard = '3:4 (Portrait Standard)'
    _4_3__Standard = '4:3 (Standard)'
    _9_16__Portrait_Widescreen = '9:16 (Portrait Widescreen)'
    _16_9__Widescreen = '16:9 (Widescreen)'
    _21_9__Ultrawide = '21:9 (Ultrawide)'

class BlendMode(ChoiceEnum):
    """Choices of ImageBlend.blend_mode."""
    normal = 'normal'
    multiply = 'multiply'
    screen = 'screen'
    overlay = 'overlay'
    soft_light = 'soft_light'
    difference = 'difference'

class CLIPLoaderType(ChoiceEnum):
    """Choices of CLIPLoader.type."""
    stable_diffusion = 'stable_diffusion'
    stable_cascade = 'stable_cascade'
    sd3 = 'sd3'
    stable_audio = 'stable_audio'
    mochi = 'mochi'
    ltxv = 'ltxv'
    pixart = 'pixart'
    cosmos = 'cosmos'
    lumina2 = 'lumina2'
    wan = 'wan'
    hidream = 'hidream'
    chroma = 'chroma'
    ace = 'ace'
    omnigen2 = 'omnigen2'
    qwen_image = 'qwen_image'
    hunyuan_image = 'hunyuan_image'

class Crop(ChoiceEnum):
    """Choices of ImageScale.crop, LatentUpscale.crop."""
    disabled = 'disabled'
    center_ = 'center'

class Device(ChoiceEnum):
    """Choices of CLIPLoader.device, DualCLIPLoader.device."""
    default = 'default'
    cpu = 'cpu'

class Direction(ChoiceEnum):
    """Choices of ImageStitch.direction."""
    right = 'right'
    down = 'down'
    left = 'left'
    up = 'up'

class DualCLIPLoaderType(ChoiceEnum):
    """Choices of DualCLIPLoader.type."""
    sdxl = 'sdxl'
    sd3 = 'sd3'
    flux = 'flux'
    hunyuan_video = 'hunyuan_video'
    hidream = 'hidream'
    hunyuan_image = 'hunyuan_image'

class EmptyPadding(ChoiceEnum):
    """Choices of CLIPTextEncodeSD3.empty_padding."""
    none = 'none'
    empty_prompt = 'empty_prompt'

class FormatBitDepth(ChoiceEnum):
    """Choices of SaveImageAdvanced.format.bit_depth."""
    _8_bit = '8-bit'
    _16_bit = '16-bit'
    _32_bit_float = '32-bit float'

class FormatInputColorSpace(ChoiceEnum):
    """Choices of SaveImageAdvanced.format.input_color_space."""
    sRGB = 'sRGB'
    HDR = 'HDR'
    linear = 'linear'

class ImageScaleByUpscaleMethod(ChoiceEnum):
    """Choices of ImageScaleBy.upscale_method."""
    nearest_exact = 'nearest-exact'
    bilinear = 'bilinear'
    area = 'area'
    bicubic = 'bicubic'
    lanczos = 'lanczos'

class ImageScaleToMaxDimensionUpscaleMethod(ChoiceEnum):
    """Choices of ImageScaleToMaxDimension.upscale_method."""
    area = 'area'
    lanczos = 'lanczos'
    bilinear = 'bilinear'
    nearest_exact = 'nearest-exact'
    bilinear_2 = 'bilinear'
    bicubic = 'bicubic'

class ImageScaleToTotalPixelsUpscaleMethod(ChoiceEnum):
    """Choices of ImageScaleToTotalPixels.upscale_method."""
    nearest_exact = 'nearest-exact'
    bilinear = 'bilinear'
    area = 'area'
    bicubic = 'bicubic'
    lanczos = 'lanczos'

class ImageScaleUpscaleMethod(ChoiceEnum):
    """Choices of ImageScale.upscale_method."""
    nearest_exact = 'nearest-exact'
    bilinear = 'bilinear'
    area = 'area'
    bicubic = 'bicubic'
    lanczos = 'lanczos'

class ImageToMaskChannel(ChoiceEnum):
    """Choices of ImageToMask.channel."""
    red = 'red'
    green = 'green'
    blue = 'blue'
    alpha = 'alpha'

class LatentUpscaleByUpscaleMethod(ChoiceEnum):
    """Choices of LatentUpscaleBy.upscale_method."""
    nearest_exact = 'nearest-exact'
    bilinear = 'bilinear'
    area = 'area'
    bicubic = 'bicubic'
    bislerp = 'bislerp'

class LatentUpscaleUpscaleMethod(ChoiceEnum):
    """Choices of LatentUpscale.upscale_method."""
    nearest_exact = 'nearest-exact'
    bilinear = 'bilinear'
    area = 'area'
    bicubic = 'bicubic'
    bislerp = 'bislerp'

class LoadImageMaskChannel(ChoiceEnum):
    """Choices of LoadImageMask.channel."""
    alpha = 'alpha'
    red = 'red'
    green = 'green'
    blue = 'blue'

class LoraDtype(ChoiceEnum):
    """Choices of TrainLoraNode.lora_dtype."""
    bf16 = 'bf16'
    fp32 = 'fp32'

class LossFunction(ChoiceEnum):
    """Choices of TrainLoraNode.loss_function."""
    MSE = 'MSE'
    L1 = 'L1'
    Huber = 'Huber'
    SmoothL1 = 'SmoothL1'

class Mode(ChoiceEnum):
    """Choices of SaveImageDataSetToFolder.mode, SaveImageTextDataSetToFolder.mode."""
    overwrite = 'overwrite'
    increment = 'increment'

class ModelSamplingAuraFlowSampling(ChoiceEnum):
    """Choices of ModelSamplingAuraFlow.sampling."""
    flow = 'flow'
    img_to_img_velocity = 'img_to_img_velocity'

class ModelSamplingDiscreteSampling(ChoiceEnum):
    """Choices of ModelSamplingDiscrete.sampling."""
    eps = 'eps'
    v_prediction = 'v_prediction'
    lcm = 'lcm'
    x0 = 'x0'
    img_to_img = 'img_to_img'

class Mtp(ChoiceEnum):
    """Choices of TextGenerate.mtp."""
    auto = 'auto'
    off = 'off'
    _2 = '2'
    _3 = '3'
    _4 = '4'
    _5 = '5'

class Optimizer(ChoiceEnum):
    """Choices of TrainLoraNode.optimizer."""
    AdamW = 'AdamW'
    Adam = 'Adam'
    SGD = 'SGD'
    RMSprop = 'RMSprop'

class ReferenceLatentsMethod(ChoiceEnum):
    """Choices of FluxKontextMultiReferenceLatentMethod.reference_latents_method."""
    offset = 'offset'
    index_ = 'index'
    uxo_uno = 'uxo/uno'
    index_timestep_zero = 'index_timestep_zero'

class ResizeMethod(ChoiceEnum):
    """Choices of LoadImageSetFromFolderNode.resize_method, LoadImageSetNode.resize_method, LoadImageTextSetFromFolderNode.resize_method."""
    None_ = 'None'
    Stretch = 'Stretch'
    Crop = 'Crop'
    Pad = 'Pad'

class ResizeType(ChoiceEnum):
    """Choices of ResizeImageMaskNode.resize_type."""
    scale_dimensions = 'scale dimensions'
    scale_by_multiplier = 'scale by multiplier'
    scale_longer_dimension = 'scale longer dimension'
    scale_shorter_dimension = 'scale shorter dimension'
    scale_width = 'scale width'
    scale_height = 'scale height'
    scale_total_pixels = 'scale total pixels'
    match_size = 'match size'
    scale_to_multiple = 'scale to multiple'

class ResizeTypeCrop(ChoiceEnum):
    """Choices of ResizeImageMaskNode.resize_type.crop."""
    disabled = 'disabled'
    center_ = 'center'

class ReturnWithLeftoverNoise(ChoiceEnum):
    """Choices of KSamplerAdvanced.return_with_leftover_noise."""
    disable = 'disable'
    enable = 'enable'

class SamplerName(ChoiceEnum):
    """Choices of KSampler.sampler_name, KSamplerAdvanced.sampler_name, KSamplerSelect.sampler_name."""
    euler = 'euler'
    euler_cfg_pp = 'euler_cfg_pp'
    euler_ancestral = 'euler_ancestral'
    euler_ancestral_cfg_pp = 'euler_ancestral_cfg_pp'
    heun = 'heun'
    heunpp2 = 'heunpp2'
    exp_heun_2_x0 = 'exp_heun_2_x0'
    exp_heun_2_x0_sde = 'exp_heun_2_x0_sde'
    dpm_2 = 'dpm_2'
    dpm_2_ancestral = 'dpm_2_ancestral'
    lms = 'lms'
    dpm_fast = 'dpm_fast'
    dpm_adaptive = 'dpm_adaptive'
    dpmpp_2s_ancestral = 'dpmpp_2s_ancestral'
    dpmpp_2s_ancestral_cfg_pp = 'dpmpp_2s_ancestral_cfg_pp'
    dpmpp_sde = 'dpmpp_sde'
    dpmpp_sde_gpu = 'dpmpp_sde_gpu'
    dpmpp_2m = 'dpmpp_2m'
    dpmpp_2m_cfg_pp = 'dpmpp_2m_cfg_pp'
    dpmpp_2m_sde = 'dpmpp_2m_sde'
    dpmpp_2m_sde_gpu = 'dpmpp_2m_sde_gpu'
    dpmpp_2m_sde_heun = 'dpmpp_2m_sde_heun'
    dpmpp_2m_sde_heun_gpu = 'dpmpp_2m_sde_heun_gpu'
    dpmpp_3m_sde = 'dpmpp_3m_sde'
    dpmpp_3m_sde_gpu = 'dpmpp_3m_sde_gpu'
    ddpm = 'ddpm'
    lcm = 'lcm'
    ipndm = 'ipndm'
    ipndm_v = 'ipndm_v'
    deis = 'deis'
    res_multistep = 'res_multistep'
    res_multistep_cfg_pp = 'res_multistep_cfg_pp'
    res_multistep_ancestral = 'res_multistep_ancestral'
    res_multistep_ancestral_cfg_pp = 'res_multistep_ancestral_cfg_pp'
    gradient_estimation = 'gradient_estimation'
    gradient_estimation_cfg_pp = 'gradient_estimation_cfg_pp'
    er_sde = 'er_sde'
    seeds_2 = 'seeds_2'
    seeds_3 = 'seeds_3'
    sa_solver = 'sa_solver'
    sa_solver_pece = 'sa_solver_pece'
    ddim = 'ddim'
    uni_pc = 'uni_pc'
    uni_pc_bh2 = 'uni_pc_bh2'

class SamplingMode(ChoiceEnum):
    """Choices of TextGenerate.sampling_mode."""
    on = 'on'
    off = 'off'

class SaveImageAdvancedFormat(ChoiceEnum):
    """Choices of SaveImageAdvanced.format."""
    png = 'png'
    exr = 'exr'

class SaveTextFormat(ChoiceEnum):
    """Choices of SaveText.format."""
    txt = 'txt'
    md = 'md'
    json = 'json'

class ScaleMethod(ChoiceEnum):
    """Choices of ResizeImageMaskNode.scale_method."""
    nearest_exact = 'nearest-exact'
    bilinear = 'bilinear'
    area = 'area'
    bicubic = 'bicubic'
    lanczos = 'lanczos'

class Scheduler(ChoiceEnum):
    """Choices of BasicScheduler.scheduler, KSampler.scheduler, KSamplerAdvanced.scheduler."""
    simple = 'simple'
    sgm_uniform = 'sgm_uniform'
    karras = 'karras'
    exponential = 'exponential'
    ddim_uniform = 'ddim_uniform'
    beta = 'beta'
    normal = 'normal'
    linear_quadratic = 'linear_quadratic'
    kl_optimal = 'kl_optimal'

class SetCondArea(ChoiceEnum):
    """Choices of ConditioningSetMask.set_cond_area."""
    default = 'default'
    mask_bounds = 'mask bounds'

class SetUnionControlNetTypeType(ChoiceEnum):
    """Choices of SetUnionControlNetType.type."""
    auto = 'auto'
    openpose = 'openpose'
    depth = 'depth'
    hed_pidi_scribble_ted = 'hed/pidi/scribble/ted'
    canny_lineart_anime_lineart_mlsd = 'canny/lineart/anime_lineart/mlsd'
    normal = 'normal'
    segment = 'segment'
    tile = 'tile'
    repaint = 'repaint'

class SpacingColor(ChoiceEnum):
    """Choices of ImageStitch.spacing_color."""
    white = 'white'
    black = 'black'
    red = 'red'
    green = 'green'
    blue = 'blue'

class Style(ChoiceEnum):
    """Choices of DualCFGGuider.style."""
    regular = 'regular'
    nested = 'nested'

class TrainingDtype(ChoiceEnum):
    """Choices of TrainLoraNode.training_dtype."""
    bf16 = 'bf16'
    fp32 = 'fp32'
    none = 'none'

class WeightDtype(ChoiceEnum):
    """Choices of UNETLoader.weight_dtype."""
    default = 'default'
    fp8_e4m3fn = 'fp8_e4m3fn'
    fp8_e4m3fn_fast = 'fp8_e4m3fn_fast'
    fp8_e5m2 = 'fp8_e5m2'

def AddTextPrefix(
    texts: str | STRING,
    prefix: str | STRING = '',
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> STRING:
    """Add Text Prefix

    texts: STRING
    prefix: STRING

    Returns: texts (STRING)
    """

def AddTextSuffix(
    texts: str | STRING,
    suffix: str | STRING = '',
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> STRING:
    """Add Text Suffix

    texts: STRING
    suffix: STRING

    Returns: texts (STRING)
    """

def AdjustBrightness(
    images: IMAGE,
    factor: float | FLOAT = 1.0,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> IMAGE:
    """Adjust Brightness

    images: IMAGE
    factor: FLOAT

    Returns: images (IMAGE)
    """

def AdjustContrast(
    images: IMAGE,
    factor: float | FLOAT = 1.0,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> IMAGE:
    """Adjust Contrast

    images: IMAGE
    factor: FLOAT

    Returns: images (IMAGE)
    """

def BasicGuider(
    model: MODEL,
    conditioning: CONDITIONING,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> GUIDER:
    """BasicGuider

    model: MODEL
    conditioning: CONDITIONING

    Returns: GUIDER (GUIDER)
    """

def BasicScheduler(
    model: MODEL,
    scheduler: _t.Literal['simple', 'sgm_uniform', 'karras', 'exponential', 'ddim_uniform', 'beta', 'normal', 'linear_quadratic', 'kl_optimal'] | Scheduler | COMBO = 'simple',
    steps: int | INT = 20,
    denoise: float | FLOAT = 1.0,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> SIGMAS:
    """BasicScheduler

    model: MODEL
    scheduler: COMBO
    steps: INT
    denoise: FLOAT - The fraction of the schedule to run (its low-noise end).

    Returns: SIGMAS (SIGMAS)
    """

def BatchImagesNode(
    *,
    _id: str | None = None,
    _title: str | None = None,
    **inputs: _t.Any,
) -> IMAGE:
    """Batch Images

    images.image0: IMAGE
    images.image1: IMAGE
    images.image2: IMAGE (optional)
    images.image3: IMAGE (optional)
    images.image4: IMAGE (optional)
    images.image5: IMAGE (optional)
    images.image6: IMAGE (optional)
    images.image7: IMAGE (optional)
    images.image8: IMAGE (optional)
    images.image9: IMAGE (optional)
    images.image10: IMAGE (optional)
    images.image11: IMAGE (optional)
    images.image12: IMAGE (optional)
    images.image13: IMAGE (optional)
    images.image14: IMAGE (optional)
    images.image15: IMAGE (optional)
    images.image16: IMAGE (optional)
    images.image17: IMAGE (optional)
    images.image18: IMAGE (optional)
    images.image19: IMAGE (optional)
    images.image20: IMAGE (optional)
    images.image21: IMAGE (optional)
    images.image22: IMAGE (optional)
    images.image23: IMAGE (optional)
    images.image24: IMAGE (optional)
    images.image25: IMAGE (optional)
    images.image26: IMAGE (optional)
    images.image27: IMAGE (optional)
    images.image28: IMAGE (optional)
    images.image29: IMAGE (optional)
    images.image30: IMAGE (optional)
    images.image31: IMAGE (optional)
    images.image32: IMAGE (optional)
    images.image33: IMAGE (optional)
    images.image34: IMAGE (optional)
    images.image35: IMAGE (optional)
    images.image36: IMAGE (optional)
    images.image37: IMAGE (optional)
    images.image38: IMAGE (optional)
    images.image39: IMAGE (optional)
    images.image40: IMAGE (optional)
    images.image41: IMAGE (optional)
    images.image42: IMAGE (optional)
    images.image43: IMAGE (optional)
    images.image44: IMAGE (optional)
    images.image45: IMAGE (optional)
    images.image46: IMAGE (optional)
    images.image47: IMAGE (optional)
    images.image48: IMAGE (optional)
    images.image49: IMAGE (optional)

    Returns: IMAGE (IMAGE)
    """

def CFGGuider(
    model: MODEL,
    positive: CONDITIONING,
    negative: CONDITIONING,
    cfg: float | FLOAT = 8.0,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> GUIDER:
    """CFGGuider

    model: MODEL
    positive: CONDITIONING
    negative: CONDITIONING
    cfg: FLOAT - Classifier-free guidance scale (1.0 skips the negative prompt).

    Returns: GUIDER (GUIDER)
    """

def CFGNorm(
    model: MODEL,
    strength: float | FLOAT = 1.0,
    pre_cfg: bool | BOOLEAN = False,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> MODEL:
    """CFGNorm

    model: MODEL
    strength: FLOAT
    pre_cfg: BOOLEAN (optional)

    Returns: patched_model (MODEL)
    """

def CLIPLoader(
    clip_name: str | COMBO,
    type: _t.Literal['stable_diffusion', 'stable_cascade', 'sd3', 'stable_audio', 'mochi', 'ltxv', 'pixart', 'cosmos', 'lumina2', 'wan', 'hidream', 'chroma', 'ace', 'omnigen2', 'qwen_image', 'hunyuan_image'] | CLIPLoaderType | COMBO = 'stable_diffusion',
    device: _t.Literal['default', 'cpu'] | Device | COMBO = 'default',
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> CLIP:
    """Load CLIP

    clip_name: COMBO
    type: COMBO
    device: COMBO (optional)

    Returns: CLIP (CLIP)
    """

def CLIPSetLastLayer(
    clip: CLIP,
    stop_at_clip_layer: int | INT = -1,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> CLIP:
    """CLIP Set Last Layer

    clip: CLIP
    stop_at_clip_layer: INT

    Returns: CLIP (CLIP)
    """

def CLIPTextEncode(
    text: str | STRING,
    clip: CLIP,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> CONDITIONING:
    """CLIP Text Encode (Prompt)

    text: STRING - The text to be encoded.
    clip: CLIP - The CLIP model used for encoding the text.

    Returns: CONDITIONING (CONDITIONING)
    """

def CLIPTextEncodeFlux(
    clip: CLIP,
    clip_l: str | STRING,
    t5xxl: str | STRING,
    guidance: float | FLOAT = 3.5,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> CONDITIONING:
    """CLIPTextEncodeFlux

    clip: CLIP
    clip_l: STRING
    t5xxl: STRING
    guidance: FLOAT

    Returns: CONDITIONING (CONDITIONING)
    """

def CLIPTextEncodeSD3(
    clip: CLIP,
    clip_l: str | STRING,
    clip_g: str | STRING,
    t5xxl: str | STRING,
    empty_padding: _t.Literal['none', 'empty_prompt'] | EmptyPadding | COMBO = 'none',
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> CONDITIONING:
    """CLIPTextEncodeSD3

    clip: CLIP
    clip_l: STRING
    clip_g: STRING
    t5xxl: STRING
    empty_padding: COMBO

    Returns: CONDITIONING (CONDITIONING)
    """

def Canny(
    image: IMAGE,
    low_threshold: float | FLOAT = 0.4,
    high_threshold: float | FLOAT = 0.8,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> IMAGE:
    """Canny

    image: IMAGE
    low_threshold: FLOAT
    high_threshold: FLOAT

    Returns: IMAGE (IMAGE)
    """

def CenterCropImages(
    images: IMAGE,
    width: int | INT = 512,
    height: int | INT = 512,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> IMAGE:
    """Crop Image (Center)

    images: IMAGE
    width: INT
    height: INT

    Returns: images (IMAGE)
    """

class CheckpointLoaderSimpleOutputs(_t.NamedTuple):
    MODEL: _MODEL
    CLIP: _CLIP
    VAE: _VAE

def CheckpointLoaderSimple(
    ckpt_name: str | COMBO,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> CheckpointLoaderSimpleOutputs:
    """Load Checkpoint

    ckpt_name: COMBO - The name of the checkpoint (model) to load.

    Returns: MODEL (MODEL), CLIP (CLIP), VAE (VAE)
    """

def CheckpointSave(
    model: MODEL,
    clip: CLIP,
    vae: VAE,
    filename_prefix: str | STRING = 'checkpoints/ComfyUI',
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> None:
    """Save Checkpoint

    model: MODEL
    clip: CLIP
    vae: VAE
    filename_prefix: STRING
    """

class ComfyMathExpressionOutputs(_t.NamedTuple):
    FLOAT: _FLOAT
    INT: _INT
    BOOL: _BOOLEAN

def ComfyMathExpression(
    expression: str | STRING = 'a + b',
    *,
    _id: str | None = None,
    _title: str | None = None,
    **inputs: _t.Any,
) -> ComfyMathExpressionOutputs:
    """Evaluates a math expression over the connected values a, b, c, ... (and `values`, the list of them). Allowed: numbers, + - * / // % **, parentheses and sum min max abs round pow sqrt ceil floor log log2 log10 sin cos tan int float.

    expression: STRING
    values.a: FLOAT,INT,BOOLEAN (optional)
    values.b: FLOAT,INT,BOOLEAN (optional)
    values.c: FLOAT,INT,BOOLEAN (optional)
    values.d: FLOAT,INT,BOOLEAN (optional)
    values.e: FLOAT,INT,BOOLEAN (optional)
    values.f: FLOAT,INT,BOOLEAN (optional)
    values.g: FLOAT,INT,BOOLEAN (optional)
    values.h: FLOAT,INT,BOOLEAN (optional)
    values.i: FLOAT,INT,BOOLEAN (optional)
    values.j: FLOAT,INT,BOOLEAN (optional)
    values.k: FLOAT,INT,BOOLEAN (optional)
    values.l: FLOAT,INT,BOOLEAN (optional)
    values.m: FLOAT,INT,BOOLEAN (optional)
    values.n: FLOAT,INT,BOOLEAN (optional)
    values.o: FLOAT,INT,BOOLEAN (optional)
    values.p: FLOAT,INT,BOOLEAN (optional)
    values.q: FLOAT,INT,BOOLEAN (optional)
    values.r: FLOAT,INT,BOOLEAN (optional)
    values.s: FLOAT,INT,BOOLEAN (optional)
    values.t: FLOAT,INT,BOOLEAN (optional)
    values.u: FLOAT,INT,BOOLEAN (optional)
    values.v: FLOAT,INT,BOOLEAN (optional)
    values.w: FLOAT,INT,BOOLEAN (optional)
    values.x: FLOAT,INT,BOOLEAN (optional)
    values.y: FLOAT,INT,BOOLEAN (optional)
    values.z: FLOAT,INT,BOOLEAN (optional)

    Returns: FLOAT (FLOAT), INT (INT), BOOL (BOOLEAN)
    """

class ComfyNumberConvertOutputs(_t.NamedTuple):
    FLOAT: _FLOAT
    INT: _INT

def ComfyNumberConvert(
    value: int | INT | float | FLOAT | str | STRING | bool | BOOLEAN,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> ComfyNumberConvertOutputs:
    """Number Convert

    value: INT,FLOAT,STRING,BOOLEAN

    Returns: FLOAT (FLOAT), INT (INT)
    """

def ComfySwitchNode(
    switch: bool | BOOLEAN,
    on_false: _t.Any,
    on_true: _t.Any,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> _t.Any:
    """Outputs on_true when switch is on, else on_false. Both inputs are lazy: the nodes feeding only the input not chosen do not run.

    switch: BOOLEAN
    on_false: COMFY_MATCHTYPE_V3
    on_true: COMFY_MATCHTYPE_V3

    Returns: output (COMFY_MATCHTYPE_V3)
    """

def ConditioningAverage(
    conditioning_to: CONDITIONING,
    conditioning_from: CONDITIONING,
    conditioning_to_strength: float | FLOAT = 1.0,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> CONDITIONING:
    """ConditioningAverage

    conditioning_to: CONDITIONING
    conditioning_from: CONDITIONING
    conditioning_to_strength: FLOAT

    Returns: CONDITIONING (CONDITIONING)
    """

def ConditioningCombine(
    conditioning_1: CONDITIONING,
    conditioning_2: CONDITIONING,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> CONDITIONING:
    """Conditioning (Combine)

    conditioning_1: CONDITIONING
    conditioning_2: CONDITIONING

    Returns: CONDITIONING (CONDITIONING)
    """

def ConditioningConcat(
    conditioning_to: CONDITIONING,
    conditioning_from: CONDITIONING,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> CONDITIONING:
    """Conditioning (Concat)

    conditioning_to: CONDITIONING
    conditioning_from: CONDITIONING

    Returns: CONDITIONING (CONDITIONING)
    """

def ConditioningSetArea(
    conditioning: CONDITIONING,
    width: int | INT = 64,
    height: int | INT = 64,
    x: int | INT = 0,
    y: int | INT = 0,
    strength: float | FLOAT = 1.0,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> CONDITIONING:
    """Conditioning (Set Area)

    conditioning: CONDITIONING
    width: INT
    height: INT
    x: INT
    y: INT
    strength: FLOAT

    Returns: CONDITIONING (CONDITIONING)
    """

def ConditioningSetAreaPercentage(
    conditioning: CONDITIONING,
    width: float | FLOAT = 1.0,
    height: float | FLOAT = 1.0,
    x: float | FLOAT = 0,
    y: float | FLOAT = 0,
    strength: float | FLOAT = 1.0,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> CONDITIONING:
    """Conditioning (Set Area with Percentage)

    conditioning: CONDITIONING
    width: FLOAT
    height: FLOAT
    x: FLOAT
    y: FLOAT
    strength: FLOAT

    Returns: CONDITIONING (CONDITIONING)
    """

def ConditioningSetMask(
    conditioning: CONDITIONING,
    mask: MASK,
    strength: float | FLOAT = 1.0,
    *,
    set_cond_area: _t.Literal['default', 'mask bounds'] | SetCondArea | COMBO,
    _id: str | None = None,
    _title: str | None = None,
) -> CONDITIONING:
    """Conditioning (Set Mask)

    conditioning: CONDITIONING
    mask: MASK
    strength: FLOAT
    set_cond_area: COMBO

    Returns: CONDITIONING (CONDITIONING)
    """

def ConditioningSetTimestepRange(
    conditioning: CONDITIONING,
    start: float | FLOAT = 0.0,
    end: float | FLOAT = 1.0,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> CONDITIONING:
    """ConditioningSetTimestepRange

    conditioning: CONDITIONING
    start: FLOAT
    end: FLOAT

    Returns: CONDITIONING (CONDITIONING)
    """

def ConditioningZeroOut(
    conditioning: CONDITIONING,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> CONDITIONING:
    """ConditioningZeroOut

    conditioning: CONDITIONING

    Returns: CONDITIONING (CONDITIONING)
    """

def ControlNetApply(
    conditioning: CONDITIONING,
    control_net: CONTROL_NET,
    image: IMAGE,
    strength: float | FLOAT = 1.0,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> CONDITIONING:
    """Apply ControlNet (OLD)

    conditioning: CONDITIONING
    control_net: CONTROL_NET
    image: IMAGE
    strength: FLOAT

    Returns: CONDITIONING (CONDITIONING)
    """

class ControlNetApplyAdvancedOutputs(_t.NamedTuple):
    positive: _CONDITIONING
    negative: _CONDITIONING

def ControlNetApplyAdvanced(
    positive: CONDITIONING,
    negative: CONDITIONING,
    control_net: CONTROL_NET,
    image: IMAGE,
    strength: float | FLOAT = 1.0,
    start_percent: float | FLOAT = 0.0,
    end_percent: float | FLOAT = 1.0,
    vae: VAE = ...,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> ControlNetApplyAdvancedOutputs:
    """Apply ControlNet

    positive: CONDITIONING
    negative: CONDITIONING
    control_net: CONTROL_NET
    image: IMAGE
    strength: FLOAT
    start_percent: FLOAT
    end_percent: FLOAT
    vae: VAE (optional)

    Returns: positive (CONDITIONING), negative (CONDITIONING)
    """

def ControlNetLoader(
    control_net_name: str | COMBO,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> CONTROL_NET:
    """Load ControlNet Model

    control_net_name: COMBO

    Returns: CONTROL_NET (CONTROL_NET)
    """

def DiffControlNetLoader(
    model: MODEL,
    control_net_name: str | COMBO,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> CONTROL_NET:
    """Load ControlNet Model (diff)

    model: MODEL
    control_net_name: COMBO

    Returns: CONTROL_NET (CONTROL_NET)
    """

def DifferentialDiffusion(
    model: MODEL,
    strength: float | FLOAT = 1.0,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> MODEL:
    """Differential Diffusion

    model: MODEL
    strength: FLOAT (optional)

    Returns: MODEL (MODEL)
    """

def DisableNoise(
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> NOISE:
    """DisableNoise


    Returns: NOISE (NOISE)
    """

def DualCFGGuider(
    model: MODEL,
    cond1: CONDITIONING,
    cond2: CONDITIONING,
    negative: CONDITIONING,
    cfg_conds: float | FLOAT = 8.0,
    cfg_cond2_negative: float | FLOAT = 8.0,
    *,
    style: _t.Literal['regular', 'nested'] | Style | COMBO,
    _id: str | None = None,
    _title: str | None = None,
) -> GUIDER:
    """DualCFGGuider

    model: MODEL
    cond1: CONDITIONING
    cond2: CONDITIONING
    negative: CONDITIONING
    cfg_conds: FLOAT
    cfg_cond2_negative: FLOAT
    style: COMBO

    Returns: GUIDER (GUIDER)
    """

def DualCLIPLoader(
    clip_name1: str | COMBO,
    clip_name2: str | COMBO,
    type: _t.Literal['sdxl', 'sd3', 'flux', 'hunyuan_video', 'hidream', 'hunyuan_image'] | DualCLIPLoaderType | COMBO = 'sdxl',
    device: _t.Literal['default', 'cpu'] | Device | COMBO = 'default',
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> CLIP:
    """DualCLIPLoader

    clip_name1: COMBO
    clip_name2: COMBO
    type: COMBO
    device: COMBO (optional)

    Returns: CLIP (CLIP)
    """

def EmptyLatentImage(
    width: int | INT = 512,
    height: int | INT = 512,
    batch_size: int | INT = 1,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> LATENT:
    """Empty Latent Image

    width: INT
    height: INT
    batch_size: INT

    Returns: LATENT (LATENT)
    """

def EmptySD3LatentImage(
    width: int | INT = 1024,
    height: int | INT = 1024,
    batch_size: int | INT = 1,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> LATENT:
    """EmptySD3LatentImage

    width: INT
    height: INT
    batch_size: INT

    Returns: LATENT (LATENT)
    """

def FluxDisableGuidance(
    conditioning: CONDITIONING,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> CONDITIONING:
    """This node completely disables the guidance embed on Flux and Flux like models

    conditioning: CONDITIONING

    Returns: CONDITIONING (CONDITIONING)
    """

def FluxGuidance(
    conditioning: CONDITIONING,
    guidance: float | FLOAT = 3.5,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> CONDITIONING:
    """FluxGuidance

    conditioning: CONDITIONING
    guidance: FLOAT

    Returns: CONDITIONING (CONDITIONING)
    """

def FluxKontextImageScale(
    image: IMAGE,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> IMAGE:
    """This node resizes the image to one that is more optimal for flux kontext.

    image: IMAGE

    Returns: IMAGE (IMAGE)
    """

def FluxKontextMultiReferenceLatentMethod(
    conditioning: CONDITIONING,
    reference_latents_method: _t.Literal['offset', 'index', 'uxo/uno', 'index_timestep_zero'] | ReferenceLatentsMethod | COMBO,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> CONDITIONING:
    """Edit Model Reference Method

    conditioning: CONDITIONING
    reference_latents_method: COMBO

    Returns: CONDITIONING (CONDITIONING)
    """

def FreeU_V2(
    model: MODEL,
    b1: float | FLOAT = 1.3,
    b2: float | FLOAT = 1.4,
    s1: float | FLOAT = 0.9,
    s2: float | FLOAT = 0.2,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> MODEL:
    """Applies version 2 of the FreeU patch to the UNet model, featuring adaptive modulation based on channel feature statistics for improved generation quality.

    model: MODEL - The UNet model to apply the FreeU v2 patch to.
    b1: FLOAT - Backbone factor 1: Scaling factor applied to main backbone features in stage 1 with mean feature modulation.
    b2: FLOAT - Backbone factor 2: Scaling factor applied to main backbone features in stage 2 with mean feature modulation.
    s1: FLOAT - Skip factor 1: Attenuation factor applied to skip connection features in stage 1 via Fourier filtering.
    s2: FLOAT - Skip factor 2: Attenuation factor applied to skip connection features in stage 2 via Fourier filtering.

    Returns: MODEL (MODEL)
    """

class GetImageSizeOutputs(_t.NamedTuple):
    width: _INT
    height: _INT
    batch_size: _INT

def GetImageSize(
    image: IMAGE,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> GetImageSizeOutputs:
    """Returns the width, height, and batch size of the image.

    image: IMAGE

    Returns: width (INT), height (INT), batch_size (INT)
    """

def GrowMask(
    mask: MASK,
    expand: int | INT = 0,
    tapered_corners: bool | BOOLEAN = True,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> MASK:
    """Expands (dilates) or shrinks (erodes) mask boundaries by a specified pixel distance.

    mask: MASK
    expand: INT
    tapered_corners: BOOLEAN

    Returns: MASK (MASK)
    """

def ImageBatch(
    image1: IMAGE,
    image2: IMAGE,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> IMAGE:
    """Batch Images

    image1: IMAGE
    image2: IMAGE

    Returns: IMAGE (IMAGE)
    """

def ImageBlend(
    image1: IMAGE,
    image2: IMAGE,
    blend_factor: float | FLOAT = 0.5,
    *,
    blend_mode: _t.Literal['normal', 'multiply', 'screen', 'overlay', 'soft_light', 'difference'] | BlendMode | COMBO,
    _id: str | None = None,
    _title: str | None = None,
) -> IMAGE:
    """Image Blend

    image1: IMAGE
    image2: IMAGE
    blend_factor: FLOAT
    blend_mode: COMBO

    Returns: IMAGE (IMAGE)
    """

def ImageCompare(
    image_a: IMAGE = ...,
    image_b: IMAGE = ...,
    compare_view: IMAGECOMPARE = ...,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> None:
    """Compares two images side by side with a slider.

    image_a: IMAGE (optional)
    image_b: IMAGE (optional)
    compare_view: IMAGECOMPARE (optional)
    """

def ImageCrop(
    image: IMAGE,
    width: int | INT = 512,
    height: int | INT = 512,
    x: int | INT = 0,
    y: int | INT = 0,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> IMAGE:
    """ImageCrop

    image: IMAGE
    width: INT
    height: INT
    x: INT
    y: INT

    Returns: IMAGE (IMAGE)
    """

def ImageDeduplication(
    images: IMAGE,
    similarity_threshold: float | FLOAT = 0.95,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> IMAGE:
    """Deduplicate Images

    images: IMAGE
    similarity_threshold: FLOAT

    Returns: images (IMAGE)
    """

def ImageFromBatch(
    image: IMAGE,
    batch_index: int | INT = 0,
    length: int | INT = 1,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> IMAGE:
    """Get Image from Batch

    image: IMAGE
    batch_index: INT
    length: INT

    Returns: IMAGE (IMAGE)
    """

def ImageGrid(
    images: IMAGE,
    columns: int | INT = 4,
    cell_width: int | INT = 256,
    cell_height: int | INT = 256,
    padding: int | INT = 4,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> IMAGE:
    """Make Image Grid

    images: IMAGE
    columns: INT
    cell_width: INT
    cell_height: INT
    padding: INT

    Returns: image (IMAGE)
    """

def ImageInvert(
    image: IMAGE,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> IMAGE:
    """Invert Image

    image: IMAGE

    Returns: IMAGE (IMAGE)
    """

class ImagePadForOutpaintOutputs(_t.NamedTuple):
    IMAGE: _IMAGE
    MASK: _MASK

def ImagePadForOutpaint(
    image: IMAGE,
    left: int | INT = 0,
    top: int | INT = 0,
    right: int | INT = 0,
    bottom: int | INT = 0,
    feathering: int | INT = 40,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> ImagePadForOutpaintOutputs:
    """Pad Image for Outpainting

    image: IMAGE
    left: INT
    top: INT
    right: INT
    bottom: INT
    feathering: INT

    Returns: IMAGE (IMAGE), MASK (MASK)
    """

def ImageScale(
    image: IMAGE,
    upscale_method: _t.Literal['nearest-exact', 'bilinear', 'area', 'bicubic', 'lanczos'] | ImageScaleUpscaleMethod | COMBO,
    width: int | INT = 512,
    height: int | INT = 512,
    *,
    crop: _t.Literal['disabled', 'center'] | Crop | COMBO,
    _id: str | None = None,
    _title: str | None = None,
) -> IMAGE:
    """Upscale Image

    image: IMAGE
    upscale_method: COMBO
    width: INT
    height: INT
    crop: COMBO

    Returns: IMAGE (IMAGE)
    """

def ImageScaleBy(
    image: IMAGE,
    upscale_method: _t.Literal['nearest-exact', 'bilinear', 'area', 'bicubic', 'lanczos'] | ImageScaleByUpscaleMethod | COMBO,
    scale_by: float | FLOAT = 1.0,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> IMAGE:
    """Upscale Image By

    image: IMAGE
    upscale_method: COMBO
    scale_by: FLOAT

    Returns: IMAGE (IMAGE)
    """

def ImageScaleToMaxDimension(
    image: IMAGE,
    upscale_method: _t.Literal['area', 'lanczos', 'bilinear', 'nearest-exact', 'bilinear', 'bicubic'] | ImageScaleToMaxDimensionUpscaleMethod | COMBO,
    largest_size: int | INT = 512,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> IMAGE:
    """Scale Image to Max Dimension

    image: IMAGE
    upscale_method: COMBO
    largest_size: INT

    Returns: IMAGE (IMAGE)
    """

def ImageScaleToTotalPixels(
    image: IMAGE,
    upscale_method: _t.Literal['nearest-exact', 'bilinear', 'area', 'bicubic', 'lanczos'] | ImageScaleToTotalPixelsUpscaleMethod | COMBO,
    megapixels: float | FLOAT = 1.0,
    resolution_steps: int | INT = 1,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> IMAGE:
    """ImageScaleToTotalPixels

    image: IMAGE
    upscale_method: COMBO
    megapixels: FLOAT
    resolution_steps: INT

    Returns: IMAGE (IMAGE)
    """

def ImageStitch(
    image1: IMAGE,
    direction: _t.Literal['right', 'down', 'left', 'up'] | Direction | COMBO = 'right',
    match_image_size: bool | BOOLEAN = True,
    spacing_width: int | INT = 0,
    spacing_color: _t.Literal['white', 'black', 'red', 'green', 'blue'] | SpacingColor | COMBO = 'white',
    image2: IMAGE = ...,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> IMAGE:
    """Stitches image2 to image1 in the specified direction.
    If image2 is not provided, returns image1 unchanged.
    Optional spacing can be added between images.

    image1: IMAGE
    direction: COMBO
    match_image_size: BOOLEAN
    spacing_width: INT
    spacing_color: COMBO
    image2: IMAGE (optional)

    Returns: IMAGE (IMAGE)
    """

def ImageToMask(
    image: IMAGE,
    channel: _t.Literal['red', 'green', 'blue', 'alpha'] | ImageToMaskChannel | COMBO,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> MASK:
    """Convert Image to Mask

    image: IMAGE
    channel: COMBO

    Returns: MASK (MASK)
    """

def ImageUpscaleWithModel(
    upscale_model: UPSCALE_MODEL,
    image: IMAGE,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> IMAGE:
    """Upscale Image (using Model)

    upscale_model: UPSCALE_MODEL
    image: IMAGE

    Returns: IMAGE (IMAGE)
    """

class InpaintModelConditioningOutputs(_t.NamedTuple):
    positive: _CONDITIONING
    negative: _CONDITIONING
    latent: _LATENT

def InpaintModelConditioning(
    positive: CONDITIONING,
    negative: CONDITIONING,
    vae: VAE,
    pixels: IMAGE,
    mask: MASK,
    noise_mask: bool | BOOLEAN = True,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> InpaintModelConditioningOutputs:
    """InpaintModelConditioning

    positive: CONDITIONING
    negative: CONDITIONING
    vae: VAE
    pixels: IMAGE
    mask: MASK
    noise_mask: BOOLEAN - Add a noise mask to the latent so sampling will only happen within the mask. Might improve results or completely break things depending on the model.

    Returns: positive (CONDITIONING), negative (CONDITIONING), latent (LATENT)
    """

class InstructPixToPixConditioningOutputs(_t.NamedTuple):
    positive: _CONDITIONING
    negative: _CONDITIONING
    latent: _LATENT

def InstructPixToPixConditioning(
    positive: CONDITIONING,
    negative: CONDITIONING,
    vae: VAE,
    pixels: IMAGE,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> InstructPixToPixConditioningOutputs:
    """Prepares conditioning inputs for InstructPixToPix image editing models by combining positive/negative prompts with target image latents.

    positive: CONDITIONING
    negative: CONDITIONING
    vae: VAE
    pixels: IMAGE

    Returns: positive (CONDITIONING), negative (CONDITIONING), latent (LATENT)
    """

def InvertMask(
    mask: MASK,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> MASK:
    """InvertMask

    mask: MASK

    Returns: MASK (MASK)
    """

def JoinImageWithAlpha(
    image: IMAGE,
    alpha: MASK,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> IMAGE:
    """Join Image with Alpha

    image: IMAGE
    alpha: MASK

    Returns: IMAGE (IMAGE)
    """

def KSampler(
    model: MODEL,
    seed: int | INT = 0,
    steps: int | INT = 20,
    cfg: float | FLOAT = 8.0,
    sampler_name: _t.Literal['euler', 'euler_cfg_pp', 'euler_ancestral', 'euler_ancestral_cfg_pp', 'heun', 'heunpp2', 'exp_heun_2_x0', 'exp_heun_2_x0_sde', 'dpm_2', 'dpm_2_ancestral', 'lms', 'dpm_fast', 'dpm_adaptive', 'dpmpp_2s_ancestral', 'dpmpp_2s_ancestral_cfg_pp', 'dpmpp_sde', 'dpmpp_sde_gpu', 'dpmpp_2m', 'dpmpp_2m_cfg_pp', 'dpmpp_2m_sde', 'dpmpp_2m_sde_gpu', 'dpmpp_2m_sde_heun', 'dpmpp_2m_sde_heun_gpu', 'dpmpp_3m_sde', 'dpmpp_3m_sde_gpu', 'ddpm', 'lcm', 'ipndm', 'ipndm_v', 'deis', 'res_multistep', 'res_multistep_cfg_pp', 'res_multistep_ancestral', 'res_multistep_ancestral_cfg_pp', 'gradient_estimation', 'gradient_estimation_cfg_pp', 'er_sde', 'seeds_2', 'seeds_3', 'sa_solver', 'sa_solver_pece', 'ddim', 'uni_pc', 'uni_pc_bh2'] | SamplerName | COMBO = 'euler',
    scheduler: _t.Literal['simple', 'sgm_uniform', 'karras', 'exponential', 'ddim_uniform', 'beta', 'normal', 'linear_quadratic', 'kl_optimal'] | Scheduler | COMBO = 'simple',
    *,
    positive: CONDITIONING,
    negative: CONDITIONING,
    latent_image: LATENT,
    denoise: float | FLOAT = 1.0,
    _id: str | None = None,
    _title: str | None = None,
) -> LATENT:
    """KSampler

    model: MODEL - The model used for denoising the input latent.
    seed: INT - The random seed used for creating the noise.
    steps: INT - The number of steps used in the denoising process.
    cfg: FLOAT - Classifier-free guidance scale (1.0 skips the negative prompt).
    sampler_name: COMBO - The algorithm used when sampling.
    scheduler: COMBO - How the noise levels are spaced over the steps.
    positive: CONDITIONING - What to include in the image.
    negative: CONDITIONING - What to exclude from the image.
    latent_image: LATENT - The latent image to denoise.
    denoise: FLOAT - The amount of denoising applied; lower values keep more of the input latent.

    Returns: LATENT (LATENT)
    """

def KSamplerAdvanced(
    model: MODEL,
    add_noise: _t.Literal['enable', 'disable'] | AddNoise | COMBO = 'enable',
    noise_seed: int | INT = 0,
    steps: int | INT = 20,
    cfg: float | FLOAT = 8.0,
    sampler_name: _t.Literal['euler', 'euler_cfg_pp', 'euler_ancestral', 'euler_ancestral_cfg_pp', 'heun', 'heunpp2', 'exp_heun_2_x0', 'exp_heun_2_x0_sde', 'dpm_2', 'dpm_2_ancestral', 'lms', 'dpm_fast', 'dpm_adaptive', 'dpmpp_2s_ancestral', 'dpmpp_2s_ancestral_cfg_pp', 'dpmpp_sde', 'dpmpp_sde_gpu', 'dpmpp_2m', 'dpmpp_2m_cfg_pp', 'dpmpp_2m_sde', 'dpmpp_2m_sde_gpu', 'dpmpp_2m_sde_heun', 'dpmpp_2m_sde_heun_gpu', 'dpmpp_3m_sde', 'dpmpp_3m_sde_gpu', 'ddpm', 'lcm', 'ipndm', 'ipndm_v', 'deis', 'res_multistep', 'res_multistep_cfg_pp', 'res_multistep_ancestral', 'res_multistep_ancestral_cfg_pp', 'gradient_estimation', 'gradient_estimation_cfg_pp', 'er_sde', 'seeds_2', 'seeds_3', 'sa_solver', 'sa_solver_pece', 'ddim', 'uni_pc', 'uni_pc_bh2'] | SamplerName | COMBO = 'euler',
    scheduler: _t.Literal['simple', 'sgm_uniform', 'karras', 'exponential', 'ddim_uniform', 'beta', 'normal', 'linear_quadratic', 'kl_optimal'] | Scheduler | COMBO = 'simple',
    *,
    positive: CONDITIONING,
    negative: CONDITIONING,
    latent_image: LATENT,
    start_at_step: int | INT = 0,
    end_at_step: int | INT = 10000,
    return_with_leftover_noise: _t.Literal['disable', 'enable'] | ReturnWithLeftoverNoise | COMBO = 'disable',
    _id: str | None = None,
    _title: str | None = None,
) -> LATENT:
    """KSampler (Advanced)

    model: MODEL
    add_noise: COMBO
    noise_seed: INT
    steps: INT - The number of steps used in the denoising process.
    cfg: FLOAT - Classifier-free guidance scale (1.0 skips the negative prompt).
    sampler_name: COMBO - The algorithm used when sampling.
    scheduler: COMBO - How the noise levels are spaced over the steps.
    positive: CONDITIONING - What to include in the image.
    negative: CONDITIONING - What to exclude from the image.
    latent_image: LATENT - The latent image to denoise.
    start_at_step: INT
    end_at_step: INT
    return_with_leftover_noise: COMBO

    Returns: LATENT (LATENT)
    """

def KSamplerSelect(
    sampler_name: _t.Literal['euler', 'euler_cfg_pp', 'euler_ancestral', 'euler_ancestral_cfg_pp', 'heun', 'heunpp2', 'exp_heun_2_x0', 'exp_heun_2_x0_sde', 'dpm_2', 'dpm_2_ancestral', 'lms', 'dpm_fast', 'dpm_adaptive', 'dpmpp_2s_ancestral', 'dpmpp_2s_ancestral_cfg_pp', 'dpmpp_sde', 'dpmpp_sde_gpu', 'dpmpp_2m', 'dpmpp_2m_cfg_pp', 'dpmpp_2m_sde', 'dpmpp_2m_sde_gpu', 'dpmpp_2m_sde_heun', 'dpmpp_2m_sde_heun_gpu', 'dpmpp_3m_sde', 'dpmpp_3m_sde_gpu', 'ddpm', 'lcm', 'ipndm', 'ipndm_v', 'deis', 'res_multistep', 'res_multistep_cfg_pp', 'res_multistep_ancestral', 'res_multistep_ancestral_cfg_pp', 'gradient_estimation', 'gradient_estimation_cfg_pp', 'er_sde', 'seeds_2', 'seeds_3', 'sa_solver', 'sa_solver_pece', 'ddim', 'uni_pc', 'uni_pc_bh2'] | SamplerName | COMBO = 'euler',
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> SAMPLER:
    """KSamplerSelect

    sampler_name: COMBO

    Returns: SAMPLER (SAMPLER)
    """

def LatentComposite(
    samples_to: LATENT,
    samples_from: LATENT,
    x: int | INT = 0,
    y: int | INT = 0,
    feather: int | INT = 0,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> LATENT:
    """Latent Composite

    samples_to: LATENT
    samples_from: LATENT
    x: INT
    y: INT
    feather: INT

    Returns: LATENT (LATENT)
    """

def LatentFromBatch(
    samples: LATENT,
    batch_index: int | INT = 0,
    length: int | INT = 1,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> LATENT:
    """Latent From Batch

    samples: LATENT
    batch_index: INT
    length: INT

    Returns: LATENT (LATENT)
    """

def LatentUpscale(
    samples: LATENT,
    upscale_method: _t.Literal['nearest-exact', 'bilinear', 'area', 'bicubic', 'bislerp'] | LatentUpscaleUpscaleMethod | COMBO,
    width: int | INT = 512,
    height: int | INT = 512,
    *,
    crop: _t.Literal['disabled', 'center'] | Crop | COMBO,
    _id: str | None = None,
    _title: str | None = None,
) -> LATENT:
    """Upscale Latent

    samples: LATENT
    upscale_method: COMBO
    width: INT
    height: INT
    crop: COMBO

    Returns: LATENT (LATENT)
    """

def LatentUpscaleBy(
    samples: LATENT,
    upscale_method: _t.Literal['nearest-exact', 'bilinear', 'area', 'bicubic', 'bislerp'] | LatentUpscaleByUpscaleMethod | COMBO,
    scale_by: float | FLOAT = 1.5,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> LATENT:
    """Upscale Latent By

    samples: LATENT
    upscale_method: COMBO
    scale_by: FLOAT

    Returns: LATENT (LATENT)
    """

class LoadImageOutputs(_t.NamedTuple):
    IMAGE: _IMAGE
    MASK: _MASK

def LoadImage(
    image: str | COMBO,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> LoadImageOutputs:
    """Load Image

    image: COMBO

    Returns: IMAGE (IMAGE), MASK (MASK)
    """

def LoadImageDataSetFromFolder(
    folder: str | COMBO,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> IMAGE:
    """Load Image (from Folder)

    folder: COMBO - a sub-folder of input/

    Returns: images (IMAGE)
    """

def LoadImageMask(
    image: str | COMBO,
    channel: _t.Literal['alpha', 'red', 'green', 'blue'] | LoadImageMaskChannel | COMBO,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> MASK:
    """Load Image (as Mask)

    image: COMBO
    channel: COMBO

    Returns: MASK (MASK)
    """

def LoadImageSetFromFolderNode(
    folder: str | COMBO,
    resize_method: _t.Literal['None', 'Stretch', 'Crop', 'Pad'] | ResizeMethod | COMBO = 'None',
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> IMAGE:
    """Load Image Dataset from Folder

    folder: COMBO - the folder to load images from
    resize_method: COMBO (optional)

    Returns: IMAGE (IMAGE)
    """

def LoadImageSetNode(
    images: str | COMBO,
    resize_method: _t.Literal['None', 'Stretch', 'Crop', 'Pad'] | ResizeMethod | COMBO = 'None',
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> IMAGE:
    """Load Image Dataset

    images: COMBO
    resize_method: COMBO (optional)

    Returns: IMAGE (IMAGE)
    """

class LoadImageTextDataSetFromFolderOutputs(_t.NamedTuple):
    images: _IMAGE
    texts: _STRING

def LoadImageTextDataSetFromFolder(
    folder: str | COMBO,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> LoadImageTextDataSetFromFolderOutputs:
    """Load Image-Text (from Folder)

    folder: COMBO - a sub-folder of input/

    Returns: images (IMAGE), texts (STRING)
    """

class LoadImageTextSetFromFolderNodeOutputs(_t.NamedTuple):
    IMAGE: _IMAGE
    CONDITIONING: _CONDITIONING

def LoadImageTextSetFromFolderNode(
    folder: str | COMBO,
    clip: CLIP,
    resize_method: _t.Literal['None', 'Stretch', 'Crop', 'Pad'] | ResizeMethod | COMBO = 'None',
    width: int | INT = -1,
    height: int | INT = -1,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> LoadImageTextSetFromFolderNodeOutputs:
    """Load Image and Text Dataset from Folder

    folder: COMBO - the folder to load images from
    clip: CLIP - the CLIP model used to encode the captions
    resize_method: COMBO (optional)
    width: INT (optional) - -1 keeps the first image's width
    height: INT (optional) - -1 keeps the first image's height

    Returns: IMAGE (IMAGE), CONDITIONING (CONDITIONING)
    """

def LoadLatent(
    latent: str | COMBO,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> LATENT:
    """LoadLatent

    latent: COMBO

    Returns: LATENT (LATENT)
    """

class LoadTrainingDatasetOutputs(_t.NamedTuple):
    latents: _LATENT
    conditioning: _CONDITIONING

def LoadTrainingDataset(
    folder_name: str | COMBO,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> LoadTrainingDatasetOutputs:
    """Load Training Dataset

    folder_name: COMBO

    Returns: latents (LATENT), conditioning (CONDITIONING)
    """

class LoraLoaderOutputs(_t.NamedTuple):
    MODEL: _MODEL
    CLIP: _CLIP

def LoraLoader(
    model: MODEL,
    clip: CLIP,
    lora_name: str | COMBO,
    strength_model: float | FLOAT = 1.0,
    strength_clip: float | FLOAT = 1.0,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> LoraLoaderOutputs:
    """Load LoRA (Model and CLIP)

    model: MODEL
    clip: CLIP
    lora_name: COMBO
    strength_model: FLOAT
    strength_clip: FLOAT

    Returns: MODEL (MODEL), CLIP (CLIP)
    """

def LoraLoaderModelOnly(
    model: MODEL,
    lora_name: str | COMBO,
    strength_model: float | FLOAT = 1.0,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> MODEL:
    """Load LoRA

    model: MODEL
    lora_name: COMBO
    strength_model: FLOAT

    Returns: MODEL (MODEL)
    """

def LoraModelLoader(
    model: MODEL,
    lora: LORA_MODEL,
    strength_model: float | FLOAT = 1.0,
    bypass: bool | BOOLEAN = False,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> MODEL:
    """Load LoRA Model

    model: MODEL - The diffusion model the LoRA will be applied to.
    lora: LORA_MODEL - The LoRA model to apply to the diffusion model.
    strength_model: FLOAT
    bypass: BOOLEAN - Run the adapters as forward hooks instead of merging them.

    Returns: model (MODEL)
    """

def LossGraphNode(
    loss: LOSS_MAP,
    filename_prefix: str | STRING = 'loss_graph',
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> None:
    """Plot Loss Graph

    loss: LOSS_MAP
    filename_prefix: STRING
    """

class MakeTrainingDatasetOutputs(_t.NamedTuple):
    latents: _LATENT
    conditioning: _CONDITIONING

def MakeTrainingDataset(
    images: IMAGE,
    vae: VAE,
    clip: CLIP,
    texts: str | STRING = ...,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> MakeTrainingDatasetOutputs:
    """Make Training Dataset

    images: IMAGE - one sample per list item (batches are split)
    vae: VAE
    clip: CLIP
    texts: STRING (optional) - one caption per image, or one for all

    Returns: latents (LATENT), conditioning (CONDITIONING)
    """

def ManualSigmas(
    sigmas: str | STRING = '1, 0.5',
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> SIGMAS:
    """ManualSigmas

    sigmas: STRING

    Returns: SIGMAS (SIGMAS)
    """

def MaskToImage(
    mask: MASK,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> IMAGE:
    """Convert Mask to Image

    mask: MASK

    Returns: IMAGE (IMAGE)
    """

def MergeImageLists(
    images: IMAGE,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> IMAGE:
    """Merge Image Lists

    images: IMAGE

    Returns: images (IMAGE)
    """

def MergeTextLists(
    texts: str | STRING,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> STRING:
    """Merge Text Lists

    texts: STRING

    Returns: texts (STRING)
    """

def ModelMergeSimple(
    model1: MODEL,
    model2: MODEL,
    ratio: float | FLOAT = 1.0,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> MODEL:
    """ModelMergeSimple

    model1: MODEL
    model2: MODEL
    ratio: FLOAT

    Returns: MODEL (MODEL)
    """

def ModelSamplingAuraFlow(
    model: MODEL,
    shift: float | FLOAT = 1.73,
    sampling: _t.Literal['flow', 'img_to_img_velocity'] | ModelSamplingAuraFlowSampling | COMBO = 'flow',
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> MODEL:
    """ModelSamplingAuraFlow

    model: MODEL
    shift: FLOAT
    sampling: COMBO (optional)

    Returns: MODEL (MODEL)
    """

def ModelSamplingDiscrete(
    model: MODEL,
    sampling: _t.Literal['eps', 'v_prediction', 'lcm', 'x0', 'img_to_img'] | ModelSamplingDiscreteSampling | COMBO = 'eps',
    zsnr: bool | BOOLEAN = False,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> MODEL:
    """ModelSamplingDiscrete

    model: MODEL
    sampling: COMBO
    zsnr: BOOLEAN

    Returns: MODEL (MODEL)
    """

def ModelSamplingFlux(
    model: MODEL,
    max_shift: float | FLOAT = 1.15,
    base_shift: float | FLOAT = 0.5,
    width: int | INT = 1024,
    height: int | INT = 1024,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> MODEL:
    """ModelSamplingFlux

    model: MODEL
    max_shift: FLOAT
    base_shift: FLOAT
    width: INT
    height: INT

    Returns: MODEL (MODEL)
    """

def ModelSamplingSD3(
    model: MODEL,
    shift: float | FLOAT = 3.0,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> MODEL:
    """ModelSamplingSD3

    model: MODEL
    shift: FLOAT

    Returns: MODEL (MODEL)
    """

def NormalizeImages(
    images: IMAGE,
    mean: float | FLOAT = 0.5,
    std: float | FLOAT = 0.5,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> IMAGE:
    """Normalize Image Colors

    images: IMAGE
    mean: FLOAT
    std: FLOAT

    Returns: images (IMAGE)
    """

def PreviewAny(
    source: _t.Any,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> STRING:
    """Preview as Text

    source: *

    Returns: STRING (STRING)
    """

def PreviewImage(
    images: IMAGE,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> IMAGE:
    """Preview Image

    images: IMAGE

    Returns: images (IMAGE)
    """

def PrimitiveBoolean(
    value: bool | BOOLEAN = False,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> BOOLEAN:
    """Boolean

    value: BOOLEAN

    Returns: BOOLEAN (BOOLEAN)
    """

def PrimitiveFloat(
    value: float | FLOAT = 0.0,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> FLOAT:
    """Float

    value: FLOAT

    Returns: FLOAT (FLOAT)
    """

def PrimitiveInt(
    value: int | INT = 0,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> INT:
    """Int

    value: INT

    Returns: INT (INT)
    """

def PrimitiveString(
    value: str | STRING = '',
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> STRING:
    """String

    value: STRING

    Returns: STRING (STRING)
    """

def PrimitiveStringMultiline(
    value: str | STRING = '',
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> STRING:
    """StringMultiline

    value: STRING

    Returns: STRING (STRING)
    """

def RandomCropImages(
    images: IMAGE,
    width: int | INT = 512,
    height: int | INT = 512,
    seed: int | INT = 0,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> IMAGE:
    """Crop Image (Random)

    images: IMAGE
    width: INT
    height: INT
    seed: INT

    Returns: images (IMAGE)
    """

def RandomNoise(
    noise_seed: int | INT = 0,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> NOISE:
    """RandomNoise

    noise_seed: INT - The random seed used for creating the noise.

    Returns: NOISE (NOISE)
    """

def ReferenceLatent(
    conditioning: CONDITIONING,
    latent: LATENT = ...,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> CONDITIONING:
    """This node sets the guiding latent for an edit model. If the model supports it you can chain multiple to set multiple reference images.

    conditioning: CONDITIONING
    latent: LATENT (optional)

    Returns: CONDITIONING (CONDITIONING)
    """

def RepeatImageBatch(
    image: IMAGE,
    amount: int | INT = 1,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> IMAGE:
    """RepeatImageBatch

    image: IMAGE
    amount: INT

    Returns: IMAGE (IMAGE)
    """

def RepeatLatentBatch(
    samples: LATENT,
    amount: int | INT = 1,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> LATENT:
    """Repeat Latent Batch

    samples: LATENT
    amount: INT

    Returns: LATENT (LATENT)
    """

def ReplaceText(
    texts: str | STRING,
    find: str | STRING = '',
    replace: str | STRING = '',
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> STRING:
    """Replace Text

    texts: STRING
    find: STRING
    replace: STRING

    Returns: texts (STRING)
    """

def RescaleCFG(
    model: MODEL,
    multiplier: float | FLOAT = 0.7,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> MODEL:
    """RescaleCFG

    model: MODEL
    multiplier: FLOAT

    Returns: MODEL (MODEL)
    """

def ResizeImageMaskNode(
    input: _t.Any,
    resize_type: _t.Literal['scale dimensions', 'scale by multiplier', 'scale longer dimension', 'scale shorter dimension', 'scale width', 'scale height', 'scale total pixels', 'match size', 'scale to multiple'] | ResizeType | COMBO = 'scale dimensions',
    *,
    scale_method: _t.Literal['nearest-exact', 'bilinear', 'area', 'bicubic', 'lanczos'] | ScaleMethod | COMBO = 'area',
    _id: str | None = None,
    _title: str | None = None,
    **inputs: _t.Any,
) -> _t.Any:
    """Resize an image or mask using various scaling methods.

    input: COMFY_MATCHTYPE_V3
    resize_type: COMBO - Select how to resize: by exact dimensions, scale factor, matching another image, etc.
    resize_type.width: INT (optional)
    resize_type.height: INT (optional)
    resize_type.crop: COMBO (optional)
    resize_type.multiplier: FLOAT (optional)
    resize_type.longer_size: INT (optional)
    resize_type.shorter_size: INT (optional)
    resize_type.megapixels: FLOAT (optional)
    resize_type.match: IMAGE,MASK (optional)
    resize_type.multiple: INT (optional)
    scale_method: COMBO

    Returns: resized (COMFY_MATCHTYPE_V3)
    """

def ResizeImagesByLongerEdge(
    images: IMAGE,
    longer_edge: int | INT = 1024,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> IMAGE:
    """Resize Images by Longer Edge

    images: IMAGE
    longer_edge: INT

    Returns: images (IMAGE)
    """

def ResizeImagesByShorterEdge(
    images: IMAGE,
    shorter_edge: int | INT = 512,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> IMAGE:
    """Resize Images by Shorter Edge

    images: IMAGE
    shorter_edge: INT

    Returns: images (IMAGE)
    """

class ResolutionBucketOutputs(_t.NamedTuple):
    latents: _LATENT
    conditioning: _CONDITIONING

def ResolutionBucket(
    latents: LATENT,
    conditioning: CONDITIONING,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> ResolutionBucketOutputs:
    """Resolution Bucket

    latents: LATENT
    conditioning: CONDITIONING

    Returns: latents (LATENT), conditioning (CONDITIONING)
    """

class ResolutionSelectorOutputs(_t.NamedTuple):
    width: _INT
    height: _INT

def ResolutionSelector(
    aspect_ratio: _t.Literal['1:1 (Square)', '2:3 (Portrait Photo)', '3:2 (Photo)', '3:4 (Portrait Standard)', '4:3 (Standard)', '9:16 (Portrait Widescreen)', '16:9 (Widescreen)', '21:9 (Ultrawide)'] | AspectRatio | COMBO = '1:1 (Square)',
    megapixels: float | FLOAT = 1.0,
    multiple: int | INT = 8,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> ResolutionSelectorOutputs:
    """Width and height for an aspect ratio and a target size in megapixels (1 MP = 1024 x 1024 pixels), for Empty Latent Image and the like.

    aspect_ratio: COMBO
    megapixels: FLOAT
    multiple: INT - each side is rounded to the nearest multiple of this

    Returns: width (INT), height (INT)
    """

def SDTurboScheduler(
    model: MODEL,
    steps: int | INT = 1,
    denoise: float | FLOAT = 1.0,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> SIGMAS:
    """SDTurboScheduler

    model: MODEL
    steps: INT
    denoise: FLOAT - The fraction of the schedule to run (its low-noise end).

    Returns: SIGMAS (SIGMAS)
    """

class SamplerCustomOutputs(_t.NamedTuple):
    output: _LATENT
    denoised_output: _LATENT

def SamplerCustom(
    model: MODEL,
    add_noise: bool | BOOLEAN = True,
    noise_seed: int | INT = 0,
    cfg: float | FLOAT = 8.0,
    *,
    positive: CONDITIONING,
    negative: CONDITIONING,
    sampler: SAMPLER,
    sigmas: SIGMAS,
    latent_image: LATENT,
    _id: str | None = None,
    _title: str | None = None,
) -> SamplerCustomOutputs:
    """SamplerCustom

    model: MODEL
    add_noise: BOOLEAN
    noise_seed: INT - The random seed used for creating the noise.
    cfg: FLOAT - Classifier-free guidance scale (1.0 skips the negative prompt).
    positive: CONDITIONING
    negative: CONDITIONING
    sampler: SAMPLER
    sigmas: SIGMAS
    latent_image: LATENT

    Returns: output (LATENT), denoised_output (LATENT)
    """

class SamplerCustomAdvancedOutputs(_t.NamedTuple):
    output: _LATENT
    denoised_output: _LATENT

def SamplerCustomAdvanced(
    noise: NOISE,
    guider: GUIDER,
    sampler: SAMPLER,
    sigmas: SIGMAS,
    latent_image: LATENT,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> SamplerCustomAdvancedOutputs:
    """SamplerCustomAdvanced

    noise: NOISE
    guider: GUIDER
    sampler: SAMPLER
    sigmas: SIGMAS
    latent_image: LATENT

    Returns: output (LATENT), denoised_output (LATENT)
    """

def SaveImage(
    images: IMAGE,
    filename_prefix: str | STRING = 'ComfyUI',
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> IMAGE:
    """Save Image

    images: IMAGE
    filename_prefix: STRING - relative to output/; may hold %batch_num%, %year%, %width%, ...

    Returns: images (IMAGE)
    """

def SaveImageAdvanced(
    images: IMAGE,
    filename_prefix: str | STRING = 'ComfyUI',
    format: _t.Literal['png', 'exr'] | SaveImageAdvancedFormat | COMBO = 'png',
    *,
    _id: str | None = None,
    _title: str | None = None,
    **inputs: _t.Any,
) -> IMAGE:
    """Saves the images in the output folder as PNG (8 or 16 bits per channel) or OpenEXR (32-bit float; the input colour space is converted to linear).

    images: IMAGE
    filename_prefix: STRING - relative to output/; may hold %batch_num%, %year%, %width%, ...
    format: COMBO
    format.bit_depth: COMBO
    format.input_color_space: COMBO - exr: sRGB (inverse sRGB curve), HDR (HLG Rec.2020, inverse HLG curve) or linear (written as is); png: sRGB only

    Returns: images (IMAGE)
    """

def SaveImageDataSetToFolder(
    images: IMAGE,
    folder_name: str | STRING = 'dataset',
    filename_prefix: str | STRING = 'image',
    mode: _t.Literal['overwrite', 'increment'] | Mode | COMBO = 'overwrite',
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> None:
    """Save Image (to Folder)

    images: IMAGE
    folder_name: STRING - sub-folder of output/
    filename_prefix: STRING
    mode: COMBO - overwrite: <prefix>_<index>.png; increment: a new run number each save
    """

def SaveImageTextDataSetToFolder(
    images: IMAGE,
    texts: str | STRING = ...,
    folder_name: str | STRING = 'dataset',
    filename_prefix: str | STRING = 'image',
    mode: _t.Literal['overwrite', 'increment'] | Mode | COMBO = 'overwrite',
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> None:
    """Save Image-Text (to Folder)

    images: IMAGE
    texts: STRING (optional)
    folder_name: STRING - sub-folder of output/
    filename_prefix: STRING
    mode: COMBO - overwrite: <prefix>_<index>.png; increment: a new run number each save
    """

def SaveLatent(
    samples: LATENT,
    filename_prefix: str | STRING = 'latents/ComfyUI',
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> None:
    """SaveLatent

    samples: LATENT
    filename_prefix: STRING
    """

def SaveLoRA(
    lora: LORA_MODEL,
    prefix: str | STRING = 'loras/ComfyUI_trained_lora',
    steps: int | INT = ...,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> None:
    """Save LoRA Weights

    lora: LORA_MODEL - the LoRA weights to save
    prefix: STRING - file name prefix, relative to output/
    steps: INT (optional) - training steps, used in the file name
    """

def SaveLoRANode(
    lora: LORA_MODEL,
    prefix: str | STRING = 'loras/ComfyUI_trained_lora',
    steps: int | INT = ...,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> None:
    """Save LoRA Weights

    lora: LORA_MODEL
    prefix: STRING
    steps: INT (optional)
    """

def SaveText(
    text: str | STRING,
    filename_prefix: str | STRING = 'ComfyUI',
    format: _t.Literal['txt', 'md', 'json'] | SaveTextFormat | COMBO = 'txt',
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> STRING:
    """Save text content to a file in the output directory.

    text: STRING
    filename_prefix: STRING
    format: COMBO

    Returns: text (STRING)
    """

def SaveTrainingDataset(
    latents: LATENT,
    conditioning: CONDITIONING,
    folder_name: str | STRING = 'training_dataset',
    shard_size: int | INT = 1000,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> None:
    """Save Training Dataset

    latents: LATENT
    conditioning: CONDITIONING
    folder_name: STRING - sub-folder of datasets/
    shard_size: INT
    """

def SetFirstSigma(
    sigmas: SIGMAS,
    sigma: float | FLOAT = 136.0,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> SIGMAS:
    """SetFirstSigma

    sigmas: SIGMAS
    sigma: FLOAT

    Returns: SIGMAS (SIGMAS)
    """

def SetLatentNoiseMask(
    samples: LATENT,
    mask: MASK,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> LATENT:
    """Set Latent Noise Mask

    samples: LATENT
    mask: MASK

    Returns: LATENT (LATENT)
    """

def SetUnionControlNetType(
    control_net: CONTROL_NET,
    type: _t.Literal['auto', 'openpose', 'depth', 'hed/pidi/scribble/ted', 'canny/lineart/anime_lineart/mlsd', 'normal', 'segment', 'tile', 'repaint'] | SetUnionControlNetTypeType | COMBO,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> CONTROL_NET:
    """SetUnionControlNetType

    control_net: CONTROL_NET
    type: COMBO

    Returns: CONTROL_NET (CONTROL_NET)
    """

def ShuffleDataset(
    images: IMAGE,
    seed: int | INT = 0,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> IMAGE:
    """Shuffle Images List

    images: IMAGE
    seed: INT

    Returns: images (IMAGE)
    """

class ShuffleImageTextDatasetOutputs(_t.NamedTuple):
    images: _IMAGE
    texts: _STRING

def ShuffleImageTextDataset(
    images: IMAGE,
    texts: str | STRING,
    seed: int | INT = 0,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> ShuffleImageTextDatasetOutputs:
    """Shuffle Pairs of Image-Text

    images: IMAGE
    texts: STRING
    seed: INT

    Returns: images (IMAGE), texts (STRING)
    """

def SolidMask(
    value: float | FLOAT = 1.0,
    width: int | INT = 512,
    height: int | INT = 512,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> MASK:
    """SolidMask

    value: FLOAT
    width: INT
    height: INT

    Returns: MASK (MASK)
    """

def StringConcatenate(
    string_a: str | STRING,
    string_b: str | STRING,
    delimiter: str | STRING = '',
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> STRING:
    """Concatenate

    string_a: STRING
    string_b: STRING
    delimiter: STRING

    Returns: STRING (STRING)
    """

def StringReplace(
    string: str | STRING,
    find: str | STRING,
    replace: str | STRING,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> STRING:
    """Replace

    string: STRING
    find: STRING
    replace: STRING

    Returns: STRING (STRING)
    """

def StripWhitespace(
    texts: str | STRING,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> STRING:
    """Strip Whitespace

    texts: STRING

    Returns: texts (STRING)
    """

def T5TokenizerOptions(
    clip: CLIP,
    min_padding: int | INT = 0,
    min_length: int | INT = 0,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> CLIP:
    """T5TokenizerOptions

    clip: CLIP
    min_padding: INT
    min_length: INT

    Returns: CLIP (CLIP)
    """

def TextEncodeQwenImageEdit(
    clip: CLIP,
    prompt: str | STRING,
    vae: VAE = ...,
    image: IMAGE = ...,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> CONDITIONING:
    """TextEncodeQwenImageEdit

    clip: CLIP
    prompt: STRING
    vae: VAE (optional)
    image: IMAGE (optional)

    Returns: CONDITIONING (CONDITIONING)
    """

def TextEncodeQwenImageEditPlus(
    clip: CLIP,
    prompt: str | STRING,
    vae: VAE = ...,
    image1: IMAGE = ...,
    image2: IMAGE = ...,
    image3: IMAGE = ...,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> CONDITIONING:
    """TextEncodeQwenImageEditPlus

    clip: CLIP
    prompt: STRING
    vae: VAE (optional)
    image1: IMAGE (optional)
    image2: IMAGE (optional)
    image3: IMAGE (optional)

    Returns: CONDITIONING (CONDITIONING)
    """

class TextGenerateOutputs(_t.NamedTuple):
    generated_text: _STRING
    thinking: _STRING

def TextGenerate(
    clip: CLIP,
    prompt: str | STRING = '',
    image: IMAGE = ...,
    video: IMAGE = ...,
    audio: AUDIO = ...,
    max_length: int | INT = 512,
    sampling_mode: _t.Literal['on', 'off'] | SamplingMode | COMBO = 'on',
    *,
    thinking: bool | BOOLEAN = False,
    use_default_template: bool | BOOLEAN = True,
    mtp: _t.Literal['auto', 'off', '2', '3', '4', '5'] | Mtp | COMBO = 'auto',
    system_prompt: str | STRING = ...,
    _id: str | None = None,
    _title: str | None = None,
    **inputs: _t.Any,
) -> TextGenerateOutputs:
    """Generate Text

    clip: CLIP
    prompt: STRING
    image: IMAGE (optional)
    video: IMAGE (optional) - Video frames as image batch. Assumed to be 24 FPS; subsampled to 1 FPS internally.
    audio: AUDIO (optional)
    max_length: INT
    sampling_mode: COMBO
    sampling_mode.temperature: FLOAT (optional)
    sampling_mode.top_k: INT (optional)
    sampling_mode.top_p: FLOAT (optional)
    sampling_mode.min_p: FLOAT (optional)
    sampling_mode.repetition_penalty: FLOAT (optional)
    sampling_mode.seed: INT (optional)
    sampling_mode.presence_penalty: FLOAT (optional)
    thinking: BOOLEAN (optional) - Operate in thinking mode if the model supports it.
    use_default_template: BOOLEAN (optional) - Use the built in system prompt/template if the model has one.
    mtp: COMBO (optional) - Speculative decoding with the checkpoint's multi-token-prediction head. No effect without MTP weights.
    system_prompt: STRING (optional) - Replaces the system prompt in the model's chat template. Ignored when the default template is not used.

    Returns: generated_text (STRING), thinking (STRING)
    """

def TextToLowercase(
    texts: str | STRING,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> STRING:
    """Text to Lowercase

    texts: STRING

    Returns: texts (STRING)
    """

def TextToUppercase(
    texts: str | STRING,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> STRING:
    """Text to Uppercase

    texts: STRING

    Returns: texts (STRING)
    """

class TrainLoraNodeOutputs(_t.NamedTuple):
    lora: _LORA_MODEL
    loss_map: _LOSS_MAP
    steps: _INT

def TrainLoraNode(
    model: MODEL,
    latents: LATENT,
    positive: CONDITIONING,
    batch_size: int | INT = 1,
    grad_accumulation_steps: int | INT = 1,
    steps: int | INT = 16,
    learning_rate: float | FLOAT = 0.0005,
    rank: int | INT = 8,
    optimizer: _t.Literal['AdamW', 'Adam', 'SGD', 'RMSprop'] | Optimizer | COMBO = 'AdamW',
    loss_function: _t.Literal['MSE', 'L1', 'Huber', 'SmoothL1'] | LossFunction | COMBO = 'MSE',
    seed: int | INT = 0,
    training_dtype: _t.Literal['bf16', 'fp32', 'none'] | TrainingDtype | COMBO = 'bf16',
    lora_dtype: _t.Literal['bf16', 'fp32'] | LoraDtype | COMBO = 'bf16',
    quantized_backward: bool | BOOLEAN = False,
    algorithm: _t.Literal['LoRA', 'LoHa', 'LoKr', 'OFT'] | Algorithm | COMBO = 'LoRA',
    gradient_checkpointing: bool | BOOLEAN = True,
    checkpoint_depth: int | INT = 1,
    offloading: bool | BOOLEAN = False,
    existing_lora: str | COMBO = '[None]',
    bucket_mode: bool | BOOLEAN = False,
    bypass_mode: bool | BOOLEAN = False,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> TrainLoraNodeOutputs:
    """Train LoRA

    model: MODEL - the model to train the LoRA on
    latents: LATENT - training latents (one batch or a list)
    positive: CONDITIONING - one caption per latent, or one for all
    batch_size: INT
    grad_accumulation_steps: INT
    steps: INT - number of optimizer steps
    learning_rate: FLOAT
    rank: INT
    optimizer: COMBO
    loss_function: COMBO
    seed: INT - noise, timesteps, batch order and adapter initialisation
    training_dtype: COMBO - compute dtype; on a CPU fp32 is much faster than bf16
    lora_dtype: COMBO
    quantized_backward: BOOLEAN - FP8 backward for quantized models (GPU only; no effect on CPU)
    algorithm: COMBO
    gradient_checkpointing: BOOLEAN
    checkpoint_depth: INT
    offloading: BOOLEAN - stream weights to the GPU (no effect on CPU)
    existing_lora: COMBO - resume from this LoRA file
    bucket_mode: BOOLEAN - latents come from ResolutionBucket
    bypass_mode: BOOLEAN - adapters as forward hooks instead of merged weights

    Returns: lora (LORA_MODEL), loss_map (LOSS_MAP), steps (INT)
    """

def TripleCLIPLoader(
    clip_name1: str | COMBO,
    clip_name2: str | COMBO,
    clip_name3: str | COMBO,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> CLIP:
    """[Recipes]

    sd3: clip-l, clip-g, t5

    clip_name1: COMBO
    clip_name2: COMBO
    clip_name3: COMBO

    Returns: CLIP (CLIP)
    """

def TruncateText(
    texts: str | STRING,
    max_length: int | INT = 77,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> STRING:
    """Truncate Text

    texts: STRING
    max_length: INT

    Returns: texts (STRING)
    """

def UNETLoader(
    unet_name: str | COMBO,
    weight_dtype: _t.Literal['default', 'fp8_e4m3fn', 'fp8_e4m3fn_fast', 'fp8_e5m2'] | WeightDtype | COMBO = 'default',
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> MODEL:
    """Load Diffusion Model

    unet_name: COMBO
    weight_dtype: COMBO

    Returns: MODEL (MODEL)
    """

def UpscaleModelLoader(
    model_name: str | COMBO,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> UPSCALE_MODEL:
    """Load Upscale Model

    model_name: COMBO

    Returns: UPSCALE_MODEL (UPSCALE_MODEL)
    """

def VAEDecode(
    samples: LATENT,
    vae: VAE,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> IMAGE:
    """VAE Decode

    samples: LATENT
    vae: VAE

    Returns: IMAGE (IMAGE)
    """

def VAEDecodeTiled(
    samples: LATENT,
    vae: VAE,
    tile_size: int | INT = 512,
    overlap: int | INT = 64,
    temporal_size: int | INT = 64,
    temporal_overlap: int | INT = 8,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> IMAGE:
    """VAE Decode (Tiled)

    samples: LATENT
    vae: VAE
    tile_size: INT
    overlap: INT
    temporal_size: INT - Only used for video VAEs: Amount of frames to decode at a time.
    temporal_overlap: INT - Only used for video VAEs: Amount of frames to overlap.

    Returns: IMAGE (IMAGE)
    """

def VAEEncode(
    pixels: IMAGE,
    vae: VAE,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> LATENT:
    """VAE Encode

    pixels: IMAGE
    vae: VAE

    Returns: LATENT (LATENT)
    """

def VAEEncodeForInpaint(
    pixels: IMAGE,
    vae: VAE,
    mask: MASK,
    grow_mask_by: int | INT = 6,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> LATENT:
    """VAE Encode (for Inpainting)

    pixels: IMAGE
    vae: VAE
    mask: MASK
    grow_mask_by: INT

    Returns: LATENT (LATENT)
    """

def VAEEncodeTiled(
    pixels: IMAGE,
    vae: VAE,
    tile_size: int | INT = 512,
    overlap: int | INT = 64,
    temporal_size: int | INT = 64,
    temporal_overlap: int | INT = 8,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> LATENT:
    """VAE Encode (Tiled)

    pixels: IMAGE
    vae: VAE
    tile_size: INT
    overlap: INT
    temporal_size: INT - Only used for video VAEs: Amount of frames to encode at a time.
    temporal_overlap: INT - Only used for video VAEs: Amount of frames to overlap.

    Returns: LATENT (LATENT)
    """

def VAELoader(
    vae_name: str | COMBO,
    *,
    _id: str | None = None,
    _title: str | None = None,
) -> VAE:
    """Load VAE

    vae_name: COMBO

    Returns: VAE (VAE)
    """
